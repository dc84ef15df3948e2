"""Reinterpret IEEE doubles as their bit patterns and back (numba intrinsics).

Both are one register move that LLVM vectorises; numba has no such cast of its own (a
``view`` needs an array).  ``fixedpoint`` rounds pair energies to integers with them, and
``imbalance.dii`` builds powers of two for its exponential.
"""
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["float_bits", "bits_float"]


@intrinsic
def float_bits(typingctx, x):
    """The IEEE bit pattern of a float64, as an int64."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def bits_float(typingctx, x):
    """The float64 whose IEEE bit pattern is the int64 x."""
    if x != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen
