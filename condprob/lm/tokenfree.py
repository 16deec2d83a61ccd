"""Token-free (character-level) laws from a language model over tokens (Phan et al.,
"Understanding and Mitigating Tokenization Bias in Language Models", 2024).

A model trained on tokenised text puts its mass on canonical token sequences (those the tokenizer
produces). The probability that the text starts with the string s is the mass of the token
sequences whose text starts with s; each has a unique cover: the tokens before the one that
reaches the end of s spell a proper prefix s[:j], and, the sequence being canonical, they are the
encoding enc(s[:j]) (for maximum-prefix encoding and for BPE, whose canonical sequences are closed
under prefixes). Hence

    P(text starts with s) = sum_j P(enc(s[:j])) P(next token starts with s[j:] | enc(s[:j])),

summed over the j with |s| - j shorter than the longest token, so one model run per j: at most the
longest token's length per next-character law, independent of |s|. The next-character law is
P(c | s) proportional to P(text starts with s c), with P(end | s) = P(enc(s), eos) (eos models).

The naive law prompts the model with enc(s) and reads the first character of the next token:
biased, whatever the amount of training (after "A" with "AA" in the vocabulary, a maximum-prefix
encoding never continues the token "A" by one starting with "A").

- `MaxPrefixTokenizer(tokens)`: greedy longest-match encoding; `BPETokenizer` wraps a Hugging Face
  `tokenizers.Tokenizer` (`BPETokenizer.train(texts, vocab_size)` trains one locally).
- `CharacterKernel(lm, tokenizer)`: `probs(s)`, `naive_probs(s)`, `log_prob`, `sample`,
  `generate`, with the count of model runs (`runs`: token sequences scored).
- `PushforwardLM`: the exact token law of a character law given by its strings, pushed through a
  tokenizer (a model with infinite training data), for tests and the Markov-chain experiment.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

import pyro.distributions as pdist
import torch

from condprob.errors import ValidationError, check_positive_int
from condprob.lm.kernel import TokenKernel
from condprob.lm.scores import prefix_log_probs
from condprob.protocol import Morphism, SampleShape, categorical_draws
from condprob.spaces import FiniteSpace, SequenceSpace
from condprob.tolerance import check_probabilities

END = "<end>"


class Tokenizer(Protocol):
    """What `CharacterKernel` needs: the string of each token id ("" for special tokens such as
    eos) and the canonical encoding of a text."""

    tokens: list[str]

    def encode(self, text: str) -> list[int]: ...


class MaxPrefixTokenizer:
    """Maximum-prefix (greedy longest-match) encoding over `tokens`; `eos` (optional) is an
    extra special token appended to the vocabulary."""

    def __init__(self, tokens: Sequence[str], eos: str | None = None):
        tokens = list(tokens)
        if any(not isinstance(t, str) or not t for t in tokens) or len(set(tokens)) < len(tokens):
            raise ValidationError("tokens must be distinct non-empty strings")
        chars = {c for t in tokens for c in t}
        missing = sorted(chars - set(tokens))
        if missing:
            raise ValidationError(f"every character needs its own token (maximum-prefix encoding "
                                  f"of any text); missing {missing}")
        self.index = {t: i for i, t in enumerate(tokens)}
        self.longest = max(len(t) for t in tokens)
        self.tokens = tokens + ([""] if eos is not None else [])
        self.eos = len(tokens) if eos is not None else None

    def encode(self, text: str) -> list[int]:
        out, i = [], 0
        while i < len(text):
            for n in range(min(self.longest, len(text) - i), 0, -1):
                t = self.index.get(text[i : i + n])
                if t is not None:
                    out.append(t)
                    i += n
                    break
            else:
                raise ValidationError(f"character {text[i]!r} of the text has no token")
        return out


class BPETokenizer:
    """A Hugging Face `tokenizers.Tokenizer` (BPE, no pre-tokenizer) as a `Tokenizer`: special
    tokens have the empty string; `eos` is the id of `eos_token` when the vocabulary has it."""

    def __init__(self, tokenizer: object, eos_token: str = "<eos>"):
        size = tokenizer.get_vocab_size()
        special = {t for t in tokenizer.get_vocab() if t.startswith("<") and t.endswith(">")}
        names = [tokenizer.id_to_token(i) for i in range(size)]
        self.tokenizer = tokenizer
        self.tokens = ["" if t in special else t for t in names]
        self.eos = names.index(eos_token) if eos_token in names else None

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, eos_token: str = "<eos>"
              ) -> BPETokenizer:
        """Train a byte-pair encoding on `texts` locally (characters of the texts as alphabet)."""
        from tokenizers import Tokenizer, models, trainers

        texts = list(texts)
        alphabet = sorted({c for t in texts for c in t})
        tok = Tokenizer(models.BPE())
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[eos_token],
                                      initial_alphabet=alphabet, show_progress=False)
        tok.train_from_iterator(texts, trainer)
        return cls(tok, eos_token)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer.encode(text).ids


class CharacterKernel(Morphism):
    """The next-character law of a token-level `lm` whose vocabulary is `tokenizer.tokens`:
    string prefix -> law on the characters of the vocabulary and `END` (when the lm has eos).

    A kernel in the core's protocol: `dom` the character prefixes, `cod` the `outcomes`;
    `kernel(prefix)` is a Pyro Categorical over outcome indices, `sample(prefix, sample_shape, *,
    generator)` draws indices, `log_prob(prefix, char)` takes a character or index tensors.
    `runs` counts the token sequences the model has scored (one run each).
    """

    def __init__(self, lm: TokenKernel, tokenizer: Tokenizer):
        strings = list(tokenizer.tokens)
        if lm.vocab_size != len(strings):
            raise ValidationError(f"the model has {lm.vocab_size} tokens, the tokenizer "
                                  f"{len(strings)}")
        self.lm, self.tokenizer, self.strings = lm, tokenizer, strings
        self.chars = sorted({c for t in strings for c in t})
        self.outcomes = self.chars + ([END] if lm.eos is not None else [])
        self.longest = max(len(t) for t in strings)
        self.runs = 0
        self._char_index = {c: i for i, c in enumerate(self.chars)}
        self.dom = SequenceSpace(FiniteSpace(self.chars, "char"), "prefix")
        self.cod = FiniteSpace(self.outcomes, "char")

    def _check(self, prefix: str) -> str:
        if not isinstance(prefix, str):
            raise ValidationError(f"a character prefix is a str, got {type(prefix).__name__}")
        bad = sorted(set(prefix) - set(self.chars))
        if bad:
            raise ValidationError(f"the prefix has characters {bad} that no token spells")
        return prefix

    def _scores(self, seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        self.runs += len(seqs)
        return prefix_log_probs(self.lm, seqs)

    def _extension(self, suffix: str) -> torch.Tensor:
        """(C, V) indicator of the tokens that start with suffix + c, for each character c."""
        out = torch.zeros(len(self.chars), len(self.strings), dtype=torch.bool)
        n = len(suffix)
        for t, s in enumerate(self.strings):
            if len(s) > n and s.startswith(suffix):
                out[self._char_index[s[n]], t] = True
        return out

    def log_probs(self, prefix: str) -> torch.Tensor:
        """log P(next character | text starts with `prefix`) over `outcomes` (exact under the
        model's mass on canonical sequences; normalised over the outcomes)."""
        s = self._check(prefix)
        n = len(s)
        cuts = list(range(max(0, n + 1 - self.longest), n + 1))
        seqs = [self.tokenizer.encode(s[:j]) for j in cuts]
        seq_lp, next_lp = self._scores(seqs)
        joint = seq_lp.unsqueeze(-1) + next_lp
        masks = torch.stack([self._extension(s[j:]) for j in cuts])
        chars = torch.logsumexp(torch.where(masks, joint.unsqueeze(1), -torch.inf), (0, 2))
        if self.lm.eos is not None:
            chars = torch.cat([chars, joint[-1, self.lm.eos].reshape(1)])
        total = torch.logsumexp(chars, 0)
        if total == -torch.inf:
            raise ValidationError(f"the model gives the prefix {prefix!r} probability zero")
        return chars - total

    def probs(self, prefix: str) -> torch.Tensor:
        """P(next character | prefix) over `outcomes`."""
        return self.log_probs(prefix).exp()

    def naive_probs(self, prefix: str) -> torch.Tensor:
        """The biased law: prompt with enc(prefix) and read the next token's first character."""
        s = self._check(prefix)
        _, next_lp = self._scores([self.tokenizer.encode(s)])
        mass = torch.zeros(len(self.outcomes), dtype=torch.float64)
        p = next_lp[0].exp()
        for t, string in enumerate(self.strings):
            if string:
                mass[self._char_index[string[0]]] += p[t]
        if self.lm.eos is not None:
            mass[-1] = p[self.lm.eos]
        return mass / mass.sum()

    def __call__(self, prefix: str) -> pdist.Categorical:
        """The next-character law as a Pyro Categorical over the indices of `outcomes`."""
        return pdist.Categorical(logits=self.log_probs(prefix))

    def log_prob(self, prefix: str, char: str | torch.Tensor) -> torch.Tensor:
        """log P(char | prefix): a character (`END` for the end of the text) or index tensors
        into `outcomes` (any shape, the same shape back)."""
        if isinstance(char, str):
            if char not in self.outcomes:
                raise ValidationError(f"{char!r} is not an outcome of this kernel "
                                      f"({self.outcomes})")
            return self.log_probs(prefix)[self.outcomes.index(char)]
        idx = torch.as_tensor(char)
        if idx.is_floating_point() or (idx.numel() and (int(idx.min()) < 0
                                                         or int(idx.max()) >= len(self.outcomes))):
            raise ValidationError(f"outcome indices must be integers in [0, {len(self.outcomes)})")
        return self.log_probs(prefix)[idx.long()]

    def sample(self, prefix: str, sample_shape: SampleShape = (), *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Indices into `outcomes` of next characters (or `END`), shape sample_shape."""
        return categorical_draws(self.probs(prefix), sample_shape, generator=generator)

    def generate(self, prefix: str, n: int, generator: torch.Generator | None = None) -> str:
        """Extend `prefix` by up to n characters, character by character (stops at `END`)."""
        text = prefix
        for _ in range(n):
            c = self.outcomes[int(self.sample(text, generator=generator))]
            if c == END:
                break
            text += c
        return text


class PushforwardLM(torch.nn.Module):
    """The exact token law of texts with probabilities `texts` (a mapping text -> probability)
    encoded by `tokenizer` and ended by its eos: next-token logits by lookup in the trie of the
    token sequences (prefixes of probability zero get the uniform law)."""

    def __init__(self, texts: dict[str, float], tokenizer: Tokenizer, eos: int):
        super().__init__()
        self.vocab_size = len(tokenizer.tokens)
        if not isinstance(texts, dict) or not texts:
            raise ValidationError("texts must be a non-empty mapping text -> probability")
        if any(not isinstance(text, str) for text in texts):
            raise ValidationError("texts must map strings to probabilities")
        if isinstance(eos, bool) or not isinstance(eos, int) or not 0 <= eos < self.vocab_size:
            raise ValidationError(f"eos must be a token id in [0, {self.vocab_size}), got {eos!r}")
        try:
            probs = torch.tensor([float(v) for v in texts.values()], dtype=torch.float64)
        except (TypeError, ValueError) as err:
            raise ValidationError(f"text probabilities must be numbers: {err}") from None
        check_probabilities(probs, "text probabilities")
        self.mass: dict[tuple[int, ...], torch.Tensor] = {}
        for text, p in texts.items():
            body = tokenizer.encode(text)
            if eos in body:
                raise ValidationError(f"text {text!r} encodes to a sequence holding eos ({eos})")
            seq = (*body, eos)
            for t in range(len(seq)):
                row = self.mass.setdefault(seq[:t], torch.zeros(self.vocab_size,
                                                                dtype=torch.float64))
                row[seq[t]] += p
        self.eos = eos

    def forward(self, prefix: torch.Tensor) -> torch.Tensor:
        rows = []
        for seq in prefix.tolist():
            if self.eos in seq:
                row = torch.zeros(self.vocab_size, dtype=torch.float64)
                row[self.eos] = 1.0
            else:
                row = self.mass.get(tuple(seq), torch.ones(self.vocab_size, dtype=torch.float64))
            rows.append(row / row.sum())
        return torch.stack(rows).log()



def _chain(transition: torch.Tensor, initial: torch.Tensor, chars: str, length: int
           ) -> tuple[torch.Tensor, torch.Tensor]:
    t = torch.as_tensor(transition, dtype=torch.float64)
    init = torch.as_tensor(initial, dtype=torch.float64)
    c = len(chars)
    if t.shape != (c, c) or init.shape != (c,):
        raise ValidationError(f"expected a ({c}, {c}) transition matrix and a ({c},) initial "
                              f"law for the characters {chars!r}")
    check_probabilities(t, "transition (each row)")
    check_probabilities(init, "initial")
    check_positive_int(length, "length")
    return t, init


def chain_texts(transition: torch.Tensor, initial: torch.Tensor, chars: str, length: int
                ) -> dict[str, float]:
    """Every text of `length` characters of the Markov chain (initial, transition) over `chars`
    with its probability (exact; at most 2^16 texts)."""
    t, init = _chain(transition, initial, chars, length)
    if len(chars) ** length > 2**16:
        raise ValidationError(f"{len(chars)}^{length} texts are too many to enumerate")
    texts = {c: float(init[i]) for i, c in enumerate(chars)}
    for _ in range(length - 1):
        texts = {s + c: p * float(t[chars.index(s[-1]), j]) for s, p in texts.items()
                 for j, c in enumerate(chars)}
    return texts


def sample_chain(transition: torch.Tensor, initial: torch.Tensor, chars: str, length: int,
                 n: int, generator: torch.Generator | None = None) -> list[str]:
    """n texts of `length` characters drawn from the Markov chain."""
    t, init = _chain(transition, initial, chars, length)
    state = torch.multinomial(init.expand(n, -1), 1, generator=generator).squeeze(-1)
    out = [state]
    for _ in range(length - 1):
        state = torch.multinomial(t[state], 1, generator=generator).squeeze(-1)
        out.append(state)
    return ["".join(chars[i] for i in row) for row in torch.stack(out, 1).tolist()]


def transition_estimates(kernel: CharacterKernel, texts: Sequence[str]
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """The transition matrix read off a character kernel, corrected and naive: row a averages
    the next-character laws (renormalised over the characters) after every proper prefix of
    `texts` that ends with a. Returns (corrected (C, C), naive (C, C))."""
    c = len(kernel.chars)
    sums = torch.zeros(2, c, c, dtype=torch.float64)
    counts = torch.zeros(c, dtype=torch.float64)
    for text in texts:
        for i in range(1, len(text)):
            a = kernel.chars.index(text[i - 1])
            for m, law in enumerate((kernel.probs(text[:i]), kernel.naive_probs(text[:i]))):
                sums[m, a] += law[:c] / law[:c].sum()
            counts[a] += 1
    if (counts == 0).any():
        raise ValidationError("every character must end some prefix of the texts")
    est = sums / counts.unsqueeze(-1)
    return est[0], est[1]
