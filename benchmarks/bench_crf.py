"""CRF speed on CPU against pytorch-crf 0.7.2, torch-struct 0.5 and ccrf 0.0.3, side by side.

Settings (the issue's): 1 thread, float32, batch 32, length 100, 20 and 64 labels; RegCCRF with
the BIO language of 9 entity types (19 labels). Peers run in their own environment (`crf`, made
by `bash benchmarks/peers/make_all.sh`). Every figure is a median of 11 runs; ours is the median of
three such rounds measured before, between and after the peers, to even out the load of a shared
machine.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_crf            # torch-struct at 64 labels skipped
    CRF_BENCH_STRUCT64=1 OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_crf   # needs ~12 GB and minutes
"""

from __future__ import annotations

import os
import statistics

import torch

import crf
from benchmarks.harness import Table, median_time, run_peer
from benchmarks.roofline import Work, chain_work

B, T = 32, 100
REPEAT = 11
SIZES = (20, 64)
TYPES = [f"T{i}" for i in range(9)]

PEER_CRF = """
import torch
torch.set_num_threads(1)
from torchcrf import CRF
out = {}
for L in SIZES:
    torch.manual_seed(0)
    crf = CRF(L, batch_first=True)
    u = torch.randn(B, T, L, requires_grad=True)
    y = torch.randint(0, L, (B, T))
    def nll():
        (-crf(u, y)).backward()
    def vit():
        with torch.no_grad():
            crf.decode(u)
    out[f"nll{L}"] = median_time(nll, REPEAT)
    out[f"vit{L}"] = median_time(vit, REPEAT)
print(json.dumps(out))
"""

PEER_STRUCT = """
import torch
torch.set_num_threads(1)
from torch_struct import LinearChainCRF
out = {}
for L in SIZES:
    torch.manual_seed(0)
    pot = torch.randn(B, T - 1, L, L, requires_grad=True)
    def part():
        LinearChainCRF(pot).partition.sum().backward()
    out[f"part{L}"] = median_time(part, 3 if L <= 20 else 1, 1 if L <= 20 else 0)
print(json.dumps(out))
"""

PEER_CCRF = """
import torch, warnings
warnings.filterwarnings("ignore")
torch.set_num_threads(1)
import automic
from ccrf import CRF, RegCCRF
out = {}
for L in SIZES:
    torch.manual_seed(0)
    m = CRF(L)
    u = torch.randn(B, T, L, requires_grad=True)
    y = torch.randint(0, L, (B, T))
    out[f"crf{L}"] = median_time(lambda: m.loss(u, y).backward(), REPEAT)
# the BIO language over TYPES: state 0 = outside (start), state k = inside a chunk of type k
K = len(TYPES)
A = automic.Automaton(K + 1, set(range(K + 1)))
for q in range(K + 1):
    A.transitions[q]["O"].add(0)
    for k, t in enumerate(TYPES):
        A.transitions[q]["B-" + t].add(k + 1)
    if q:
        A.transitions[q]["I-" + TYPES[q - 1]].add(q)
reg = RegCCRF(A)
u = torch.randn(B, T, reg.n_labels, requires_grad=True)
y = torch.tensor([reg.encode(s) for s in SEQS])
out["reg_labels"] = reg.n_labels
out["reg_nll"] = median_time(lambda: reg.loss(u, y).backward(), REPEAT)
def regmap():
    with torch.no_grad():
        reg.map(u)
out["reg_map"] = median_time(regmap, REPEAT)
print(json.dumps(out))
"""


PEER_CCRF_SAMPLER = """
import torch
import automic
from ccrf import RegCCRF
torch.manual_seed(0)
A = automic.Automaton(2, {0, 1})  # BIO with one type: 0 outside, 1 inside
for q in (0, 1):
    A.transitions[q]["O"].add(0)
    A.transitions[q]["B-X"].add(1)
A.transitions[1]["I-X"].add(1)
reg = RegCCRF(A)
perm = [LABELS.index(l) for l in reg.labels]  # ccrf sorts its labels
with torch.no_grad():
    reg.label_transitions.copy_(torch.tensor(TRANS)[perm][:, perm])
em = torch.tensor(EMIT)[:, :, perm]
tags = reg.sample(em, DRAWS)[0]
counts = {}
for row in tags.tolist():
    key = " ".join(reg.tag_pairs[t][0] for t in row)
    counts[key] = counts.get(key, 0) + 1
print(json.dumps(counts))
"""

SAMPLER_DRAWS = 50_000


def sampler_accuracy() -> tuple[float, float | None]:
    """Total variation from the exact law of our RegCCRF sampler and of ccrf's, on BIO with one
    type and length 4 (exact law by enumeration; no start or end scores, as ccrf has none)."""
    import itertools

    labels, pattern = crf.bio(["X"])
    torch.manual_seed(1)
    reg = crf.RegCCRF(labels, pattern, init_scale=1.0)
    with torch.no_grad():
        reg.start.zero_()
        reg.end.zero_()
    em = torch.randn(1, 4, len(labels))
    seqs = torch.tensor(list(itertools.product(range(len(labels)), repeat=4)))
    with torch.no_grad():
        lp = reg.log_prob(em.expand(len(seqs), -1, -1), seqs)
        draws = reg.sample(em, (SAMPLER_DRAWS,), generator=torch.Generator().manual_seed(2))[:, 0]
    exact = {" ".join(labels[i] for i in s): p for s, p in zip(seqs.tolist(), lp.exp().tolist(),
                                                                strict=True) if p > 0}

    def tv(counts: dict) -> float:
        keys = set(exact) | set(counts)
        return 0.5 * sum(abs(exact.get(k, 0.0) - counts.get(k, 0) / SAMPLER_DRAWS) for k in keys)

    mine: dict[str, int] = {}
    for row in draws.tolist():
        key = " ".join(labels[i] for i in row)
        mine[key] = mine.get(key, 0) + 1
    prelude = (f"LABELS = {labels!r}\nTRANS = {reg.transitions.tolist()!r}\n"
               f"EMIT = {em.tolist()!r}\nDRAWS = {SAMPLER_DRAWS}\n")
    theirs = run_peer("crf", prelude + PEER_CCRF_SAMPLER)
    return tv(mine), None if theirs is None else tv(theirs)


def ours() -> dict[str, float]:
    torch.set_num_threads(1)
    out = {}
    for L in SIZES:
        torch.manual_seed(0)
        m = crf.LinearChainCRF(L)
        u = torch.randn(B, T, L, requires_grad=True)
        y = torch.randint(0, L, (B, T))

        def nll(m=m, u=u, y=y):
            m.nll(u, y, reduction="sum").backward()

        def vit(m=m, u=u):
            with torch.no_grad():
                m.decode(u)

        def marg(m=m, u=u):
            with torch.no_grad():
                m.marginals(u)

        out[f"nll{L}"] = median_time(nll, REPEAT)
        out[f"vit{L}"] = median_time(vit, REPEAT)
        out[f"marg{L}"] = median_time(marg, REPEAT)
    labels, pattern = crf.bio(TYPES)
    reg = crf.RegCCRF(labels, pattern)
    u = torch.randn(B, T, len(labels), requires_grad=True)
    with torch.no_grad():
        y = reg.sample(torch.zeros(B, T, len(labels)),
                       generator=torch.Generator().manual_seed(0))

    def reg_nll():
        reg.nll(u, y, reduction="mean").backward()

    def reg_map():
        with torch.no_grad():
            reg.decode(u)

    out["reg_nll"] = median_time(reg_nll, REPEAT)
    out["reg_map"] = median_time(reg_map, REPEAT)
    out["reg_states"] = reg.num_states
    out["seqs"] = [[labels[i] for i in s] for s in y.tolist()]
    return out


def main() -> None:
    first = ours()
    prelude = (f"B, T, SIZES, TYPES, REPEAT = {B}, {T}, {SIZES!r}, {TYPES!r}, {REPEAT}\n"
               f"SEQS = {first['seqs']!r}\n")
    sizes64 = os.environ.get("CRF_BENCH_STRUCT64") == "1"
    peer_crf = run_peer("crf", prelude + PEER_CRF)
    second = ours()
    struct_sizes = SIZES if sizes64 else (20,)
    peer_struct = run_peer("crf", prelude + f"SIZES = {struct_sizes!r}\n" + PEER_STRUCT)
    peer_ccrf = run_peer("crf", prelude + PEER_CCRF)
    third = ours()
    me = {k: statistics.median([first[k], second[k], third[k]]) for k in first if k != "seqs"}

    def get(d: dict | None, k: str) -> float | None:
        return None if d is None else d.get(k)

    table = Table("CRF on CPU: 1 thread, float32, batch 32, length 100 (lower time is better)")
    for L in SIZES:
        fb = chain_work(B, T, L, 3)  # forward, backward, transition gradient
        vit = Work(flops=2.0 * B * T * L * L)  # an addition and a max per (t, i, j)
        table.add_time(f"NLL + backward, {L} labels", me[f"nll{L}"], "pytorch-crf 0.7.2",
                       get(peer_crf, f"nll{L}"), work=fb)
        table.add_time(f"NLL + backward, {L} labels", me[f"nll{L}"], "ccrf 0.0.3 CRF",
                       get(peer_ccrf, f"crf{L}"), work=fb)
        note = "" if get(peer_struct, f"part{L}") is not None else "skipped: ~12 GB"
        table.add_time(f"log Z + backward, {L} labels", me[f"nll{L}"], "torch-struct 0.5",
                       get(peer_struct, f"part{L}"), note, work=fb)
        table.add_time(f"Viterbi, {L} labels", me[f"vit{L}"], "pytorch-crf 0.7.2",
                       get(peer_crf, f"vit{L}"), work=vit)
        table.add_time(f"marginals, {L} labels", me[f"marg{L}"], "(none: pytorch-crf has no "
                       "marginals)", None, work=chain_work(B, T, L, 2))
    states = int(me["reg_states"])
    reg_note = f"BIO, {len(TYPES)} types, {states} chain states"
    table.add_time(f"RegCCRF NLL + backward ({reg_note})", me["reg_nll"], "ccrf 0.0.3 RegCCRF",
                   get(peer_ccrf, "reg_nll"), work=chain_work(B, T, states, 3))
    table.add_time(f"RegCCRF decode ({reg_note})", me["reg_map"], "ccrf 0.0.3 RegCCRF",
                   get(peer_ccrf, "reg_map"), work=Work(flops=2.0 * B * T * states**2))
    tv_ours, tv_ccrf = sampler_accuracy()
    table.add_value(f"RegCCRF sampler: total variation from the exact law (BIO, 1 type, length "
                    f"4, {SAMPLER_DRAWS:,} draws; sampling noise ~0.01)", f"{tv_ours:.3f}",
                    "ccrf 0.0.3 RegCCRF", "n/a" if tv_ccrf is None else f"{tv_ccrf:.3f}")
    table.emit("crf")


if __name__ == "__main__":
    main()
