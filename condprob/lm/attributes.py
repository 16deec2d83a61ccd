"""Attribute kernels and Bayes-inverted guidance of language models (GeDi, Krause et al. 2021).

An attribute kernel maps a token sequence to a law on a finite attribute space A (sentiment,
offensiveness, "the text will be accepted"). Its `next_probs(prefix)` is the batched finite kernel
token -> attribute at a prefix, c(a | prefix, v) for every next token v. Guided generation is the
Bayes inversion of that kernel against the model's next-token state:

    P(v | prefix, attribute = a) = P(v | prefix) c(a | prefix, v) / sum_w P(w | prefix) c(a | prefix, w),

computed by the core's `invert`; with guidance strength w the likelihood is tempered,
c(a | prefix, v)^w (w = 1: the exact conditional next-token law of the attribute kernel's model,
w = 0: the base model).

- `ClassConditional(lms, prior)`: GeDi's class-conditional construction: `p(a | x)` proportional to
  `p(a) prod_t p_a(x_t | x_<t)` for one language model per attribute; the next-token attribute
  kernel is itself a Bayes inversion, of the kernel a -> p_a(v | prefix) against p(a | prefix).
- `TextClassifier(fn, vocab)`: any classifier of decoded texts; `vader_sentiment` (VADER compound
  >= 0.05, its standard positive threshold) and `profanity` (alt-profanity-check's calibrated
  probability) are real offline verifiers.
- `RegularAttribute(conditioned)`: "the text completes a string of a regular language", exact
  for finite-state models from the bffg backward filter of a `ConditionedLM`; guiding with it
  gives the exact conditional law.
- `guide(lm, attribute, target, strength)`: the guided `TokenKernel`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import pyro.distributions as pdist
import torch

from condprob.automata import NO_STATE
from condprob.conditioning import invert
from condprob.errors import ConditioningError, ValidationError, check_nonnegative_int
from condprob.finite import Kernel, State
from condprob.lm.kernel import TokenKernel, as_prefix, gather_log_probs
from condprob.lm.regex import ConditionedLM
from condprob.protocol import Morphism, SampleShape, categorical_draws
from condprob.spaces import FiniteSpace, SequenceSpace
from condprob.tolerance import check_probabilities


class AttributeKernel(Morphism):
    """The kernel token sequence -> law on the finite `attributes` (see the module docstring).

    Subclasses give `probs(sequences) -> (B, A)`; `next_probs(prefix) -> (B, V, A)` defaults to
    `probs` of every one-token extension.
    """

    def __init__(self, attributes: Sequence[str] | FiniteSpace, vocab: FiniteSpace):
        self.attributes = (attributes if isinstance(attributes, FiniteSpace)
                           else FiniteSpace(attributes, name="attribute"))
        self.vocab = vocab
        self.dom = SequenceSpace(vocab, "prefix")
        self.cod = self.attributes

    def probs(self, sequences: torch.Tensor | Sequence) -> torch.Tensor:
        """c(a | sequence) for a batch of sequences (B, T): (B, A)."""
        raise NotImplementedError

    def next_probs(self, prefix: torch.Tensor | Sequence) -> torch.Tensor:
        """c(a | prefix followed by v) for every next token v: (B, V, A)."""
        seq = as_prefix(prefix, self.vocab.size)
        b, v = seq.shape[0], self.vocab.size
        ext = torch.cat([seq.repeat_interleave(v, 0), torch.arange(v).repeat(b).unsqueeze(-1)], 1)
        return self.probs(ext).reshape(b, v, -1)

    def token_kernel(self, prefix: torch.Tensor | Sequence) -> Kernel:
        """The finite kernel next token -> attribute at each prefix, batch (B,)."""
        return Kernel(self.next_probs(prefix), self.vocab, self.attributes)

    def index(self, target: str | int) -> int:
        """The position of an attribute given by label or index."""
        if isinstance(target, int) and not isinstance(target, bool):
            if not 0 <= target < self.attributes.size:
                raise ValidationError(f"attribute index {target} is outside [0, "
                                      f"{self.attributes.size})")
            return target
        return self.attributes.index(target)

    def __call__(self, sequences: torch.Tensor | Sequence) -> pdist.Categorical:
        """The attribute law of each sequence, a Pyro Categorical with batch_shape (B,)."""
        return pdist.Categorical(logits=self.probs(sequences).log())

    def sample(self, sequences: torch.Tensor | Sequence, sample_shape: SampleShape = (), *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Attribute indices drawn for each sequence: sample_shape + (B,)."""
        return categorical_draws(self.probs(sequences), sample_shape, generator=generator)

    def log_prob(self, sequences: torch.Tensor | Sequence,
                 attribute: torch.Tensor | Sequence[int]) -> torch.Tensor:
        """log c(attribute | sequence): attribute indices (..., B), the same shape back."""
        return gather_log_probs(self.probs(sequences).log(), attribute, "attribute",
                                "sequences")


class ClassConditional(AttributeKernel):
    """GeDi's attribute kernel from one language model per attribute (`lms`: attribute -> kernel
    over a shared vocabulary) and a prior on the attributes (uniform by default). Tokens before
    `prefix_len` are conditioned on, not scored."""

    def __init__(self, lms: Mapping[str, TokenKernel], prior: Sequence[float] | None = None,
                 prefix_len: int = 0):
        kernels = list(lms.values())
        if not kernels or any(k.vocab != kernels[0].vocab for k in kernels):
            raise ValidationError("class-conditional models must share one vocabulary")
        super().__init__(list(lms), kernels[0].vocab)
        self.lms = kernels
        a = len(kernels)
        p = torch.full((a,), 1.0 / a, dtype=torch.float64) if prior is None else torch.as_tensor(
            prior, dtype=torch.float64)
        if p.shape != (a,):
            raise ValidationError(f"the prior must be a law on the {a} attributes, got shape "
                                  f"{tuple(p.shape)}")
        check_probabilities(p, "the attribute prior")
        self.prior = p
        self.prefix_len = check_nonnegative_int(prefix_len, "prefix_len")

    def _scores(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """log p(a) + log p_a(seq[prefix_len:] | seq[:prefix_len]) (B, A) and the next-token
        laws p_a(v | seq) (B, A, V): one call per attribute for models scoring every position."""
        start = min(self.prefix_len, seq.shape[1])
        logs, nexts = [], []
        for lm in self.lms:
            lp = lm.all_log_probs(seq, start)
            logs.append(lp[:, :-1].gather(-1, seq[:, start:, None])[..., 0].sum(-1))
            nexts.append(lp[:, -1])
        return torch.stack(logs, -1) + self.prior.log(), torch.stack(nexts, 1).exp()

    def probs(self, sequences: torch.Tensor | Sequence) -> torch.Tensor:
        """p(a | sequence) by Bayes' rule over the class-conditional models."""
        joint, _ = self._scores(as_prefix(sequences, self.vocab.size))
        return torch.softmax(joint, -1)

    def next_probs(self, prefix: torch.Tensor | Sequence) -> torch.Tensor:
        """p(a | prefix, v): the inversion of a -> p_a(v | prefix) against p(a | prefix)."""
        joint, nxt = self._scores(as_prefix(prefix, self.vocab.size))
        posterior = State(torch.softmax(joint, -1), self.attributes)
        return invert(Kernel(nxt, self.attributes, self.vocab), posterior).array


class TextClassifier(AttributeKernel):
    """An attribute kernel from a classifier of texts: `fn(list of texts) -> (N, A)` laws on the
    `attributes`; a token sequence is decoded by joining the vocabulary's token strings (after
    the first `prefix_len` tokens)."""

    def __init__(self, fn: Callable[[list[str]], torch.Tensor], attributes: Sequence[str],
                 vocab: FiniteSpace, prefix_len: int = 0):
        super().__init__(attributes, vocab)
        self.fn, self.prefix_len = fn, check_nonnegative_int(prefix_len, "prefix_len")
        self.calls = 0

    def decode(self, sequences: torch.Tensor | Sequence) -> list[str]:
        """The texts of token sequences (B, T), the prefix left out."""
        labels = self.vocab.labels
        seq = as_prefix(sequences, self.vocab.size)[:, self.prefix_len:]
        return ["".join(str(labels[i]) for i in row) for row in seq.tolist()]

    def probs(self, sequences: torch.Tensor | Sequence) -> torch.Tensor:
        texts = self.decode(sequences)
        self.calls += len(texts)
        p = torch.as_tensor(self.fn(texts), dtype=torch.float64)
        if p.shape != (len(texts), self.attributes.size):
            raise ValidationError(f"the classifier returned shape {tuple(p.shape)}; expected "
                                  f"({len(texts)}, {self.attributes.size})")
        check_probabilities(p, "classifier outputs")
        return p


def vader_sentiment(vocab: FiniteSpace, prefix_len: int = 0) -> TextClassifier:
    """Attributes ("not positive", "positive"): VADER's compound score >= 0.05 (vaderSentiment,
    offline lexicon)."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyser = SentimentIntensityAnalyzer()

    def fn(texts: list[str]) -> torch.Tensor:
        pos = torch.tensor([analyser.polarity_scores(t)["compound"] >= 0.05 for t in texts],
                           dtype=torch.float64)
        return torch.stack([1 - pos, pos], -1)

    return TextClassifier(fn, ["not positive", "positive"], vocab, prefix_len)


def profanity(vocab: FiniteSpace, prefix_len: int = 0) -> TextClassifier:
    """Attributes ("clean", "offensive") with alt-profanity-check's calibrated probability."""
    from profanity_check import predict_prob

    def fn(texts: list[str]) -> torch.Tensor:
        off = torch.as_tensor(predict_prob(texts), dtype=torch.float64)
        return torch.stack([1 - off, off], -1)

    return TextClassifier(fn, ["clean", "offensive"], vocab, prefix_len)


class RegularAttribute(AttributeKernel):
    """Attributes ("reject", "accept"): whether the text generated after `prefix_len` tokens is
    accepted by the `ConditionedLM`'s event (a string of its language within max_len tokens),
    exactly, from its backward-filter messages: p(accept | prefix, v) is the guided weight of v
    over the model's probability of v."""

    def __init__(self, conditioned: ConditionedLM, prefix_len: int):
        super().__init__(["reject", "accept"], conditioned.base.vocab)
        self.conditioned = conditioned
        self.prefix_len = check_nonnegative_int(prefix_len, "prefix_len")

    def _accept_next(self, seq: torch.Tensor) -> torch.Tensor:
        c = self.conditioned
        gen = seq.shape[1] - self.prefix_len
        if not 0 <= gen < c.max_len:
            raise ValidationError(f"the attribute covers generated lengths [0, {c.max_len}), "
                                  f"got {gen}")
        q = c.index.run(seq[:, self.prefix_len:])
        weights = torch.zeros(seq.shape[0], self.vocab.size, dtype=torch.float64)
        live = q != NO_STATE
        if live.any():
            weights[live] = c.guided_weights(seq[live], q[live], gen)
        base = c.base.logits(seq).exp()
        return torch.where(base > 0, weights / torch.where(base > 0, base, 1.0), 0.0).clamp(0, 1)

    def next_probs(self, prefix: torch.Tensor | Sequence) -> torch.Tensor:
        acc = self._accept_next(as_prefix(prefix, self.vocab.size))
        return torch.stack([1 - acc, acc], -1)

    def probs(self, sequences: torch.Tensor | Sequence) -> torch.Tensor:
        """p(accept | sequence): the event's probability given the tokens so far."""
        seq = as_prefix(sequences, self.vocab.size)
        if seq.shape[1] == self.prefix_len + self.conditioned.max_len:
            acc = self.conditioned.index.accepts(seq[:, self.prefix_len:]).double()
        else:
            acc = (self.conditioned.base.logits(seq).exp() * self._accept_next(seq)).sum(-1)
        return torch.stack([1 - acc, acc], -1)


def guide(lm: TokenKernel, attribute: AttributeKernel, target: str | int,
          strength: float = 1.0) -> TokenKernel:
    """The next-token kernel P(v | prefix, attribute = target), by the core's `invert` of the
    attribute kernel (tempered: c(target | prefix, v)^strength) against P(v | prefix)."""
    if attribute.vocab != lm.vocab:
        raise ValidationError("the attribute kernel must read the model's vocabulary")
    if not isinstance(strength, int | float) or isinstance(strength, bool) or \
            not 0 <= strength < math.inf:
        raise ValidationError(f"the guidance strength must be a finite number >= 0, got "
                              f"{strength!r}")
    t = attribute.index(target)
    binary = FiniteSpace(["target", "other"], name="attribute")

    def model(prefix: torch.Tensor) -> torch.Tensor:
        like = attribute.next_probs(prefix)[..., t] ** strength
        prior = State(lm.logits(prefix).exp(), lm.vocab)
        if ((prior.array[:, 0] * like).sum(-1) <= 0).any():
            raise ConditioningError(f"attribute {attribute.attributes.labels[t]!r} after a "
                                    "prefix", "no next token can reach it (probability zero)")
        kernel = Kernel(torch.stack([like, 1 - like], -1), lm.vocab, binary)
        return invert(kernel, prior).array[:, 0].log()

    return TokenKernel(model, lm.vocab, lm.eos)
