"""Regular-language constraints for language models: token indexes, masked decoding, exact
conditioning of bigram models, and sequential Monte Carlo for any model.

- `char_dfa(pattern, chars)`: a character regular expression (Python-style syntax, parsed by
  interegular) as a `condprob.automata.DFA` over the characters `chars`.
- `TokenIndex`: the token-level automaton, next[q, v] = the state after reading token v's string
  from state q (`NO_STATE` where it leaves the language). It is built by walking a vocabulary trie
  level by level for all automaton states at once: the trie is formed by deduplicating
  (parent node, character) pairs at each depth, and each level is one gather over the states.
- `TokenIndex.bitmask()`: the per-state allowed masks packed 32 tokens to an int32 word
  (S + 1, ceil(V / 32)), gathered on the current state at decoding time.
- `constrain(kernel, index)`: masked decoding (local masking: the model's law restricted to the
  tokens that keep the text completable, renormalised). For a neural model this is not the law of
  the model conditioned on the language; `smc` corrects it with importance weights.
- `ConditionedLM`: exact conditioning of a finite-state model (bigram, HMM) on "the generated text
  lies in the language" by BFFG on the product (model state h, automaton state q)
  (`condprob.bffg.structured`): the generic `backward_filter` gives the messages
  beta_n(h, q) = P(accept within n more tokens | h, q) through the model's structured backward step,
  and the next-token laws are the guided laws
  P(w | prefix, accept) proportional to sum_h' P(w, h' | prefix) beta_{n-1}(h', next[q, w])
  (for a bigram the model state is the last token).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import interegular
import numpy as np
import torch

from condprob.automata import DFA, NO_STATE, pattern_symbols
from condprob.bffg.inference import backward_filter
from condprob.bffg.structured import TokenAutomatonKernel, automaton_chain
from condprob.errors import (
    ConditioningError,
    ValidationError,
    check_nonnegative_int,
    check_positive_int,
)
from condprob.lm.filters import NEG_INF
from condprob.lm.kernel import TokenKernel, as_prefix
from condprob.lm.models import HMMLM, BigramLM
from condprob.protocol import SampleShape


def char_dfa(pattern: str, chars: Sequence[str]) -> DFA:
    """The minimal DFA over the characters `chars` of a character-level regular expression."""
    chars = tuple(dict.fromkeys(chars))
    try:
        fsm = interegular.parse_pattern(pattern).to_fsm()
    except Exception as err:  # interegular raises several private error types
        raise ValidationError(f"malformed pattern {pattern!r}: {err}") from err
    keys = {c: fsm.alphabet[c] for c in chars}
    transitions = {(q, c): row[keys[c]] for q, row in fsm.map.items() for c in chars
                   if keys[c] in row}
    states = {fsm.initial} | {q for q, _ in transitions} | set(transitions.values())
    return DFA.from_transitions(chars, transitions, fsm.initial, set(fsm.finals) & states)


def _encode(tokens: Sequence[str], symbols: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lengths (V,) and a padded (V, max length) matrix of symbol indices of their
    characters (len(symbols) for characters outside `symbols` and for padding)."""
    lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
    width = max(int(lengths.max(initial=0)), 1)
    points = np.frombuffer("".join(tokens).encode("utf-32-le"), dtype=np.uint32)
    sym_points = np.array([ord(c) for c in symbols], dtype=np.uint32)
    order = np.argsort(sym_points)
    pos = np.searchsorted(sym_points[order], points).clip(max=max(len(symbols) - 1, 0))
    known = sym_points[order][pos] == points if len(symbols) else np.zeros(len(points), bool)
    codes = np.where(known, order[pos], len(symbols))
    starts = np.cumsum(lengths) - lengths
    rows = np.repeat(np.arange(len(tokens)), lengths)
    cols = np.arange(len(points)) - np.repeat(starts, lengths)
    out = np.full((len(tokens), width), len(symbols), dtype=np.int64)
    out[rows, cols] = codes
    return torch.from_numpy(lengths), torch.from_numpy(out)


class VocabularyTrie:
    """The trie of a vocabulary's token strings, level by level, independent of any pattern.

    Level d holds the distinct prefixes of length d + 1 as (parent node at level d - 1, character);
    `ends[d]` lists the tokens of length d + 1 and their nodes. Walking an automaton through it
    costs one gather per level over (states x nodes); empty tokens lead nowhere.
    """

    def __init__(self, tokens: Sequence[str]):
        self.size = len(tokens)
        self.chars = tuple(sorted({c for t in tokens for c in t}))
        lengths, codes = _encode(tokens, self.chars)
        self.parents: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.ends: list[tuple[torch.Tensor, torch.Tensor]] = []
        base = len(self.chars) + 1
        walking = torch.nonzero(lengths > 0).squeeze(-1)
        node = torch.zeros(walking.numel(), dtype=torch.long)
        for d in range(codes.shape[1]):
            if not walking.numel():
                break
            uniq, node = torch.unique(node * base + codes[walking, d], return_inverse=True)
            self.parents.append(uniq // base)
            self.labels.append(uniq % base)
            done = lengths[walking] == d + 1
            self.ends.append((walking[done], node[done]))
            walking, node = walking[~done], node[~done]

    def walk(self, dfa: DFA) -> torch.Tensor:
        """next[q, v]: the state of the character-level `dfa` after token v's string from q
        (`NO_STATE` where it rejects)."""
        s, n_sym = dfa.num_states, len(dfa.symbols)
        sink = s
        table = torch.full((s + 1, n_sym + 1), sink, dtype=torch.long)
        table[:s, :n_sym] = torch.where(dfa.table == NO_STATE, sink, dfa.table)
        charmap = torch.tensor([dfa.index.get(c, n_sym) for c in self.chars] + [n_sym],
                               dtype=torch.long)
        final = torch.full((s, self.size), NO_STATE, dtype=torch.long)
        level_state = torch.arange(s).unsqueeze(-1)
        for parents, labels, (tokens, nodes) in zip(self.parents, self.labels, self.ends,
                                                     strict=True):
            level_state = table[level_state[:, parents], charmap[labels]]
            reached = level_state[:, nodes]
            final[:, tokens] = torch.where(reached == sink, NO_STATE, reached)
        return final


class TokenIndex:
    """Token-level automaton: `next_state` (S, V), `accepting` (S,) and `start`.

    `eos` (optional) is the token that ends the text: allowed exactly in accepting states, where
    it leads to the absorbing state `done` = S (all further tokens are eos).
    """

    def __init__(self, next_state: torch.Tensor, accepting: torch.Tensor, start: int,
                 eos: int | None = None):
        self.next_state = next_state
        self.accepting = accepting
        self.start = start
        self.eos = eos

    @classmethod
    def from_dfa(cls, dfa: DFA, tokens: Sequence[str] | VocabularyTrie, eos: int | None = None
                 ) -> TokenIndex:
        """Walk the vocabulary trie of the token strings through a character-level `dfa`."""
        if not dfa.accepting:
            raise ConditioningError("the regular language", "it is empty")
        trie = tokens if isinstance(tokens, VocabularyTrie) else VocabularyTrie(tokens)
        nxt = trie.walk(dfa)
        s = dfa.num_states
        accepting = torch.zeros(s, dtype=torch.bool)
        accepting[list(dfa.accepting)] = True
        if eos is not None:
            nxt[:, eos] = torch.where(accepting, s, NO_STATE)
        return cls(nxt, accepting, dfa.start, eos)

    @classmethod
    def from_regex(cls, pattern: str, tokens: Sequence[str] | VocabularyTrie,
                   eos: int | None = None) -> TokenIndex:
        """The index of a character regular expression over the token strings `tokens` (pass a
        `VocabularyTrie` to reuse the vocabulary's preprocessing across patterns)."""
        trie = tokens if isinstance(tokens, VocabularyTrie) else VocabularyTrie(tokens)
        return cls.from_dfa(char_dfa(pattern, trie.chars), trie, eos)

    @classmethod
    def from_token_regex(cls, pattern: str, tokens: Sequence[str], eos: int | None = None
                         ) -> TokenIndex:
        """The index of a regular expression whose atoms are whole tokens (automata syntax).

        Tokens the pattern does not name behave alike (only `.` and negated classes reach them),
        so the automaton is built over the named tokens plus one stand-in for all the others:
        any vocabulary size works, not only the automata's symbol limit.
        """
        named = sorted(pattern_symbols(pattern) & {t for i, t in enumerate(tokens) if i != eos})
        other = "\u0000other"
        while other in named:
            other += "'"
        column = {t: a for a, t in enumerate(named)}
        ids = [i for i in range(len(tokens)) if i != eos]
        cols = torch.tensor([column.get(tokens[i], len(named)) for i in ids], dtype=torch.long)
        has_other = bool((cols == len(named)).any())
        dfa = DFA.from_regex(pattern, named + [other] if has_other else named)
        if not dfa.accepting:
            raise ConditioningError(f"the language of {pattern!r}", "it is empty")
        nxt = torch.full((dfa.num_states, len(tokens)), NO_STATE, dtype=torch.long)
        nxt[:, ids] = dfa.table[:, cols]
        accepting = torch.zeros(dfa.num_states, dtype=torch.bool)
        accepting[list(dfa.accepting)] = True
        if eos is not None:
            nxt[:, eos] = torch.where(accepting, dfa.num_states, NO_STATE)
        return cls(nxt, accepting, dfa.start, eos)

    @property
    def num_states(self) -> int:
        return self.next_state.shape[0]

    @property
    def vocab_size(self) -> int:
        return self.next_state.shape[1]

    def allowed(self) -> torch.Tensor:
        """(S + 1, V) mask of the tokens allowed in each state (row S: after eos, only eos)."""
        done = torch.zeros(1, self.vocab_size, dtype=torch.bool)
        if self.eos is not None:
            done[0, self.eos] = True
        return torch.cat([self.next_state != NO_STATE, done])

    def bitmask(self) -> torch.Tensor:
        """The allowed masks packed 32 tokens to a word: int32 (S + 1, ceil(V / 32)), bit v % 32
        of word v // 32 set when token v is allowed (32 times smaller than `allowed()`)."""
        return pack_bits(self.allowed())

    def run(self, tokens: torch.Tensor) -> torch.Tensor:
        """States after reading token sequences (B, T): NO_STATE if they left the language,
        S once eos was read."""
        q = torch.full((tokens.shape[0],), self.start, dtype=torch.long)
        ext = torch.cat([self.next_state, torch.full((1, self.vocab_size), NO_STATE)])
        if self.eos is not None:
            ext[-1, self.eos] = self.num_states
        for t in range(tokens.shape[1]):
            q = torch.where(q == NO_STATE, q, ext[q.clamp(min=0), tokens[:, t]])
        return q

    def accepts(self, tokens: torch.Tensor | Sequence) -> torch.Tensor:
        """Whether each token sequence (B, T) is a text of the language (ended by eos if any)."""
        q = self.run(as_prefix(tokens, self.vocab_size))
        if self.eos is not None:
            return q == self.num_states
        acc = torch.cat([self.accepting, torch.zeros(1, dtype=torch.bool)])
        return acc[q]


def pack_bits(mask: torch.Tensor) -> torch.Tensor:
    """Pack a boolean (..., V) mask into int32 words (..., ceil(V / 32)), little-endian bits."""
    v = mask.shape[-1]
    padded = torch.nn.functional.pad(mask, (0, -v % 32)).reshape(*mask.shape[:-1], -1, 32)
    weights = torch.tensor([1 << i for i in range(32)], dtype=torch.int64)
    words = (padded.long() * weights).sum(-1)
    return torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)


def unpack_bits(words: torch.Tensor, size: int) -> torch.Tensor:
    """The boolean (..., size) mask of int32 words made by `pack_bits`."""
    shifts = torch.arange(32, dtype=torch.int32)
    bits = (words.unsqueeze(-1) >> shifts) & 1
    return bits.reshape(*words.shape[:-1], -1)[..., :size].bool()


def constrain(kernel: TokenKernel, index: TokenIndex, prefix_len: int = 0) -> TokenKernel:
    """Masked decoding: the kernel's law restricted to the tokens the index allows after the
    tokens generated past the first `prefix_len` ones (the given prefix), renormalised."""
    check_nonnegative_int(prefix_len, "prefix_len")
    if index.vocab_size != kernel.vocab_size:
        raise ValidationError(f"index over {index.vocab_size} tokens for a kernel over "
                              f"{kernel.vocab_size}")
    bits = index.bitmask()

    def model(prefix: torch.Tensor) -> torch.Tensor:
        q = index.run(prefix[:, prefix_len:])
        if (q == NO_STATE).any():
            raise ConditioningError("a prefix outside the language", "no continuation is allowed")
        allowed = unpack_bits(bits[q], index.vocab_size)
        return kernel.logits(prefix).masked_fill(~allowed, NEG_INF)

    return TokenKernel(model, kernel.vocab, kernel.eos)


class ConditionedLM:
    """A finite-state language model conditioned exactly on "the next tokens form a text of the
    language" (a `BigramLM` or `HMMLM` kernel).

    Without eos the event is: the next `max_len` tokens are a string of the language. With eos:
    eos comes within `max_len` tokens and the tokens before it are a string of the language.
    `log_prob_event` is log P(event | prefix); `kernel()` is the conditioned next-token kernel.
    This is BFFG on the chain of (model state h, automaton state q) after each generated token
    (`condprob.bffg.structured`): `step` is the product kernel, `chain` the bffg `Model` of the
    states after each generated token and `filtered` its backward filter, message t being
    P(event | h, q after t + 1 tokens); the kernel's pullback is the model's structured backward
    step, so an 80k-word bigram never forms its transition matrix, and the next-token law is the
    guided law P(w | prefix) h_t(h', next(q, w)) / normaliser.
    """

    def __init__(self, kernel: TokenKernel, index: TokenIndex, max_len: int):
        if not isinstance(kernel.model, BigramLM | HMMLM):
            raise TypeError("exact conditioning needs a finite-state model (a BigramLM or HMMLM "
                            "kernel); for other models use condprob.lm.regex.smc")
        if index.vocab_size != kernel.vocab_size or index.eos != kernel.eos:
            raise ValidationError("the index must share the kernel's vocabulary and eos")
        check_positive_int(max_len, "max_len")
        self.base, self.index, self.max_len = kernel, index, max_len
        self.model: BigramLM | HMMLM = kernel.model
        states = kernel.vocab if isinstance(self.model, BigramLM) else None
        self.step = TokenAutomatonKernel(self.model, index.next_state, index.eos, states)
        final = torch.zeros(self.step.shape, dtype=torch.float64)
        if index.eos is None:
            final[:, :index.num_states] = index.accepting.double()
        else:
            final[:, self.step.done] = 1.0
        self.chain = automaton_chain(self.step, index.start, max_len, final)
        self.filtered = backward_filter(self.chain)

    def guided_weights(self, prefix: torch.Tensor, q: torch.Tensor, generated: int
                       ) -> torch.Tensor:
        """P(v | prefix) P(event | prefix, v): (B, V), for prefixes in automaton states q after
        `generated` generated tokens (the unnormalised guided next-token law)."""
        return self.step.guided_token_weights(prefix, q, self.filtered.messages[generated])

    def log_prob_event(self, prefix: Sequence[int] | torch.Tensor) -> torch.Tensor:
        """log P(event | prefix) for each prefix (B, T), exact."""
        t = as_prefix(prefix, self.base.vocab_size)
        q = torch.full((t.shape[0],), self.index.start, dtype=torch.long)
        return self.guided_weights(t, q, 0).sum(-1).log()

    def kernel(self, prefix_len: int = 1) -> TokenKernel:
        """The conditioned next-token kernel for texts generated after a prefix of `prefix_len`
        tokens (defined for up to max_len generated tokens)."""
        check_nonnegative_int(prefix_len, "prefix_len")
        idx = self.index

        def model(prefix: torch.Tensor) -> torch.Tensor:
            gen = prefix.shape[1] - prefix_len
            if gen < 0 or gen >= self.max_len:
                raise ValidationError(f"the conditioned kernel covers generated lengths "
                                      f"[0, {self.max_len}), got {gen}")
            q = idx.run(prefix[:, prefix_len:])
            if (q == NO_STATE).any():
                raise ConditioningError("a prefix outside the language", "it has probability 0")
            logits = self.guided_weights(prefix, q, gen).log()
            if (logits == NEG_INF).all(-1).any():
                raise ConditioningError("the language after this prefix", "it has probability 0")
            return logits

        return TokenKernel(model, self.base.vocab, self.base.eos)

    def sample(self, prefix: Sequence[int] | torch.Tensor, sample_shape: SampleShape = (), *,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """Texts drawn from the conditioned law after each prefix (B, T): shape
        sample_shape + (B, T + max_len)."""
        t = as_prefix(prefix, self.base.vocab_size)
        if bool((self.log_prob_event(t) == NEG_INF).any()):
            raise ConditioningError("the language", "it has probability zero after a prefix")
        return self.kernel(t.shape[1]).steps(self.max_len).sample(t, sample_shape,
                                                                  generator=generator)


ConditionedBigram = ConditionedLM
"""The name under which `ConditionedLM` first appeared (bigram models)."""


class SMCResult(NamedTuple):
    """Particles (N, T), their normalised weights (N,) and the unbiased estimate of
    log P(event) (the log of the product of the mean incremental weights)."""

    particles: torch.Tensor
    weights: torch.Tensor
    log_evidence: torch.Tensor


def smc(kernel: TokenKernel, index: TokenIndex, prefix: Sequence[int], max_len: int,
        num_particles: int = 256, generator: torch.Generator | None = None) -> SMCResult:
    """Sequential Monte Carlo for the kernel conditioned on the language (any model).

    Proposal: the locally masked law; incremental weight: the model's mass on the tokens that keep
    the text completable within the remaining steps (at the last step: tokens that complete it).
    Multinomial resampling at every step. The event is that of `ConditionedBigram`.
    """
    if index.vocab_size != kernel.vocab_size:
        raise ValidationError(f"index over {index.vocab_size} tokens for a kernel over "
                              f"{kernel.vocab_size}")
    for name, n in (("num_particles", num_particles), ("max_len", max_len)):
        check_positive_int(n, name)
    allowed = index.allowed()
    s = index.num_states
    if index.eos is not None:
        last = torch.zeros_like(allowed)
        last[:, index.eos] = allowed[:, index.eos]
    else:
        acc = torch.cat([index.accepting, torch.zeros(1, dtype=torch.bool)])
        last = allowed.clone()
        last[:s] &= acc[torch.where(index.next_state == NO_STATE, s, index.next_state)]
    parts = as_prefix([list(prefix)] * num_particles, kernel.vocab_size)
    log_z = torch.zeros((), dtype=torch.float64)
    log_n = torch.log(torch.tensor(float(num_particles), dtype=torch.float64))
    for step in range(max_len):
        q = index.run(parts[:, len(prefix):])
        mask = (last if step == max_len - 1 else allowed)[q]
        lp = kernel.logits(parts).double().masked_fill(~mask, NEG_INF)
        done = q == s
        lp = torch.where(done.unsqueeze(-1), torch.where(mask, 0.0, NEG_INF), lp)
        inc = torch.logsumexp(lp, -1)
        log_z = log_z + torch.logsumexp(inc, 0) - log_n
        if log_z == NEG_INF:
            return SMCResult(parts, torch.zeros(num_particles, dtype=torch.float64), log_z)
        pick = torch.multinomial(torch.softmax(inc, 0), num_particles, replacement=True,
                                 generator=generator)
        nxt = torch.multinomial(torch.softmax(lp[pick], -1), 1, generator=generator)
        parts = torch.cat([parts[pick], nxt], -1)
    weights = torch.full((num_particles,), 1.0 / num_particles, dtype=torch.float64)
    return SMCResult(parts, weights, log_z)
