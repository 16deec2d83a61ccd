"""The `condprob` command: `condprob tour` (a demonstration of every package) and `condprob bench`.

Each package contributes a tour section through the entry-point group `condprob.tour`: a function
`run(out: pathlib.Path) -> str` that writes its figures into `out` and returns a short summary.
The core's own section comes first; the CLI never imports the packages by name.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

from condprob.tour import run as core_tour

TourSection = Callable[[Path], str]


def tour_sections() -> list[tuple[str, TourSection]]:
    """The core section, then every registered section in name order."""
    found = sorted(entry_points(group="condprob.tour"), key=lambda e: e.name)
    return [("core", core_tour)] + [(e.name, e.load) for e in found]  # type: ignore[misc]


def tour(out: Path, only: list[str] | None = None) -> int:
    """Run the tour sections, write `report.md` into `out`, return the number of failures."""
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# condprob tour", ""]
    failures = 0
    for name, section in tour_sections():
        if only and name not in only:
            continue
        print(f"[tour] {name} ...", flush=True)
        t0 = time.perf_counter()
        fn = section if name == "core" else section()  # entry points load lazily
        folder = out / name
        folder.mkdir(exist_ok=True)
        try:
            summary = fn(folder)
            status = "ok"
        except Exception as exc:  # a failing section is reported, the others still run
            failures += 1
            summary, status = f"{type(exc).__name__}: {exc}", "FAILED"
        dt = time.perf_counter() - t0
        print(f"[tour] {name}: {status} in {dt:.1f} s", flush=True)
        lines += [f"## {name} ({status}, {dt:.1f} s)", "", summary.strip(), ""]
        figures = sorted(p.name for p in folder.glob("*.png"))
        lines += [f"![{f}]({name}/{f})" for f in figures] + [""]
    report = out / "report.md"
    report.write_text("\n".join(lines))
    print(f"\nTour report written to {report.resolve()}")
    return failures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="condprob", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tour", help="demonstrate every package and write a report")
    t.add_argument("--out", type=Path, default=Path("tour-report"), help="report folder")
    t.add_argument("--only", nargs="*", help="run only these sections")
    sub.add_parser("bench", add_help=False,
                   help="run the benchmarks against the peers, from a checkout "
                        "(arguments go to benchmarks/run_all.py: names, --only, --timeout)")
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:
        return bench(argv[1:])
    args = parser.parse_args(argv)
    return 1 if tour(args.out, args.only) else 0


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
