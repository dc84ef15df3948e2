"""Every number the pipeline computes is bit-identical to the committed reference digest.

The reference (tests/data/digest.json) was made by tests/data/make_digest.py with the code
before the file-schema redesign; the digest is keyed by logical names, so it survives a
change of file layout but not a change of a single bit of any result.  A change meant to
change the numbers regenerates it: ``.venv/bin/python tests/data/make_digest.py --write``.
"""
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "data"))

import make_digest  # noqa: E402


def test_results_match_reference_digest(tmp_path, monkeypatch):
    monkeypatch.setenv("MPI_GLASS_SERIAL", "1")
    reference = json.loads(make_digest.REFERENCE.read_text())
    found = make_digest.digest(make_digest.run_pipeline(tmp_path / "out"))
    missing = sorted(set(reference) - set(found))
    assert not missing, f"results of the reference no longer computed: {missing}"
    differing = [name for name in reference if found[name] != reference[name]]
    assert not differing, (f"{len(differing)} results differ from the reference, e.g. "
                           f"{differing[:5]}; if intended, regenerate with "
                           f"'.venv/bin/python tests/data/make_digest.py --write'")
