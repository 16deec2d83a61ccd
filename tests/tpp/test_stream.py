"""Event sequences streamed from many CSV / JSON-lines files equal the in-memory loaders' and
train to the same parameters."""

import json

import pytest
import torch

from condprob.errors import ValidationError
from tpp.data import EventBatch
from tpp.hawkes import Hawkes
from tpp.neural import IntensityFree
from tpp.stream import EventFiles
from tpp.train import train

DATA = Hawkes([0.3, 0.2], [[0.3, 0.1], [0.2, 0.2]], 1.5).simulate(30.0, 20, seed=3)


def write(tmp_path, parts=3):
    csvs, jsonls = [], []
    for f in range(parts):
        rows, lines = ["seq_id,time,mark"], []
        for b in range(f, len(DATA), parts):
            t, m = DATA.sequence(b)
            rows += [f"s{b},{x!r},{k}" for x, k in zip(t.tolist(), m.tolist(), strict=True)]
            lines.append(json.dumps({"times": t.tolist(), "marks": m.tolist(), "T": 30.0}))
        csvs.append(tmp_path / f"part{f}.csv")
        csvs[-1].write_text("\n".join(rows) + "\n")
        jsonls.append(tmp_path / f"part{f}.jsonl")
        jsonls[-1].write_text("\n\n".join(lines) + "\n")
    order = [b for f in range(parts) for b in range(f, len(DATA), parts)]
    return csvs, jsonls, DATA[order]


def same(a: EventBatch, b: EventBatch) -> bool:
    return (a.times.equal(b.times) and a.marks.equal(b.marks) and a.lengths.equal(b.lengths)
            and a.T.equal(b.T) and a.num_marks == b.num_marks)


def test_streamed_batches_equal_the_in_memory_ones(tmp_path):
    csvs, jsonls, full = write(tmp_path)
    for files in (EventFiles(csvs, 2, T=30.0), EventFiles(jsonls, 2, format="jsonl")):
        assert len(files) == len(full) == 20
        for idx in ([0], [19, 3, 7], list(range(20))):
            assert same(files[idx], full[idx])
    one = EventBatch.from_csv(csvs[1], T=30.0, num_marks=2)
    assert same(EventFiles(csvs[1:2], 2, T=30.0)[list(range(len(one)))], one)


def test_training_on_a_stream_equals_training_in_memory(tmp_path):
    csvs, _, full = write(tmp_path)
    params = []
    for data in (full, EventFiles(csvs, 2, T=30.0)):
        torch.manual_seed(0)
        model = IntensityFree(2, hidden=6, components=2)
        hist = train(model, data, epochs=2, batch_size=6, seed=1, progress=False)
        params.append((hist, [p.detach() for p in model.parameters()]))
    assert params[0][0] == params[1][0]
    assert all(a.equal(b) for a, b in zip(params[0][1], params[1][1], strict=True))


def test_errors(tmp_path):
    csvs, _, _ = write(tmp_path)
    with pytest.raises(ValidationError, match="num_marks"):
        EventFiles(csvs)
    for bad in (0, -1, 1.5):
        with pytest.raises(ValidationError, match="num_marks must be a positive integer"):
            EventFiles(csvs, bad)
    with pytest.raises(ValidationError, match="format"):
        EventFiles(csvs, 2, format="parquet")
    with pytest.raises(ValidationError, match="missing column"):
        EventFiles(csvs, 2, mark_col="type")
    other = tmp_path / "other.csv"
    other.write_text("id,time,mark\na,1.0,0\n")
    with pytest.raises(ValidationError, match="differs"):
        EventFiles([csvs[0], other], 2)
    shuffled = tmp_path / "shuffled.csv"
    shuffled.write_text("seq_id,time,mark\na,1.0,0\nb,1.0,1\na,2.0,0\n")
    with pytest.raises(ValidationError, match="not contiguous"):
        EventFiles([shuffled], 2)
    for fmt in ("csv", "jsonl"):
        with pytest.raises(ValidationError, match="no such file"):
            EventFiles([tmp_path / "missing"], 2, format=fmt)
    bad = tmp_path / "bad.csv"
    bad.write_text("seq_id,time,mark\na,1.0,0\nb,oops,1\nc,2.0\n")
    files = EventFiles([bad], 2)
    with pytest.raises(ValidationError, match="malformed CSV row 'b,oops,1'"):
        files[[1]]
    with pytest.raises(ValidationError, match="malformed CSV row 'c,2.0'"):
        files[[2]]
    assert files[[0]].num_events == 1 and files[[-3]].num_events == 1
    with pytest.raises(ValidationError, match="record indices must lie in"):
        files[[3]]                                          # was a bare IndexError
    broken = tmp_path / "bad.jsonl"
    broken.write_text('{"times": [1.0], "marks": [0]}\n{"times": [1.0\n')
    with pytest.raises(ValidationError, match="malformed JSON line"):
        EventFiles([broken], 2, format="jsonl")[[1]]
