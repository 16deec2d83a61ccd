"""The `condprob` command line: the tour runs its sections and reports failures."""

import pytest

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


def _sections(*pairs):
    return lambda: list(pairs)


def _ok(text, figure=False):
    def run(out):
        if figure:
            (out / "fig.png").write_bytes(b"png")
        return text
    return run


def test_report_lists_summary_lines_separately(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "tour_sections", _sections(("core", _ok("first line\nsecond line"))))
    assert cli.tour(tmp_path) == 0
    report = (tmp_path / "report.md").read_text()
    assert "- first line\n- second line\n" in report


def test_interrupted_tour_reports_finished_sections(tmp_path, monkeypatch):
    def interrupted(out):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "tour_sections", _sections(
        ("core", _ok("core done")), ("crf", lambda: interrupted), ("tpp", lambda: _ok("x"))))
    (tmp_path / "report.md").write_text("an old report")
    with pytest.raises(KeyboardInterrupt):
        cli.tour(tmp_path)
    report = (tmp_path / "report.md").read_text()
    assert "## core (ok" in report and "- core done" in report
    assert "## crf (interrupted)" in report and "## tpp (not run)" in report
    assert "an old report" not in report
    assert not list(tmp_path.glob(".*.tmp"))


def test_sections_not_run_have_their_old_figures_called_stale(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "tour_sections", _sections(
        ("core", _ok("a", figure=True)), ("crf", lambda: _ok("b", figure=True))))
    assert cli.tour(tmp_path) == 0
    assert cli.tour(tmp_path, only=["core"]) == 0
    report = (tmp_path / "report.md").read_text()
    assert "## crf (not run)" in report and "stale: the figures in `crf/`" in report
    assert "![fig.png](core/fig.png)" in report and "crf/fig.png" not in report


def test_rerun_section_drops_its_old_figures(tmp_path, monkeypatch):
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "old.png").write_bytes(b"png")
    monkeypatch.setattr(cli, "tour_sections", _sections(("core", _ok("a", figure=True))))
    assert cli.tour(tmp_path) == 0
    assert sorted(p.name for p in (tmp_path / "core").iterdir()) == ["fig.png"]


def test_unusable_out_and_unknown_section_are_one_line_errors(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert cli.main(["tour", "--out", str(blocker / "sub"), "--only", "core"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("condprob tour: cannot write the report to --out") and \
        err.count("\n") == 1
    assert cli.main(["tour", "--out", str(tmp_path), "--only", "nope"]) == 2
    err = capsys.readouterr().err
    assert "--only: unknown section(s) ['nope']" in err and err.count("\n") == 1


def test_silent_sections_print_progress(tmp_path, monkeypatch, capsys):
    import time

    def slow(out):
        time.sleep(2.5)
        return "done"

    def uses_the_stream(out):
        import sys

        sys.stdout.isatty()
        return str(sys.stdout.encoding)

    monkeypatch.setattr(cli, "HEARTBEAT_SECONDS", 1.0)
    monkeypatch.setattr(cli, "tour_sections",
                        _sections(("core", slow), ("crf", lambda: uses_the_stream)))
    assert cli.tour(tmp_path) == 0
    assert "[tour] core: still running (" in capsys.readouterr().out


def test_thread_count_on_small_machines(monkeypatch):
    import torch

    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.setattr(cli.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
        assert cli.default_threads() == 1
        cli._set_threads(None)
        assert torch.get_num_threads() == 1
        cli._set_threads(2)
        assert torch.get_num_threads() == 2
        monkeypatch.setattr(cli.os, "sched_getaffinity", lambda pid: set(range(16)),
                            raising=False)
        assert cli.default_threads() == 16
    finally:
        torch.set_num_threads(before)
