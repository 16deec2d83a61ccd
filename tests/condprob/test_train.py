"""The training loop (`condprob.train`): sharding, two processes against one (gloo), exact resume
after a kill, early stopping, checkpoints and errors."""

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from condprob.errors import ValidationError
from condprob.train import Loss, Records, ShardedBatches, TensorData, evaluate, fit

JOB = Path(__file__).with_name("train_job.py")
_spec = importlib.util.spec_from_file_location("train_job", JOB)
job = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(job)


@given(st.integers(1, 40), st.integers(1, 12), st.integers(1, 4), st.integers(0, 3),
       st.booleans())
def test_shards_of_a_global_batch_are_the_single_process_batch(n, batch, world, epoch, shuffle):
    one = ShardedBatches(n, batch, shuffle, seed=5)
    one.set_epoch(epoch)
    shards = []
    for r in range(world):
        s = ShardedBatches(n, batch, shuffle, seed=5, rank=r, world_size=world)
        s.set_epoch(epoch)
        shards.append(list(s))
    assert all(len(s) == len(one) == math.ceil(n / batch) for s in shards)
    for i, (block, first) in enumerate(one):
        parts = [s[i][0] for s in shards]
        assert sorted(sum(parts, [])) == sorted(block)
        assert all(s[i][1] == first == block[0] for s in shards)
    assert sorted(sum((b for b, _ in one), [])) == list(range(n))


@pytest.fixture(scope="module")
def ddp(torchrun, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    torchrun(JOB, "ddp", str(out))
    return torch.load(out / "ddp_2.pt", weights_only=False), out


def test_two_processes_give_the_single_process_gradients(ddp):
    one = job.one_step_grads()
    # the gradient of the first global batch's loss, without the loop
    model = job.fresh()
    order = torch.randperm(33, generator=torch.Generator().manual_seed(0))[:8].tolist()
    total, count = job.objective(model, job.dataset()[order])
    (total / count).backward()
    direct = [p.grad for p in model.parameters()]
    for a, b, c in zip(ddp[0]["grads"], one, direct, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-10)
        torch.testing.assert_close(b, c, rtol=0, atol=1e-12)


def test_two_processes_follow_the_single_process_trajectory(ddp):
    params, hist = job.short_run()
    params2, hist2 = ddp[0]["run"]
    for a, b in zip(params2, params, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-8)
    assert hist2.keys() == hist.keys() == {"train", "valid"}
    for k in hist:
        assert hist2[k] == pytest.approx(hist[k], rel=1e-9)


def test_two_processes_skip_a_batch_with_count_zero_like_one(ddp):
    params, hist = job.empty_batch_run()
    params2, hist2 = ddp[0]["empty"]
    for a, b in zip(params2, params, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-8)
    assert hist2["train"] == pytest.approx(hist["train"], rel=1e-9)


def test_resumed_two_process_run_is_bit_exact(ddp):
    result, out = ddp
    uninterrupted, resumed = result["run"], result["resumed"]
    assert all(torch.equal(a, b) for a, b in zip(resumed[0], uninterrupted[0], strict=True))
    assert resumed[1] == uninterrupted[1]
    assert len(result["interrupted"][1]["train"]) == 2
    with pytest.raises(ValidationError, match="written by 2 process"):
        job.short_run(out / "ck", resume=True)


def test_killed_and_resumed_run_equals_an_uninterrupted_one(tmp_path):
    env = {"PYTHONPATH": str(JOB.parents[2]), "OMP_NUM_THREADS": "1", "PATH": ""}
    killed = subprocess.run([sys.executable, str(JOB), "kill", str(tmp_path)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -9, killed.stderr                  # SIGKILL after epoch 1
    assert torch.load(tmp_path / "ck" / "last.pt", weights_only=False)["state"].epoch == 2
    subprocess.run([sys.executable, str(JOB), "resume", str(tmp_path)], env=env, check=True,
                   timeout=120)
    (p1, h1), (p2, h2) = (torch.load(tmp_path / f, weights_only=False)
                          for f in ("uninterrupted.pt", "resumed.pt"))
    assert all(torch.equal(a, b) for a, b in zip(p1, p2, strict=True))
    assert h1 == h2 and len(h1["train"]) == 4


def test_early_stopping_restores_the_best_weights_and_writes_them(tmp_path):
    seen = []
    model = job.fresh()
    hist = fit(model, job.objective, job.dataset(), valid=job.dataset(9), epochs=60,
               batch_size=8, lr=0.3, patience=2, checkpoint_dir=tmp_path, progress=False,
               metrics=lambda m: {"neg_valid": -evaluate(m, job.objective, job.dataset(9))},
               on_epoch_end=lambda e, h: seen.append(e))
    n = len(hist["valid"])
    assert n < 60 and seen == list(range(n))
    best = min(hist["valid"])
    assert hist["valid"].index(best) == n - 3                        # two epochs without gain
    assert evaluate(model, job.objective, job.dataset(9)) == pytest.approx(best, rel=1e-12)
    assert hist["neg_valid"] == pytest.approx([-v for v in hist["valid"]], rel=1e-12)
    saved = job.fresh()
    saved.load_state_dict(torch.load(tmp_path / "best.pt"))
    assert evaluate(saved, job.objective, job.dataset(9)) == pytest.approx(best, rel=1e-12)
    # monitoring a metric to maximise stops at the same epoch
    hist2 = fit(job.fresh(), job.objective, job.dataset(), valid=job.dataset(9), epochs=60,
                batch_size=8, lr=0.3, patience=2, progress=False, monitor="neg_valid",
                mode="max", metrics=lambda m: {"neg_valid": -evaluate(m, job.objective,
                                                                       job.dataset(9))})
    assert hist2["valid"] == hist["valid"]


def test_records_and_max_steps():
    data = Records([[1.0, 2.0], [3.0], [4.0, 5.0, 6.0]],
                   lambda recs: torch.tensor([sum(r) for r in recs], dtype=torch.float64))
    w = torch.nn.Linear(1, 1, dtype=torch.float64)

    def objective(model, batch):
        return Loss(((model(batch[:, None])[:, 0] - 1.0) ** 2).sum(), len(batch))

    hist = fit(w, objective, data, epochs=5, batch_size=2, max_steps=3, progress=False)
    assert len(hist["train"]) == 2                                   # 2 steps, then 1 step


def test_a_batch_with_count_zero_takes_no_step():
    # the first global batch has no predicted tokens (length-1 sequences): the run is exactly the
    # run on the data without it, in steps, parameters and per-token losses
    tokens, lengths = job.dataset().tensors
    empty = TensorData(tokens, torch.where(torch.arange(33) < 8, 1, lengths))
    runs = []
    for data in (empty, TensorData(tokens[8:], lengths[8:])):
        model, steps = job.fresh(), []
        hist = fit(model, job.objective, data, epochs=2, batch_size=8, lr=0.05, shuffle=False,
                   progress=False, on_step_end=lambda step, _, steps=steps: steps.append(step))
        runs.append((job.params(model), hist, steps))
    (p1, h1, s1), (p2, h2, s2) = runs
    assert s1 == s2 == list(range(1, 9))
    assert all(torch.equal(a, b) for a, b in zip(p1, p2, strict=True))
    assert h1 == h2


def test_errors(tmp_path):
    m, obj, data = job.fresh(), job.objective, job.dataset()
    for kwargs, match in [({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size"),
                          ({"lr": 0.0}, "lr"), ({"patience": 2}, "needs `valid`"),
                          ({"resume": True}, "checkpoint_dir"), ({"mode": "up"}, "mode"),
                          ({"monitor": "f1"}, "needs `metrics`"), ({"max_steps": 0}, "max_steps"),
                          ({"seed": 0.5}, "seed must be an integer")]:
        with pytest.raises(ValidationError, match=match):
            fit(m, obj, data, progress=False, **kwargs)
    with pytest.raises(ValidationError, match="monitor='f1' is not among the metrics"):
        fit(m, obj, data, progress=False, monitor="f1", patience=1, metrics=lambda _: {"F1": 1.0})
    with pytest.raises(ValidationError, match="non-finite training loss"):
        fit(m, lambda model, b: Loss(obj(model, b).total * math.inf, 1), data, progress=False)
    with pytest.raises(ValidationError, match="count of a batch must be >= 0, got -1"):
        fit(m, lambda model, b: Loss(obj(model, b).total, -1), data, progress=False)
    with pytest.raises(ValidationError, match="count is 0 in every batch of epoch 0"):
        fit(m, lambda model, b: Loss(obj(model, b).total, 0), data, progress=False)
    with pytest.raises(ValidationError, match="count over the evaluated data must be > 0"):
        evaluate(m, lambda model, b: Loss(obj(model, b).total, 0), data)
    with pytest.raises(ValidationError, match="must return Loss"):
        fit(m, lambda model, b: obj(model, b).total, data, progress=False)
    with pytest.raises(ValidationError, match="scalar tensor"):
        fit(m, lambda model, b: Loss(torch.zeros(2), 1), data, progress=False)
    with pytest.raises(ValidationError, match="no trainable parameters"):
        fit(torch.nn.ReLU(), obj, data, progress=False)
    with pytest.raises(ValidationError, match="same first dimension"):
        TensorData(torch.zeros(3), torch.zeros(4))
    with pytest.raises(ValidationError, match="empty"):
        ShardedBatches(0, 4)
    records = Records(["a", "b", "c"], list)
    assert records[[0, -1]] == ["a", "c"] and TensorData(torch.arange(3))[[2]][0].tolist() == [2]
    for data in (records, TensorData(torch.arange(3))):
        with pytest.raises(ValidationError, match=r"record indices must lie in \[-3, 3\)"):
            data[[1, 5]]                                    # Records raised a bare IndexError
        with pytest.raises(ValidationError, match="must be integers"):
            data[[0.5]]
