"""Every notebook in notebooks/ runs from top to bottom: a failing cell fails the test.

Each notebook executes in a fresh `python3` kernel (the running interpreter's environment), in a
temporary working directory, under a per-notebook deadline; outputs are not compared, but the
notebooks assert their own results.
"""

import os
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="notebook tests need the docs extra")
nbclient = pytest.importorskip("nbclient", reason="notebook tests need the docs extra")

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
NOTEBOOK_TIMEOUT = 180  # seconds for a whole notebook (each is meant to take well under 60 s)


def execute(path: Path, cwd: Path, timeout: float = NOTEBOOK_TIMEOUT) -> None:
    """Run every cell of the notebook at `path`; raise on a failing cell or past `timeout` seconds
    for the whole notebook (each cell gets the time that is left)."""
    nb = nbformat.read(path, as_version=4)
    deadline = time.monotonic() + timeout
    client = nbclient.NotebookClient(
        nb, kernel_name="python3", resources={"metadata": {"path": str(cwd)}},
        timeout_func=lambda cell: max(1, int(deadline - time.monotonic())))
    try:
        client.execute()
    except nbclient.exceptions.CellTimeoutError as exc:
        raise TimeoutError(f"{path.name} did not finish within {timeout} s") from exc


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ has no .ipynb files"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    execute(path, tmp_path)


def _notebook(tmp_path: Path, *sources: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(s) for s in sources]
    path = tmp_path / "probe.ipynb"
    nbformat.write(nb, path)
    return path


def test_failing_cell_fails(tmp_path):
    path = _notebook(tmp_path, "x = 1", "assert x == 2, 'wrong x'")
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="wrong x"):
        execute(path, tmp_path)


def test_deadline_stops_a_hanging_notebook(tmp_path):
    path = _notebook(tmp_path, "import time", "time.sleep(60)")
    with pytest.raises(TimeoutError, match="did not finish within 5 s"):
        execute(path, tmp_path, timeout=5)
