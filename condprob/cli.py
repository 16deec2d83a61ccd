"""The `condprob` command: `condprob tour` (a demonstration of every package) and `condprob bench`.

Each package contributes a tour section through the entry-point group `condprob.tour`: a function
`run(out: pathlib.Path) -> str` that writes its figures into `out` and returns a short summary.
The core's own section comes first; the CLI never imports the packages by name.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

from condprob.errors import ValidationError
from condprob.tour import run as core_tour

TourSection = Callable[[Path], str]
HEARTBEAT_SECONDS = 20.0


def tour_sections() -> list[tuple[str, TourSection]]:
    """The core section, then every registered section in name order."""
    found = sorted(entry_points(group="condprob.tour"), key=lambda e: e.name)
    return [("core", core_tour)] + [(e.name, e.load) for e in found]  # type: ignore[misc]


@dataclass
class _Section:
    name: str
    status: str = "not run"
    seconds: float = 0.0
    summary: str = ""


def _markdown(sections: list[_Section], out: Path, started: str) -> str:
    """The report: one heading per section, its summary lines as a list, its figures."""
    lines = ["# condprob tour", "", f"Run started {started}.", ""]
    for s in sections:
        folder = out / s.name
        figures = sorted(p.name for p in folder.glob("*.png")) if folder.is_dir() else []
        if s.status in ("ok", "FAILED"):
            lines += [f"## {s.name} ({s.status}, {s.seconds:.1f} s)", ""]
            lines += [f"- {line.strip()}" for line in s.summary.strip().splitlines() if line.strip()]
            lines += [""] + [f"![{f}]({s.name}/{f})" for f in figures]
        else:
            lines += [f"## {s.name} ({s.status})", ""]
            if figures:
                lines.append(f"- stale: the figures in `{s.name}/` are from an earlier run")
        lines.append("")
    return "\n".join(lines)


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class _Heartbeat:
    """Prints `[tour] name: still running (N s)` when a section has been silent for
    `HEARTBEAT_SECONDS`."""

    def __init__(self, name: str):
        self.name, self.every = name, HEARTBEAT_SECONDS
        self.stream = sys.stdout
        self.t0 = self.last = time.monotonic()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def write(self, text: str) -> int:
        self.last = time.monotonic()
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> object:  # isatty, fileno, encoding, buffer, ...
        return getattr(self.stream, name)

    def _beat(self) -> None:
        while not self.done.wait(1.0):
            now = time.monotonic()
            if now - self.last >= self.every:
                self.write(f"[tour] {self.name}: still running ({now - self.t0:.0f} s)\n")
                self.flush()

    def __enter__(self) -> _Heartbeat:
        sys.stdout = self  # type: ignore[assignment]
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        sys.stdout = self.stream


def tour(out: Path, only: list[str] | None = None) -> int:
    """Run the tour sections and return the number of failures.

    `out/report.md` is rewritten atomically after every section, so an interrupted tour leaves a
    report of the finished sections; sections not run are marked, and figures left in their
    folders by an earlier run are called stale. A section's old figures are removed before it runs.
    """
    found = tour_sections()
    names = [name for name, _ in found]
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise ValidationError(f"--only: unknown section(s) {unknown}; the sections are {names}")
    out.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    sections = [_Section(name) for name in names]
    report = out / "report.md"
    failures = 0
    try:
        for sec, (name, section) in zip(sections, found, strict=True):
            if only and name not in only:
                continue
            print(f"[tour] {name} ...", flush=True)
            folder = out / name
            folder.mkdir(exist_ok=True)
            for old in folder.glob("*.png"):
                old.unlink()
            sec.status = "running"
            t0 = time.perf_counter()
            with _Heartbeat(name):
                try:
                    fn = section if name == "core" else section()  # entry points load lazily
                    sec.summary, sec.status = fn(folder), "ok"
                except Exception as exc:  # a failing section is reported, the others still run
                    failures += 1
                    sec.summary, sec.status = f"{type(exc).__name__}: {exc}", "FAILED"
            sec.seconds = time.perf_counter() - t0
            print(f"[tour] {name}: {sec.status} in {sec.seconds:.1f} s", flush=True)
            _write_atomically(report, _markdown(sections, out, started))
    except KeyboardInterrupt:
        for sec in sections:
            if sec.status == "running":
                sec.status = "interrupted"
        _write_atomically(report, _markdown(sections, out, started))
        print(f"\nTour interrupted; report of the finished sections: {report.resolve()}")
        raise
    if not any(s.status in ("ok", "FAILED") for s in sections):
        _write_atomically(report, _markdown(sections, out, started))
    print(f"\nTour report written to {report.resolve()}")
    return failures


def default_threads() -> int:
    """Torch threads for the CLI: 1 on machines with at most 4 usable CPUs, else all of them.

    The tour's many small operations contend for few cores: on a shared 2-core machine its bffg,
    crf and tpp sections took 26-29 s with one thread against 126-163 s with two."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return 1 if (cpus or 1) <= 4 else cpus  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="condprob", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tour", help="demonstrate every package and write a report")
    t.add_argument("--out", type=Path, default=Path("tour-report"), help="report folder")
    t.add_argument("--only", nargs="*", help="run only these sections")
    t.add_argument("--threads", type=int, default=None,
                   help="torch threads (default: OMP_NUM_THREADS if set, else 1 on machines "
                        "with at most 4 CPUs)")
    sub.add_parser("bench", add_help=False,
                   help="run the benchmarks against the peers, from a checkout "
                        "(arguments go to benchmarks/run_all.py: names, --only, --timeout)")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        _set_threads(None)
        return bench(argv[1:])
    args = parser.parse_args(argv)
    _set_threads(args.threads)
    try:
        return 1 if tour(args.out, args.only) else 0
    except ValidationError as err:
        print(f"condprob tour: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"condprob tour: cannot write the report to --out {args.out}: "
              f"{err.strerror or err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _set_threads(threads: int | None) -> None:
    if threads is not None and threads < 1:
        raise SystemExit(f"condprob: --threads must be a positive integer, got {threads}")
    if threads is None and os.environ.get("OMP_NUM_THREADS"):
        return
    import torch

    torch.set_num_threads(threads or default_threads())


def bench(argv: list[str]) -> int:
    """Run `benchmarks/run_all.py` of the source checkout this package is installed from."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "benchmarks" / "run_all.py").exists():
        print("condprob bench runs from a source checkout (benchmarks/ is not installed)")
        return 2
    sys.path.insert(0, str(root))
    from benchmarks.run_all import main as bench_main

    return bench_main(argv)


if __name__ == "__main__":
    raise SystemExit(main())
