import pickle

import pytest
import torch

from condprob.errors import ValidationError
from tpp.data import EventBatch


def small() -> EventBatch:
    return EventBatch.from_sequences([[0.5, 1.0, 2.5], [0.2], []], [[0, 1, 1], [2], []], T=3.0)


def test_padding_lengths_and_views():
    b = small()
    assert b.times.shape == (3, 3) and b.lengths.tolist() == [3, 1, 0]
    assert b.num_marks == 3 and b.num_events == 4 and len(b) == 3
    assert b.times[1].tolist() == [0.2, 3.0, 3.0]            # padded with T
    assert b.inter_times[0].tolist() == [0.5, 0.5, 1.5]
    assert b.inter_times[1].tolist() == [0.2, 0.0, 0.0]
    assert b.last_times.tolist() == [2.5, 0.2, 0.0]
    t, m = b.sequence(0)
    assert t.tolist() == [0.5, 1.0, 2.5] and m.tolist() == [0, 1, 1]
    sub = b[1]
    assert len(sub) == 1 and sub.max_len == 1 and sub.num_marks == 3
    assert "3 sequences" in repr(b)


def test_continuous_marks():
    b = EventBatch.from_sequences([[0.1, 0.4]], [[[1.0, 2.0], [3.0, 4.0]]], T=1.0)
    assert b.continuous and b.mark_dim == 2 and b.num_marks is None
    assert b.marks.shape == (1, 2, 2)
    with pytest.raises(ValidationError, match="finite"):
        EventBatch.from_sequences([[0.1]], [[[float("nan"), 0.0]]], T=1.0)


@pytest.mark.parametrize("times, marks, T, msg", [
    ([[1.0, 0.5]], [[0, 0]], 2.0, "not sorted"),
    ([[-0.1, 0.5]], [[0, 0]], 2.0, ">= 0"),
    ([[0.1, 2.5]], [[0, 0]], 2.0, "outside its window"),
    ([[0.1, float("inf")]], [[0, 0]], 2.0, "finite"),
    ([[0.1, 0.5]], [[0, -1]], 2.0, "out of range"),
    ([[0.1]], [[0]], -1.0, "positive window"),
    ([[0.1]], [[0, 1]], 1.0, "one mark per event"),
])
def test_validation_errors(times, marks, T, msg):
    with pytest.raises(ValidationError, match=msg):
        EventBatch.from_sequences(times, marks, T)


def test_mark_out_of_declared_range_and_shapes():
    with pytest.raises(ValidationError, match="out of range"):
        EventBatch.from_sequences([[0.1, 0.2]], [[0, 3]], T=1.0, num_marks=3)
    with pytest.raises(ValidationError, match=r"shape \(B, L\)"):
        EventBatch(torch.zeros(3), torch.zeros(3, dtype=torch.long), torch.tensor([3]), 1.0)
    with pytest.raises(ValidationError, match="lengths must lie"):
        EventBatch(torch.zeros(1, 2), torch.zeros(1, 2, dtype=torch.long), torch.tensor([3]), 1.0)
    with pytest.raises(ValidationError, match="lengths must be"):
        EventBatch(torch.zeros(1, 2), torch.zeros(1, 2, dtype=torch.long), torch.tensor([1.0]), 1.)
    with pytest.raises(ValidationError, match="marks must have shape"):
        EventBatch(torch.zeros(1, 2), torch.zeros(1, 3, dtype=torch.long), torch.tensor([2]), 1.0)
    with pytest.raises(ValidationError, match="at least one sequence"):
        EventBatch.from_sequences([], [], 1.0)


def test_from_dicts_defaults_and_errors():
    b = EventBatch.from_dicts([{"times": [0.1, 0.3], "marks": [1, 0], "T": 1.0},
                               {"times": [0.2], "T": 2.0}])
    assert b.T.tolist() == [1.0, 2.0] and b.marks[1, 0] == 0
    c = EventBatch.from_dicts([{"times": [0.1, 0.3]}])
    assert c.T.tolist() == [0.3]
    with pytest.raises(ValidationError, match="no 'times' key"):
        EventBatch.from_dicts([{"t": [0.1]}])


def test_csv_loader(tmp_path):
    p = tmp_path / "ev.csv"
    p.write_text("seq_id,time,mark\na,0.1,0\nb,0.5,1\na,0.7,2\n")
    b = EventBatch.from_csv(p, T=1.0)
    assert b.lengths.tolist() == [2, 1] and b.marks[0].tolist() == [0, 2]
    p.write_text("seq,time\n1,0.2\n")
    with pytest.raises(ValidationError, match="missing column"):
        EventBatch.from_csv(p)
    u = EventBatch.from_csv(p, seq_col="seq", mark_col=None, T=1.0)
    assert u.num_marks == 1


def test_easytpp_pickle(tmp_path):
    seq = [{"time_since_start": 0.5, "time_since_last_event": 0.5, "type_event": 1},
           {"time_since_start": 1.5, "time_since_last_event": 1.0, "type_event": 0}]
    p = tmp_path / "train.pkl"
    p.write_bytes(pickle.dumps({"dim_process": 3, "train": [seq, seq[:1]]}))
    b = EventBatch.from_easytpp_pickle(p, "train")
    assert b.num_marks == 3 and b.lengths.tolist() == [2, 1]
    assert b.T.tolist() == [1.5, 0.5]
    with pytest.raises(ValidationError, match="no split 'dev'"):
        EventBatch.from_easytpp_pickle(p, "dev")


def test_split_and_batches():
    b = EventBatch.from_sequences([[float(i + 1)] for i in range(10)], None, T=20.0)
    tr, va, te = b.split((0.6, 0.2, 0.2), seed=1)
    assert (len(tr), len(va), len(te)) == (6, 2, 2)
    got = sorted(torch.cat([p.times[:, 0] for p in (tr, va, te)]).tolist())
    assert got == [float(i + 1) for i in range(10)]
    assert [len(x) for x in b.batches(4)] == [4, 4, 2]
    shuffled = list(b.batches(3, shuffle=True, generator=torch.Generator().manual_seed(0)))
    assert sum(x.num_events for x in shuffled) == 10
    with pytest.raises(ValidationError, match="sum to 1"):
        b.split((0.5, 0.2))
    with pytest.raises(ValidationError, match="empty"):
        b.split((1.0, 0.0))
    with pytest.raises(ValidationError, match="batch_size"):
        next(b.batches(0))


def test_window():
    b = small().window(1.0, 3.0)
    assert b.sequence(0)[0].tolist() == [0.0, 1.5] and b.T.tolist() == [2.0] * 3
    with pytest.raises(ValidationError, match="t0 < t1"):
        small().window(2.0, 1.0)
