"""Benchmark of `diagrams` (issue 8, section 5) against DisCoPy 1.2.2, side by side.

The test diagram is a hidden Markov model unrolled over T steps: a start state s on H, and at each
step copy H, emit O with e, observe the emission with a predicate p_t (an effect O -> I), move on
with the transition T. DisCoPy counts the copies as boxes, so T = 15 gives its 61 boxes and T = 50
its 201; `diagrams` holds the same diagram with the copies as wire branchings.

- drawing the 61-box diagram to PNG (matplotlib Agg, both);
- equality of two separately built 201-box diagrams: DisCoPy's default (syntactic) equality and
  ours (the free Markov category's, through the normal form); equality up to the axioms on the
  61-box diagram against DisCoPy's hypergraph equality, and on 201 boxes with a time limit;
- evaluating the 201-box diagram with random stochastic matrices (numpy seed 0, handed to DisCoPy
  as JSON): DisCoPy's Markov functor into `tensor.Tensor` against our tensor contraction; the
  results are compared (max relative difference), and evaluated exactly (rationals) by us;
- the Markov law f >> Discard(O) == Discard(H) and equality of a rebuilt-by-interchange diagram.

Run: `.venv/bin/python -m benchmarks.bench_diagrams` from the repository root (the peer comes from
`bash benchmarks/peers/make_all.sh`; without it the peer columns read n/a). `--smoke` runs tiny
sizes without the peer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import condprob as cp
from benchmarks.harness import ROOT, Table, median_time, run_peer
from diagrams import Box, Copy, Discard, Id, Interpretation, Predicate, State, draw

H = cp.FiniteSpace(4, name="H")
O = cp.FiniteSpace(3, name="O")
HYPERGRAPH_LIMIT_S = 60


def hmm(steps: int, interchanged: bool = False):
    """The unrolled HMM diagram (with `interchanged`, each step is wired in the other order)."""
    d = State("s", H)
    for t in range(steps):
        look = Box("e", H, O) >> Predicate(f"p{t}", O)
        step = Copy(H) >> (look @ Id(H)) if interchanged else Copy(H) >> (Id(H) @ look)
        d = d >> step >> Box("T", H, H)
    return d


def arrays(steps: int, seed: int = 0) -> dict[str, list]:
    rng = np.random.default_rng(seed)

    def stoch(n: int, m: int) -> np.ndarray:
        a = rng.random((n, m))
        return a / a.sum(1, keepdims=True)

    out = {"s": stoch(1, H.size)[0], "e": stoch(H.size, O.size), "T": stoch(H.size, H.size)}
    out.update({f"p{t}": rng.random(O.size) for t in range(steps)})
    return {k: v.tolist() for k, v in out.items()}


def interpretation(arrs: dict[str, list]) -> Interpretation:
    meaning = {"s": cp.State(arrs["s"], H), "e": cp.Kernel(arrs["e"], H, O),
               "T": cp.Kernel(arrs["T"], H, H)}
    meaning.update({k: cp.Predicate(v, O, name=k) for k, v in arrs.items() if k.startswith("p")})
    return Interpretation(meaning)


PEER = """
import json, signal, tempfile, os
import numpy as np
import matplotlib
matplotlib.use("Agg")
from discopy import markov
from discopy.markov import Ty, Box, Copy, Discard, Id, Category, Functor
from discopy.tensor import Dim, Tensor

SMALL, BIG, LIMIT = {small}, {big}, {limit}
arrs = json.loads('''{arrs}''')
H, O = Ty('H'), Ty('O')

def hmm(steps, interchanged=False):
    d = Box('s', Ty(), H)
    for t in range(steps):
        look = Box('e', H, O) >> Box(f'p{{t}}', O, Ty())
        step = Copy(H) >> (look @ Id(H)) if interchanged else Copy(H) >> (Id(H) @ look)
        d = d >> step >> Box('T', H, H)
    return d

out = {{}}
small, big = hmm(SMALL), hmm(BIG)
out["boxes_small"], out["boxes_big"] = len(small.boxes), len(big.boxes)
path = os.path.join(tempfile.mkdtemp(), "d.png")
out["draw_first"] = median_time(lambda: small.draw(path=path), repeat=1, warmup=0)
out["draw"] = median_time(lambda: small.draw(path=path), repeat=3)
a, b = hmm(BIG), hmm(BIG)
out["eq_syntactic"] = median_time(lambda: a == b, repeat=3)
out["interchange_syntactic"] = hmm(BIG) == hmm(BIG, interchanged=True)
f = Box('f', H, O)
out["markov_law"] = f >> Discard(O) == Discard(H)
with markov.Diagram.hypergraph_equality:
    out["markov_law_hypergraph"] = f >> Discard(O) == Discard(H)
    a, b = hmm(SMALL), hmm(SMALL, interchanged=True)
    out["eq_hypergraph_small"] = median_time(lambda: a == b, repeat=1, warmup=0)
    out["interchange_hypergraph_small"] = a == b
    def stop(*_):
        raise TimeoutError
    signal.signal(signal.SIGALRM, stop)
    signal.alarm(LIMIT)
    try:
        out["eq_hypergraph_big"] = median_time(lambda: hmm(BIG) == hmm(BIG, True), repeat=1,
                                               warmup=0)
    except TimeoutError:
        out["eq_hypergraph_big"] = None
    signal.alarm(0)

dims = {{H: Dim(4), O: Dim(3)}}
def dim(t):
    return Dim(*[4 if x == H.inside[0] else 3 for x in t.inside]) if len(t) else Dim(1)
ar = {{}}
for box in set(big.boxes):
    if isinstance(box, Copy):
        continue
    ar[box] = Tensor[float](np.array(arrs[box.name]), dim(box.dom), dim(box.cod))
F = Functor(ob=dims, ar=ar, cod=Category(Dim, Tensor[float]))
out["eval"] = median_time(lambda: F(big), repeat=3)
out["eval_value"] = np.asarray(F(big).array).reshape(-1).tolist()
print(json.dumps(out))
"""


COLD = """
import sys
from benchmarks.bench_diagrams import hmm
from benchmarks.harness import median_time
from diagrams import draw
d = hmm(int(sys.argv[1]))
print(median_time(lambda: draw(d, sys.argv[2]), repeat=1, warmup=0))
"""


def first_draw(steps: int, path: Path) -> float:
    """Our first drawing in a fresh process (imports done; the first draw's own loading of
    matplotlib's renderer and fonts and every label's glyphs included), the median of 3 processes."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    times = [float(subprocess.run([sys.executable, "-c", COLD, str(steps), str(path)], env=env,
                                  cwd=str(ROOT), capture_output=True, text=True,
                                  check=True).stdout.split()[-1]) for _ in range(3)]
    return statistics.median(times)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, no peer")
    args = parser.parse_args(argv)
    small, big = (3, 6) if args.smoke else (15, 50)
    arrs = arrays(big)
    interp = interpretation(arrs)
    d_small, d_big = hmm(small), hmm(big)
    n_small = len(d_small.boxes) + small   # + copies, counted as boxes by DisCoPy
    n_big = len(d_big.boxes) + big
    peer = None if args.smoke else run_peer("discopy", PEER.format(
        small=small, big=big, limit=HYPERGRAPH_LIMIT_S, arrs=json.dumps(arrs)))

    def get(key: str):
        return None if peer is None else peer.get(key)

    out = Path(tempfile.mkdtemp()) / "d.png"
    t_first = first_draw(small, out)
    t_draw = median_time(lambda: draw(d_small, out), repeat=3)

    def fresh_equal(a, b):
        a._cache.clear()
        b._cache.clear()
        return a == b

    a, b = hmm(big), hmm(big)
    t_eq = median_time(lambda: fresh_equal(a, b), repeat=3)
    a2, b2 = hmm(small), hmm(small, interchanged=True)
    t_eq_small = median_time(lambda: fresh_equal(a2, b2), repeat=3)
    a3, b3 = hmm(big), hmm(big, interchanged=True)
    t_eq_big = median_time(lambda: fresh_equal(a3, b3), repeat=3)
    t_eval = median_time(lambda: interp(d_big), repeat=3)
    ours = interp.array(d_big).reshape(-1)
    exact = Interpretation(interp.assignment, exact=True)
    t_exact = median_time(lambda: exact.array(d_big), repeat=1)
    markov = Box("f", H, O) >> Discard(O) == Discard(H)

    t = Table(f"diagrams vs DisCoPy 1.2.2 (HMM diagram, {n_small} and {n_big} boxes)")
    t.add_time(f"draw {n_small}-box diagram to PNG, first call in a fresh process", t_first,
               "DisCoPy draw, first call", get("draw_first"))
    t.add_time(f"draw {n_small}-box diagram to PNG, warm", t_draw, "DisCoPy draw", get("draw"))
    t.add_time(f"equality, two builds of {n_big} boxes", t_eq, "DisCoPy == (syntactic)",
               get("eq_syntactic"))
    t.add_time(f"equality up to axioms, {n_small} boxes (interchanged build)", t_eq_small,
               "DisCoPy hypergraph ==", get("eq_hypergraph_small"))
    big_hyp = get("eq_hypergraph_big")
    if peer is not None and big_hyp is None:
        t.add_time(f"equality up to axioms, {n_big} boxes (interchanged build)", t_eq_big,
                   "DisCoPy hypergraph ==", HYPERGRAPH_LIMIT_S, "stopped", at_least=True)
    else:
        t.add_time(f"equality up to axioms, {n_big} boxes (interchanged build)", t_eq_big,
                   "DisCoPy hypergraph ==", big_hyp)
    diff = "n/a"
    if peer is not None:
        theirs, mine = np.array(get("eval_value")), ours.numpy()
        diff = f"{np.max(np.abs(theirs - mine) / np.abs(mine)):.1e}"
    t.add_time(f"evaluate {n_big}-box diagram (float64)", t_eval, "DisCoPy functor into Tensor",
               get("eval"), note=f"max rel diff {diff}")
    t.add_value(f"evaluate {n_big}-box diagram exactly (rationals)", f"{t_exact:.2f} s", "DisCoPy",
                "no exact semantics")
    t.add_value("Markov law f >> Discard(O) == Discard(H)", str(markov), "DisCoPy (syntactic / "
                "hypergraph)", f"{get('markov_law')} / {get('markov_law_hypergraph')}")
    t.add_value(f"interchanged {n_big}-box build == original", str(a3 == b3),
                "DisCoPy (syntactic)", str(get("interchange_syntactic")))
    if args.smoke:
        print(t.markdown())
        return t.markdown()
    return t.emit("diagrams")


if __name__ == "__main__":
    main()
