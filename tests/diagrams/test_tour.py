"""The tour section runs end to end, and the benchmark script runs at smoke sizes."""

from importlib.metadata import entry_points

from diagrams.tour import run


def test_tour(tmp_path):
    summary = run(tmp_path)
    assert "Markov law True" in summary and "2/13" in summary
    assert len(list(tmp_path.glob("diagrams_*.png"))) == 5
    assert (tmp_path / "diagrams_joint.svg").exists()


def test_tour_is_registered():
    names = {e.name: e.value for e in entry_points(group="condprob.tour")}
    assert names.get("diagrams") == "diagrams.tour:run"


def test_benchmark_smoke():
    from benchmarks.bench_diagrams import main

    table = main(["--smoke"])
    assert "| Markov law f >> Discard(O) == Discard(H) | True |" in table
    assert "interchanged 25-box build == original | True" in table
