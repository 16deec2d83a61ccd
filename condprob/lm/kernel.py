"""Next-token models as Markov kernels from prefixes to tokens.

A `TokenKernel` wraps any batched callable from token-id prefixes (a LongTensor (B, T)) to
logits (B, V): a torch module, an n-gram table (`condprob.lm.models.BigramLM`) or a Hugging Face
causal LM (`TokenKernel.from_hf`). It is the kernel prefix -> Cat(softmax(logits)). Decoding
methods are kernel transformations (`kernel.transform(TopP(0.9), Temperature(0.7))`), and
`kernel.steps(n)` is the n-fold composition prefix -> prefix + n tokens (a `SequenceKernel`;
`>>` adds steps). Both follow the kernel protocol (`condprob.protocol`): `kernel(prefix)` is the
law, `kernel.sample(prefix, sample_shape=(), *, generator=None)`, `kernel.log_prob(prefix, token)`.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

import pyro.distributions as pdist
import torch
from pyro.distributions import constraints

from condprob.errors import ValidationError, check_positive_int
from condprob.finite import Kernel
from condprob.lm.filters import Filter, check_logits, entropy
from condprob.protocol import (
    Law,
    Morphism,
    SampleShape,
    as_sample_shape,
    categorical_draws,
    num_draws,
)
from condprob.spaces import FiniteSpace, SequenceSpace, Space
from condprob.tabulation import tabulate

LogitFn = Callable[[torch.Tensor], torch.Tensor]


def as_prefix(prefix: torch.Tensor | Sequence[int] | Sequence[Sequence[int]],
              vocab_size: int) -> torch.Tensor:
    """A (B, T) LongTensor of token ids in [0, V), from a tensor or (nested) lists."""
    try:
        t = prefix if isinstance(prefix, torch.Tensor) else torch.as_tensor(prefix)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ValidationError(f"a prefix batch is a (B, T) array of token ids with rows of one "
                              f"length: {err}") from err
    if t.numel() == 0:
        t = t.long()
    if t.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValidationError(f"a prefix holds integer token ids, got dtype {t.dtype}")
    if t.ndim == 1:
        t = t.unsqueeze(0)
    if t.ndim != 2:
        raise ValidationError(f"a prefix batch has shape (B, T), got {tuple(t.shape)}")
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= vocab_size):
        raise ValidationError(f"token ids must lie in [0, {vocab_size}), got a prefix with "
                              f"ids in [{int(t.min())}, {int(t.max())}]")
    return t.long()


def gather_log_probs(lp: torch.Tensor, index: torch.Tensor | Sequence[int], what: str,
                     inputs: str) -> torch.Tensor:
    """lp[b, index[..., b]] for log-laws lp (B, N) of B inputs and outcome ids (..., B), the
    shape of `index` back; `ValidationError` names the outcome (`what`, e.g. "token") for
    non-integer, misshapen or out-of-range ids."""
    idx = torch.as_tensor(index)
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        raise ValidationError(f"{what}s are integer ids, got dtype {idx.dtype}")
    idx = idx.long()
    b, n = lp.shape
    if idx.ndim == 0 or idx.shape[-1] != b:
        raise ValidationError(f"{what}s of shape {tuple(idx.shape)} for {b} {inputs}: expected "
                              f"shape (..., {b})")
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise ValidationError(f"{what} ids must lie in [0, {n}), got ids in [{int(idx.min())}, "
                              f"{int(idx.max())}]")
    return lp.expand(*idx.shape, n).gather(-1, idx[..., None])[..., 0]


class TokenKernel(Morphism):
    """The kernel prefix -> Cat(softmax(model(prefix))) over a vocabulary.

    `model` maps a LongTensor (B, T) of prefixes to logits (B, V). `vocab` is a list of token
    strings, the vocabulary size or a `FiniteSpace`; `eos` is the id that ends a sequence.
    """

    def __init__(self, model: LogitFn, vocab: Sequence[str] | int | FiniteSpace,
                 eos: int | None = None, transforms: Sequence[Filter] = ()):
        if not callable(model):
            raise TypeError(f"model must be callable (prefixes -> logits), got {model!r}")
        self.model = model
        self.vocab = vocab if isinstance(vocab, FiniteSpace) else FiniteSpace(vocab, name="token")
        if eos is not None and not 0 <= eos < self.vocab.size:
            raise ValidationError(f"eos id {eos} is outside the vocabulary of size "
                                  f"{self.vocab.size}")
        self.eos = eos
        self.transforms = tuple(transforms)
        self.dom = SequenceSpace(self.vocab, "prefix")
        self.cod = self.vocab

    @classmethod
    def from_hf(cls, model: torch.nn.Module, tokenizer: object) -> TokenKernel:
        """Wrap a loaded Hugging Face causal LM and its tokenizer (nothing is downloaded)."""
        vocab = [tokenizer.convert_ids_to_tokens(i) for i in range(len(tokenizer))]
        eos = getattr(tokenizer, "eos_token_id", None)

        def logits(prefix: torch.Tensor) -> torch.Tensor:
            with torch.no_grad():
                return model(prefix).logits[:, -1, : len(vocab)]

        return cls(logits, vocab, eos=eos)

    @property
    def vocab_size(self) -> int:
        return self.vocab.size

    @property
    def event_shape(self) -> tuple[int, ...]:
        """A draw is one token id (batch shape: the number of prefixes given)."""
        return ()

    def transform(self, *filters: Filter) -> TokenKernel:
        """The kernel after the decoding methods `filters`, applied left to right."""
        for f in filters:
            if not isinstance(f, Filter):
                raise TypeError(f"{f!r} is not a condprob.lm filter (Temperature, TopK, ...)")
        return TokenKernel(self.model, self.vocab, self.eos,
                           self.transforms + tuple(filters))

    def logits(self, prefix: torch.Tensor | Sequence) -> torch.Tensor:
        """Normalised log-probabilities (B, V) of the next token given each prefix (B, T), or
        given one prefix written as a tuple of token ids or strings (a label, as in `tabulate`)."""
        if isinstance(prefix, tuple):
            prefix = [self.prefix_ids(prefix)]
        t = as_prefix(prefix, self.vocab_size)
        out = self.model(t)
        if not isinstance(out, torch.Tensor) or out.shape != (t.shape[0], self.vocab_size):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValidationError(f"the model returned {shape}; expected logits of shape "
                                  f"({t.shape[0]}, {self.vocab_size})")
        check_logits(out, "model logits")
        for f in self.transforms:
            out = f(out)
        return torch.log_softmax(out, -1)

    def __call__(self, prefix: torch.Tensor | Sequence) -> pdist.Categorical:
        """The next-token law after each prefix, a Pyro Categorical with batch_shape (B,)."""
        return pdist.Categorical(logits=self.logits(prefix))

    def sample(self, prefix: torch.Tensor | Sequence, sample_shape: SampleShape = (), *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Next tokens drawn after each prefix, shape sample_shape + (B,)."""
        return categorical_draws(self.logits(prefix).exp(), sample_shape, generator=generator)

    def log_prob(self, prefix: torch.Tensor | Sequence,
                 token: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """log P(token | prefix): tokens of shape (..., B) for B prefixes, the same shape back; a
        token may also be one vocabulary label (a string), for every prefix."""
        lp = self.logits(prefix)
        if isinstance(token, str):
            token = [self.token_id(token)] * lp.shape[0]
        return gather_log_probs(lp, token, "token", "prefixes")

    def entropy(self, prefix: torch.Tensor | Sequence) -> torch.Tensor:
        """H(next token | prefix) in nats, shape (B,)."""
        return entropy(self.logits(prefix))

    def steps(self, n: int) -> SequenceKernel:
        """The n-fold composition: prefix -> prefix followed by n tokens (stopping at eos)."""
        return SequenceKernel(self, n)

    def prefix_ids(self, prefix: Sequence[Hashable]) -> list[int]:
        """Token ids of a prefix given by ids or by token strings (a label of a finite space)."""
        if isinstance(prefix, str) or not isinstance(prefix, Sequence):
            raise ValidationError(f"a prefix label is a tuple of token ids or token strings, got "
                                  f"{prefix!r}")
        return [self.token_id(t) for t in prefix]

    def token_id(self, token: Hashable) -> int:
        """The id of a token given by its string (a vocabulary label) or by its id."""
        if token in self.vocab:
            return self.vocab.index(token)
        if isinstance(token, int) and not isinstance(token, bool) and 0 <= token < self.vocab_size:
            return token
        raise ValidationError(f"{token!r} is neither a token of the vocabulary nor an id in "
                              f"[0, {self.vocab_size})")

    def _table(self, inputs: Space, outputs: Space) -> torch.Tensor:
        """P(y | x) for prefixes x (labels: tuples of ids or tokens) and tokens y, in one model
        call per prefix length."""
        prefixes = [self.prefix_ids(x) for x in inputs.labels]
        cols = torch.tensor([self.token_id(y) for y in outputs.labels])
        table = torch.empty(len(prefixes), len(cols), dtype=torch.float64)
        for n in sorted({len(p) for p in prefixes}):
            rows = [i for i, p in enumerate(prefixes) if len(p) == n]
            probs = self.logits(torch.tensor([prefixes[i] for i in rows],
                                             dtype=torch.long).reshape(len(rows), n)).exp()
            table[rows] = probs[:, cols].double()
        return table

    def _after(self, first: Morphism) -> Morphism | None:
        """A finite kernel into prefixes (labels: tuples of ids or tokens) >> this kernel: the
        exact next-token mixture sum_p first(x)(p) P(token | p), a finite Kernel."""
        if not isinstance(first, Kernel):
            return None
        return first.then(tabulate(self, first.cod))

    def then(self, other: Morphism) -> Morphism:
        raise TypeError("a TokenKernel maps prefixes to tokens; compose sequence kernels "
                        "(kernel.steps(n) >> kernel.steps(m)), or tabulate it on finitely many "
                        "prefixes (condprob.tabulate) to compose it as a finite Kernel")

    def all_log_probs(self, tokens: torch.Tensor | Sequence, start: int = 0) -> torch.Tensor:
        """Next-token log-probabilities after every prefix tokens[:, :t], t = start..T:
        (B, T + 1 - start, V). One model call (teacher forcing) when the model gives every
        position's logits, a causal `model.all_logits(tokens) -> (B, T + 1, V)` (logits after
        each prefix, the empty one first); otherwise T + 1 - start calls of the model."""
        seq = as_prefix(tokens, self.vocab_size)
        b, t, v = seq.shape[0], seq.shape[1] + 1, self.vocab_size
        if not 0 <= start < t:
            raise ValidationError(f"start must lie in [0, {t}), got {start}")
        every = getattr(self.model, "all_logits", None)
        if every is None:
            return torch.stack([self.logits(seq[:, :i]) for i in range(start, t)], 1)
        with torch.no_grad():
            out = every(seq)
        if not isinstance(out, torch.Tensor) or out.shape != (b, t, v):
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise ValidationError(f"the model's all_logits returned {shape}; expected "
                                  f"({b}, {t}, {v})")
        flat = check_logits(out[:, start:].double().reshape(-1, v), "model logits")
        for f in self.transforms:
            flat = f(flat)
        return torch.log_softmax(flat, -1).reshape(b, t - start, v)

    def score(self, tokens: torch.Tensor | Sequence, prefix_len: int = 1
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-position (log-probability, entropy) of tokens[:, t] given tokens[:, :t], for
        t >= prefix_len; both (B, T - prefix_len). Surprisal is minus the log-probability.
        One model call for models with `all_logits` (see `all_log_probs`)."""
        seq = as_prefix(tokens, self.vocab_size)
        if not 1 <= prefix_len < seq.shape[1]:
            raise ValidationError(f"prefix_len must lie in [1, {seq.shape[1]}), got {prefix_len}")
        lp = self.all_log_probs(seq[:, :-1], prefix_len)
        return lp.gather(-1, seq[:, prefix_len:, None])[..., 0], entropy(lp)


class SequenceKernel(Morphism):
    """prefix -> prefix + up to n tokens drawn from a `TokenKernel` (n-fold composition).

    After `eos` the sequence stops: later positions hold `eos` with probability one.
    """

    def __init__(self, step: TokenKernel, n: int):
        check_positive_int(n, "the number of steps")
        self.step = step
        self.n = n
        self.dom = step.dom
        self.cod = step.dom

    def then(self, other: Morphism) -> Morphism:
        if not isinstance(other, SequenceKernel) or other.step is not self.step:
            raise TypeError("sequence kernels compose when they extend with the same TokenKernel")
        return SequenceKernel(self.step, self.n + other.n)

    def __call__(self, prefix: torch.Tensor | Sequence) -> Law:
        """The law of the extended sequences after each prefix (B, T): batch (B,), event (T + n,)."""
        t = as_prefix(prefix, self.step.vocab_size)
        return Law(self, t, (t.shape[0],), (t.shape[1] + self.n,),
                   constraints.integer_interval(0, self.step.vocab_size - 1))

    def sample(self, prefix: torch.Tensor | Sequence, sample_shape: SampleShape = (), *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Prefixes (B, T) extended by n tokens: shape sample_shape + (B, T + n)."""
        shape = as_sample_shape(sample_shape)
        start = as_prefix(prefix, self.step.vocab_size)
        seq = start.repeat(num_draws(shape), 1)
        done = torch.zeros(seq.shape[0], dtype=torch.bool)
        for _ in range(self.n):
            nxt = self.step.sample(seq, generator=generator)
            if self.step.eos is not None:
                nxt = torch.where(done, self.step.eos, nxt)
                done |= nxt == self.step.eos
            seq = torch.cat([seq, nxt.unsqueeze(-1)], -1)
        return seq.reshape(*shape, *start.shape[:-1], seq.shape[-1])

    def log_prob(self, prefix: torch.Tensor | Sequence,
                 sequence: torch.Tensor | Sequence) -> torch.Tensor:
        """log P(sequence | prefix) for prefixes (B, T) and sequences (..., B, T + n) that extend
        them (-inf for a sequence that does not start with its prefix); shape (..., B)."""
        start = as_prefix(prefix, self.step.vocab_size)
        b, t = start.shape
        seq = torch.as_tensor(sequence)
        if seq.ndim == 1:
            seq = seq.unsqueeze(0)
        if seq.ndim < 2 or seq.shape[-2:] != (b, t + self.n):
            raise ValidationError(f"sequences of shape {tuple(seq.shape)} after {b} prefixes of "
                                  f"length {t}: expected (..., {b}, {t + self.n})")
        flat = as_prefix(seq.reshape(-1, t + self.n), self.step.vocab_size)
        lp, _ = self.step.score(flat, t)
        if self.step.eos is not None:
            after = torch.cumsum(flat[:, t:] == self.step.eos, -1)
            after = torch.cat([torch.zeros_like(after[:, :1]), after[:, :-1]], -1) > 0
            tail_ok = ~after | (flat[:, t:] == self.step.eos)
            lp = torch.where(after, 0.0, lp)
            lp = torch.where(tail_ok, lp, float("-inf"))
        out = lp.sum(-1).reshape(seq.shape[:-1])
        extends = (seq[..., :t] == start).all(-1)
        return torch.where(extends, out, float("-inf"))
