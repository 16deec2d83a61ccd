"""Tour of `crf`: constrained CRFs end to end on synthetic data (well under a minute on 2 CPUs)."""

from __future__ import annotations

import math
import pathlib

import torch

import crf
from condprob.automata import DFA
from condprob.train import TensorData, fit


class _Positional(torch.nn.Module):
    """Free emissions per position, shared by all sequences: the paper's setup (no encoder)."""

    def __init__(self, length: int, labels: int):
        super().__init__()
        self.em = torch.nn.Parameter(torch.zeros(length, labels))

    def forward(self, tags: torch.Tensor) -> torch.Tensor:
        return self.em.expand(len(tags), -1, -1)


def _fit(model, data: torch.Tensor, steps: int = 150) -> torch.Tensor:
    """Free per-position emissions trained by full-batch Adam on the library's loop (no
    transition scores)."""
    for p in (model.transitions, model.start, model.end):
        p.data.zero_()
        p.requires_grad_(False)
    tagger = crf.Tagger(_Positional(data.shape[1], model.num_labels), model)
    fit(tagger, crf.sentence_nll, TensorData(data, data, torch.ones_like(data, dtype=torch.bool)),
        epochs=steps, batch_size=len(data), lr=0.1, progress=False)
    return tagger.encoder.em.detach()


def run(out: pathlib.Path) -> str:
    """Constrained training vs constrained decoding, BIO decoding, counting constraints."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    lines = []

    # 1. The paper's experiment (b): language (a x)* | (b x)*, data (a x)^k : (b x)^k = 3 : 1
    print("crf: experiment (b), constrained training vs constrained decoding")
    labels, language = ["a", "b", "x"], "(a x)* | (b x)*"
    ks, trained, decoded = [1, 3, 6, 10], [], []
    for k in ks:
        data = torch.stack([torch.tensor([0, 2] * k)] * 3 + [torch.tensor([1, 2] * k)])
        reg = crf.RegCCRF(labels, language)
        trained.append(reg.nll(_fit(reg, data).expand(4, -1, -1), data).item())
        free = crf.LinearChainCRF(labels)
        em = _fit(free, data)
        dec = crf.RegCCRF(labels, language)
        dec.load_state_dict(free.state_dict())
        decoded.append(dec.nll(em.expand(4, -1, -1), data).item())
    h = -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    fig, ax = plt.subplots(figsize=(5, 3.2))
    ax.plot(ks, trained, "o-", label="constrained training (RegCCRF)")
    ax.plot(ks, decoded, "s-", label="constrained decoding")
    ax.axhline(h, color="gray", ls=":", label="H(3/4) = 0.562")
    ax.set_xlabel("k (sequence length 2k)")
    ax.set_ylabel("NLL (nats)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "crf_experiment_b.png", dpi=120)
    plt.close(fig)
    lines.append("experiment (b) NLL, k = " + ", ".join(map(str, ks)) + ": constrained training "
                 + " ".join(f"{v:.3f}" for v in trained) + "; constrained decoding "
                 + " ".join(f"{v:.3f}" for v in decoded))

    # 2. BIO: every output of the RegCCRF is well formed; the plain CRF's often are not
    print("crf: BIO decoding with and without the constraint")
    tags, pattern = crf.bio(["PER", "ORG", "LOC"])
    emissions = 2 * torch.randn(200, 12, len(tags))
    free = crf.LinearChainCRF(tags, init_scale=1.0)
    reg = crf.RegCCRF(tags, pattern)
    reg.load_state_dict(free.state_dict())
    with torch.no_grad():
        bad_free = (~reg.accepts(free.decode(emissions)[1])).float().mean().item()
        bad_reg = (~reg.accepts(reg.decode(emissions)[1])).float().mean().item()
        samples_ok = reg.accepts(reg.sample(emissions[:5], (100,)).reshape(-1, 12)).all().item()
        marg = reg.marginals(emissions[:1])[0]
    lines.append(f"BIO, 7 tags, 200 random sequences: invalid Viterbi outputs {bad_free:.0%} "
                 f"(CRF) vs {bad_reg:.0%} (RegCCRF); 500 RegCCRF samples all valid: {samples_ok}")
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.imshow(marg.T, aspect="auto", cmap="viridis")
    ax.set_yticks(range(len(tags)), tags, fontsize=7)
    ax.set_xlabel("position")
    ax.set_title("RegCCRF marginals p(y_t = tag)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "crf_marginals.png", dpi=120)
    plt.close(fig)

    # 3. Counting constraints: each core role at most once, as an intersection of automata
    print("crf: semantic-role style constraint (each core role at most once)")
    core, other = ["A0", "A1", "A2", "A3"], ["M1", "M2", "M3", "M4", "M5", "M6"]
    roles, span = crf.bio(core + other)
    dfa = DFA.from_regex(span, roles)
    for r in core:
        dfa = dfa.intersection(DFA.from_regex(f'[^"B-{r}"]* ("B-{r}" [^"B-{r}"]*)?', roles))
    srl = crf.RegCCRF(roles, dfa)
    with torch.no_grad():
        y = srl.sample(torch.randn(3, 15, len(roles)), (50,)).reshape(-1, 15)
        counts = torch.stack([(y == roles.index(f"B-{r}")).sum(-1) for r in core])
    lines.append(f"roles: {len(roles)} tags, minimal DFA {dfa.num_states} states, product chain "
                 f"{srl.num_states} states; max count of a core role in 150 samples: "
                 f"{int(counts.max())}")
    for line in lines:
        print("  " + line)
    return "\n".join(lines)
