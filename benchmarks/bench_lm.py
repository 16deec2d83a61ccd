"""Benchmark of the language-model kernels (issue 7): sort-free filtered sampling and regex token
index builds, against the peers side by side in one run.

- (a) top-p (0.9), top-k (50) and top-k + top-p sampling of one token per row at batch 64 with
  vocabularies of 32,000 and 128,000 (float32 logits, torch seed 0, the same tensor for everyone):
  `condprob.lm.sample_filtered` (dual-pivot rejection, no sort) against a sort-based torch
  reference (sort, cumulative sum, mask, multinomial) and against Hugging Face transformers'
  TopK/TopP logits warpers followed by softmax and multinomial. Check: every one of our draws lies
  in the kept set of the reference filter. (For top-k + top-p the warpers apply top-p to the
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

Every figure is a median wall time with one thread. Run from the repository root:
`.venv/bin/python -m benchmarks.bench_lm` (peers: `bash benchmarks/peers/make_all.sh`; a missing
peer shows as n/a).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from benchmarks.harness import Table, median_time, run_peer
from condprob.lm.filters import TopK, TopP
from condprob.lm.regex import TokenIndex, VocabularyTrie
from condprob.lm.sampling import sample_filtered

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
            theirs = None if hf is None else hf[f"{name}|{vocab}"]
            table.add_time(task, ours, "transformers 5.23.0 warpers", theirs)


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


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, no peers, table printed only (seconds)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    table = Table("Language-model kernels: filtered sampling and regex token indexes")
    vocabs = [1000] if args.smoke else [32_000, 128_000]
    bench_sampling(table, vocabs, 8 if args.smoke else 64, args.repeat, peers=not args.smoke)
    bench_index(table, vocabulary(args.smoke), args.repeat, peers=not args.smoke)
    if args.smoke:
        text = table.markdown()
        print(text)
        return text
    return table.emit("lm")


if __name__ == "__main__":
    main()
