"""The `condprob` command line: the tour runs its sections and reports failures."""

from condprob import cli


def test_core_tour_writes_report(tmp_path, capsys):
    assert cli.main(["tour", "--out", str(tmp_path), "--only", "core"]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "P(ill | pos) = 2/13" in report
    assert (tmp_path / "core" / "updates.png").stat().st_size > 1000
    assert "Tour report written to" in capsys.readouterr().out


def test_failing_section_is_reported(tmp_path, monkeypatch):
    def broken(out):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "tour_sections", lambda: [("core", broken)])
    assert cli.tour(tmp_path) == 1
    assert "FAILED" in (tmp_path / "report.md").read_text()
