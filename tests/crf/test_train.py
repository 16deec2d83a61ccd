"""A CRF and RegCCRF with an encoder, trained on the core's loop."""

import importlib.util
from pathlib import Path

import pytest
import torch

import crf
from condprob.train import FileRecords, Records, TensorData, evaluate, fit

LABELS, PATTERN = crf.bio(["a", "b"])
JOB = Path(__file__).with_name("crf_job.py")


def data(n=24, T=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, T, 3, generator=g, dtype=torch.float64)
    lengths = torch.randint(2, T + 1, (n,), generator=g)
    mask = torch.arange(T) < lengths[:, None]
    # gold tags: B-a where x0 > 1, continued by I-a while x1 > 0; B-b where x2 > 1
    tags = torch.zeros(n, T, dtype=torch.long)
    for b in range(n):
        prev = "O"
        for t in range(int(lengths[b])):
            if prev.endswith("-a") and x[b, t, 1] > 0:
                lab = "I-a"
            elif x[b, t, 0] > 1:
                lab = "B-a"
            elif x[b, t, 2] > 1:
                lab = "B-b"
            else:
                lab = "O"
            tags[b, t], prev = LABELS.index(lab), lab
    return TensorData(x, tags, mask)


@pytest.mark.parametrize("head", [crf.LinearChainCRF(LABELS), crf.RegCCRF(LABELS, PATTERN)],
                         ids=["crf", "regccrf"])
def test_tagger_trains_on_the_loop_and_objectives_are_sums(head):
    torch.manual_seed(0)
    tagger = crf.Tagger(torch.nn.Linear(3, len(LABELS), dtype=torch.float64), head.double())
    tr, te = data(), data(seed=1)
    x, tags, mask = te[list(range(len(te)))]
    before = head.nll(tagger(x), tags, mask, reduction="token_mean").item()
    assert evaluate(tagger, crf.token_nll, te, batch_size=5) == pytest.approx(before, rel=1e-12)
    assert evaluate(tagger, crf.sentence_nll, te, batch_size=7) == pytest.approx(
        head.nll(tagger(x), tags, mask, reduction="mean").item(), rel=1e-12)
    hist = fit(tagger, crf.token_nll, tr, valid=te, epochs=15, batch_size=8, lr=0.1,
               patience=3, progress=False)
    assert min(hist["valid"]) < 0.5 * before
    pred = tagger.decode(x, mask=mask)
    assert ((pred == tags) | ~mask).float().mean() > 0.8
    if isinstance(head, crf.RegCCRF):
        assert bool(head.accepts(pred.clamp(min=0), mask).all())


def test_tagger_streams_conll_files_like_the_in_memory_records(tmp_path):
    """CoNLL sentences ("word TAB tag", blank lines between) in several files, read on demand,
    train to the same parameters as the same sentences held in memory."""
    words = ["the", "cat", "sat", "on", "a", "mat"]
    g = torch.Generator().manual_seed(0)
    sents = []
    for _ in range(18):
        n = int(torch.randint(2, 6, (1,), generator=g))
        ws = [words[int(i)] for i in torch.randint(0, 6, (n,), generator=g)]
        sents.append([(w, "B-a" if w == "cat" else "O") for w in ws])
    paths = []
    for f in range(3):
        paths.append(tmp_path / f"part{f}.conll")
        paths[-1].write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in s)
                                         for s in sents[f::3]) + "\n")
    in_order = [s for f in range(3) for s in sents[f::3]]

    def collate(records):
        T = max(map(len, records))
        ids = torch.zeros(len(records), T, dtype=torch.long)
        tags = torch.zeros(len(records), T, dtype=torch.long)
        for b, rec in enumerate(records):
            for t, (w, lab) in enumerate(rec):
                ids[b, t], tags[b, t] = words.index(w), LABELS.index(lab)
        return ids, tags, torch.arange(T) < torch.tensor([len(r) for r in records])[:, None]

    stream = FileRecords(paths, lambda recs: collate([[ln.split("\t") for ln in r]
                                                      for r in recs]), group="blank")
    assert len(stream) == 18
    runs = []
    for data in (Records(in_order, collate), stream):
        torch.manual_seed(0)
        tagger = crf.Tagger(torch.nn.Embedding(6, len(LABELS)), crf.RegCCRF(LABELS, PATTERN))
        hist = fit(tagger, crf.sentence_nll, data, epochs=3, batch_size=4, lr=0.1,
                   progress=False)
        runs.append((hist, [p.detach() for p in tagger.parameters()]))
    assert runs[0][0] == runs[1][0]
    assert all(a.equal(b) for a, b in zip(runs[0][1], runs[1][1], strict=True))


def test_two_processes_train_the_tagger_like_one(torchrun, tmp_path):
    spec = importlib.util.spec_from_file_location("crf_job", JOB)
    job = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(job)
    torchrun(JOB, str(tmp_path))
    two = torch.load(tmp_path / "crf_2.pt")
    for got, want in zip(two, job.run(), strict=True):
        torch.testing.assert_close(got, want, rtol=0, atol=1e-8)
