"""Adversarial inputs to the training loop's datasets and arguments, multi-draft selection,
speculative steps and token scores."""

import pytest
import torch

from condprob.lm import BigramLM, TokenKernel
from condprob.lm.multidraft import identical_drafts_acceptance, lp_selection, optimal_acceptance
from condprob.lm.scores import curvature, token_scores
from condprob.train import FileRecords, Loss, TensorData, fit

P = torch.tensor([0.5, 0.5], dtype=torch.float64)
LM = TokenKernel(BigramLM.from_matrix(torch.full((3, 3), 1 / 3, dtype=torch.float64),
                                      torch.full((3,), 1 / 3, dtype=torch.float64)), 3)
DATA = TensorData(torch.zeros(4, 2))


def objective(model, batch):
    return Loss(model(batch[0]).sum(), torch.tensor(1.0))


@pytest.fixture
def files(tmp_path):
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe garbage\n\n1\n")
    return tmp_path


def test_file_records_refuse_binary_and_missing_files(files, clear_error):
    clear_error(lambda: FileRecords([files / "binary.txt"], lambda r: r), "not UTF-8")
    clear_error(lambda: FileRecords([files / "nope.txt"], lambda r: r), "no such file")
    clear_error(lambda: FileRecords([], lambda r: r), "at least one file")


BAD = [
    (lambda: TensorData(torch.zeros(3), torch.zeros(4)), "same first dimension"),
    (lambda: TensorData(torch.zeros(3))[[7]], "[-3, 3)"),
    (lambda: fit(torch.nn.Linear(2, 1), objective, DATA, epochs=-1), "epochs"),
    (lambda: fit(torch.nn.Linear(2, 1), objective, DATA, batch_size=0), "batch_size"),
    (lambda: lp_selection(P * 2, [P, P]), "sum to 1"),
    (lambda: lp_selection(torch.tensor([float("nan"), 1.0]), [P, P]), "non-finite"),
    (lambda: lp_selection(P, []), "drafts"),
    (lambda: lp_selection(P, [torch.tensor([1 / 3] * 3, dtype=torch.float64)]), "drafts"),
    (lambda: optimal_acceptance(P, [P * 3]), "sum to 1"),
    (lambda: identical_drafts_acceptance(P, P, 0), "k"),
    (lambda: token_scores(LM, [[0, 5]], 1), "[0, 3)"),
    (lambda: curvature(LM, [[0, 1]], 5), "prefix"),
]


@pytest.mark.parametrize("make,word", BAD)
def test_bad_inputs(make, word, clear_error):
    clear_error(make, word)
