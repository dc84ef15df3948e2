"""One contract for boxes, configurations, times and points: canonical forms, one-line errors."""
import numpy as np
import pytest

from mpi_glass.errors import InputError
from mpi_glass.validation import (check_box, check_configuration, check_consistent_length,
                                  check_k, check_points, check_positive_time,
                                  check_square_box, check_times, check_whole_number)


def refused(fn, *args, word, **kwargs):
    with pytest.raises(InputError) as err:
        fn(*args, **kwargs)
    message = str(err.value)
    assert "\n" not in message and message.startswith(word), message


@pytest.mark.parametrize("box", [0.0, -1.0, np.nan, np.inf, [1.0, 2.0, 3.0], [[1.0, 1.0]],
                                 "ten", None])
def test_bad_boxes_are_refused(box):
    refused(check_box, box, word="box")


def test_box_forms():
    assert check_box(3).tolist() == [3.0, 3.0]
    assert check_box((3, 4)).tolist() == [3.0, 4.0]
    assert check_square_box([5.0, 5.0]) == 5.0
    refused(check_square_box, (3.0, 4.0), word="box")
    refused(check_square_box, 4.0, min_side=5.0, why="twice the cutoff", word="box")


def test_configuration_is_wrapped_and_typed():
    pos, spec = check_configuration([[10.5, -0.25], [0.0, 9.999]], np.array([0, 2]), 10.0)
    assert pos.dtype == np.float64 and pos.flags.c_contiguous and spec.dtype == np.int8
    assert pos.tolist() == [[0.5, 9.75], [0.0, 9.999]]
    tiny = check_configuration([[-1e-17, 1.0]], [1], 10.0)[0]
    assert 0.0 <= tiny[0, 0] < 10.0                  # -1e-17 mod 10 rounds to 10: wrapped to 0
    rect = check_configuration([[5.0, 5.0]], [1], check_box((4.0, 6.0)))[0]
    assert rect.tolist() == [[1.0, 5.0]]


@pytest.mark.parametrize("positions, species, word", [
    ([[0.0, 0.0, 0.0]], [0], "positions"),
    (np.zeros((0, 2)), [], "positions"),
    ([[np.nan, 0.0]], [0], "positions"),
    ([[0.0, 0.0]], [3], "species"),
    ([[0.0, 0.0]], [-1], "species"),
    ([[0.0, 0.0]], [0.5], "species"),
    ([[0.0, 0.0], [1.0, 1.0]], [0], "species"),
])
def test_bad_configurations_are_refused(positions, species, word):
    refused(check_configuration, positions, species, 10.0, word=word)


def test_in_place_state_must_already_be_wrapped():
    refused(check_configuration, [[10.0, 1.0]], [0], 10.0, wrap=False, word="positions")
    assert check_configuration([[9.5, 1.0]], [0], 10.0, wrap=False)[0].tolist() == [[9.5, 1.0]]


def test_times():
    assert check_times([0, 1, 10]).tolist() == [0.0, 1.0, 10.0]
    for bad in ([], [[1, 2]], [2, 1], [1, 1], [-1, 2], [1, np.inf]):
        refused(check_times, bad, word="times")
    assert check_positive_time(2) == 2.0
    refused(check_positive_time, 0, word="t")
    assert check_whole_number(1e3, "t_max") == 1000
    for bad in (0, 1.5, True, "3", np.nan):
        refused(check_whole_number, bad, "t_max", word="t_max")


def test_points():
    assert check_points([1, 2, 3], "p").shape == (3, 1)
    refused(check_points, [1, 2], "p", word="p")
    refused(check_points, [[1.0, np.nan]] * 3, "X", word="X")
    refused(check_consistent_length, [1, 2, 3], [1, 2], "A and B", word="A and B")
    refused(check_k, 3, 3, "imbalance", word="imbalance")
    refused(check_k, 1.0, 5, "imbalance", word="imbalance")
