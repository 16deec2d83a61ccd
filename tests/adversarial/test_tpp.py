"""Adversarial inputs to tpp: malformed files for every loader, NaN/inf/negative/unsorted times,
ties, out-of-range marks and indices, bad parameters and simulation arguments."""

import math
import pickle

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from condprob.errors import ValidationError
from tpp import (
    EventBatch,
    Hawkes,
    HomogeneousPoisson,
    InhomogeneousPoisson,
    Renewal,
    SelfCorrecting,
)
from tpp.kernel import NextEvent, mark_space

H = Hawkes([0.5, 0.3], [[0.2, 0.1], [0.3, 0.4]], 1.5)
B2 = EventBatch.from_sequences([[1.0, 2.0]], [[0, 1]], T=3.0, num_marks=2)
B3 = EventBatch.from_sequences([[1.0, 2.0]], [[0, 2]], T=3.0, num_marks=3)

CSV = {
    "bad_time.csv": ("seq_id,time,mark\n0,abc,0\n", "line 2"),
    "float_mark.csv": ("seq_id,time,mark\n0,1.0,0.5\n", "integer"),
    "no_column.csv": ("a,b\n1,2\n", "missing column"),
    "empty.csv": ("", "missing column"),
    "negative_mark.csv": ("seq_id,time,mark\n0,1.0,-1\n", "mark -1"),
    "unsorted.csv": ("seq_id,time,mark\n0,2.0,0\n0,1.0,0\n", "not sorted"),
    "nan.csv": ("seq_id,time,mark\n0,nan,0\n", "finite"),
    "negative_time.csv": ("seq_id,time,mark\n0,-1,0\n0,0.5,0\n", ">= 0"),
}


@pytest.mark.parametrize("name", sorted(CSV))
def test_malformed_csv(tmp_path, name, clear_error):
    text, word = CSV[name]
    (tmp_path / name).write_text(text)
    clear_error(lambda: EventBatch.from_csv(tmp_path / name), word)


PICKLES = {
    "garbage": (b"not a pickle", "not a readable pickle"),
    "truncated": (pickle.dumps({"train": [[1]]})[:10], "not a readable pickle"),
    "list": (pickle.dumps([1, 2, 3]), "holds a list"),
    "no_split": (pickle.dumps({"dim_process": 2, "test": []}), "no split 'train'"),
    "no_key": (pickle.dumps({"dim_process": 2, "train": [[{"time_since_start": 1.0}]]}),
               "type_event"),
    "not_events": (pickle.dumps({"dim_process": 2, "train": "x"}), "dict"),
    "mark_out_of_range": (pickle.dumps({"dim_process": 2, "train": [[
        {"time_since_start": 1.0, "type_event": 5}]]}), "out of range"),
    "unsorted": (pickle.dumps({"dim_process": 2, "train": [[
        {"time_since_start": 2.0, "type_event": 0},
        {"time_since_start": 1.0, "type_event": 0}]]}), "not sorted"),
}


@pytest.mark.parametrize("name", sorted(PICKLES))
def test_malformed_easytpp_pickle(tmp_path, name, clear_error):
    data, word = PICKLES[name]
    (tmp_path / "f.pkl").write_bytes(data)
    clear_error(lambda: EventBatch.from_easytpp_pickle(tmp_path / "f.pkl"), word)


@given(bad=st.sampled_from([math.nan, math.inf, -1.0]), at=st.integers(0, 2))
def test_bad_times(bad, at, clear_error):
    times = [0.5, 1.0, 1.5]
    times[at] = bad
    word = "finite" if bad != -1.0 else ">= 0"
    clear_error(lambda: EventBatch.from_sequences([sorted(times) if bad == -1.0 else times],
                                                  T=5.0), word)


@given(times=st.lists(st.floats(0.0, 10.0), min_size=2, max_size=8, unique=True))
def test_unsorted_times(times, clear_error):
    rev = sorted(times, reverse=True)
    clear_error(lambda: EventBatch.from_sequences([rev], T=11.0), "not sorted")


@given(ticks=st.lists(st.integers(0, 4), min_size=1, max_size=6))
def test_ties_give_the_strict_formula_likelihood(ticks):
    """Times rounded to whole seconds: the compiled and the scan likelihood agree (both strict)."""
    times = sorted(float(t) for t in ticks)
    marks = [i % 2 for i in range(len(times))]
    b = EventBatch.from_sequences([times], [marks], T=5.0, num_marks=2)
    fast = H.log_likelihood(b)
    slow = Hawkes(H.mu, H.alpha, H.full_beta).log_likelihood(b)
    assert torch.isfinite(fast).all() and torch.allclose(fast, slow, rtol=1e-12)


BAD_BATCH = [
    (lambda: EventBatch.from_sequences([["a"]]), "sequence 0"),
    (lambda: EventBatch.from_dicts([{"times": [1.0], "marks": ["a"]}]), "sequence 0"),
    (lambda: EventBatch.from_dicts([{"marks": [0]}]), "'times'"),
    (lambda: EventBatch.from_sequences([[1.0, 2.0]], [[0]]), "one mark per event"),
    (lambda: EventBatch.from_sequences([[1.0, 2.0]], T=1.5), "outside its window"),
    (lambda: EventBatch.from_sequences([[1.0]], T=math.nan), "window"),
    (lambda: EventBatch.from_sequences([]), "at least one sequence"),
    (lambda: EventBatch.from_sequences([[1.0]], [[-1]], T=2.0), "out of range"),
    (lambda: EventBatch.from_sequences([[1.0]], [[3]], T=2.0, num_marks=2), "out of range"),
    (lambda: B2[5], "index 5"), (lambda: B2[[0, -7]], "-7"), (lambda: B2.sequence(3), "3"),
    (lambda: B2.window(2.0, 1.0), "t0 < t1"), (lambda: list(B2.batches(0)), "batch_size"),
    (lambda: B2.split((0.5, 0.6)), "sum to 1"),
]


@pytest.mark.parametrize("make,word", BAD_BATCH)
def test_bad_event_batches(make, word, clear_error):
    clear_error(make, word)


BAD_MODELS = [
    (lambda: Hawkes([math.nan], [[0.1]], 1.0), "mu"), (lambda: Hawkes([0.1], [[-0.1]], 1.0), "alpha"),
    (lambda: Hawkes([0.1], [[0.1]], 0.0), "beta"), (lambda: Hawkes([[0.1]], [[0.1]], 1.0), "mu"),
    (lambda: Hawkes([0.1, 0.2], [[0.1, 0.1], [0.1, 0.1]], [1.0, 2.0, 3.0]), "beta"),
    (lambda: Hawkes([0.1, 0.2], [[0.1]], 1.0), "alpha"),
    (lambda: H.log_likelihood(B3), "mark"), (lambda: H.next_event(B3), "mark"),
    (lambda: H.intensity(B2, torch.tensor([math.nan])), "finite"),
    (lambda: H.simulate(-1.0), "T"), (lambda: H.simulate(math.nan), "T"),
    (lambda: H.simulate(1.0, method="x"), "method"),
    (lambda: Hawkes.fit(EventBatch.from_sequences([[]], T=1.0)), "without events"),
    (lambda: Hawkes.fit(B2, decays="x"), "decays"),
    (lambda: Hawkes.fit(B2, num_components=0), "num_components"),
    (lambda: Hawkes([1.0], [[1.5]], 1.0).stationary_rate, "spectral radius"),
    (lambda: Hawkes([1.0], [[1.5]], 1.0).simulate(50.0), "max_events"),
    (lambda: HomogeneousPoisson(0.0), "rates"), (lambda: HomogeneousPoisson([-1.0]), "rates"),
    (lambda: HomogeneousPoisson.fit(B2, num_marks=3), "no events of mark"),
    (lambda: HomogeneousPoisson([1.0]).log_likelihood(B2), "mark"),
    (lambda: SelfCorrecting(-1.0), "mu"),
    (lambda: InhomogeneousPoisson(lambda t: t, lambda t: t, 0.0), "bound"),
]


@pytest.mark.parametrize("make,word", BAD_MODELS)
def test_bad_models_and_arguments(make, word, clear_error):
    clear_error(make, word)


def test_renewal_needs_a_distribution(clear_error):
    clear_error(lambda: Renewal("x"), "interval")


def test_non_finite_continuous_marks_are_refused():
    law = NextEvent(mark_space(None, 2), 1, lambda tau, mark: -tau - (mark**2).sum(-1),
                    lambda n, g: (torch.ones(n, 1), torch.zeros(n, 1, 2)))
    assert float(law.log_prob((torch.tensor([1.0]), torch.zeros(1, 2)))) == -1.0
    with pytest.raises(ValidationError, match="continuous marks must be finite"):
        law.log_prob((torch.tensor([1.0]), torch.tensor([[0.0, math.nan]])))     # was NaN
