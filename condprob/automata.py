"""Regular languages over arbitrary symbols: minimal DFAs and their products with chains.

`DFA.from_regex(pattern, symbols)` compiles a regular expression whose atoms are whole symbols
(label names, tokens) into the minimal deterministic automaton. Syntax, with symbols separated by
whitespace:

    a b        concatenation              a | b      alternation
    a* a+ a?   repetition                 a{m} a{m,} a{m,n}   bounded repetition
    ( ... )    grouping                   .          any symbol
    [a b c]    any of these symbols       [^a b]     any symbol but these
    "a b"      a symbol containing spaces or special characters (quoted)

Parsing, determinisation and minimisation are done by `interegular` (each symbol is mapped to one
private-use character); the result is trimmed (every state reachable and able to reach
acceptance), so a missing transition means rejection. `DFA.product` builds the product of an
automaton with a chain over the symbols: states (symbol, automaton state), steps allowed where the
automaton allows them, so a chain on the product is the chain conditioned on the language.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import interegular
import torch
from interegular.fsm import FSM, Alphabet
from torch import Tensor

from condprob.errors import ValidationError

NO_STATE = -1
"""Entry of the transition table where the automaton rejects."""

_BASE = 0xF0000  # Supplementary Private Use Area-A: 65,534 symbols
_SPECIAL = set("()|*+?{}[].")
_TOKEN = re.compile(r'\s+|"[^"]*"|\{[^}]*\}|\[\^?|\]|[()|*+?.]|[^\s()|*+?{}\[\]".]+'
                    r'(?:\.[^\s()|*+?{}\[\]".]*)*')


def pattern_symbols(pattern: str) -> set[str]:
    """The symbol names a pattern mentions (words or quoted names, in this module's syntax)."""
    if not isinstance(pattern, str):
        raise ValidationError(f"pattern must be a string, got {type(pattern).__name__}")
    names = set()
    for m in _TOKEN.finditer(pattern):
        tok = m.group()
        if tok.startswith('"'):
            names.add(tok[1:-1])
        elif not (tok.isspace() or tok[0] in "{[]()|*+?."):
            names.add(tok)
    return names


def _char(i: int) -> str:
    return chr(_BASE + i)


class DFA:
    """A trimmed deterministic finite automaton over `symbols`.

    States are 0..num_states-1; `table[q, a]` is the state after reading symbol index a in state q,
    or `NO_STATE` (reject). Every state is reachable from `start` and can reach an accepting state,
    except that the automaton of the empty language has one non-accepting state and no transitions.
    """

    def __init__(self, symbols: Sequence[Hashable], table: Tensor, start: int,
                 accepting: Iterable[int]):
        self.symbols = tuple(symbols)
        if len(set(self.symbols)) != len(self.symbols):
            raise ValidationError("symbols must be distinct")
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.table = table.long()
        self.start = int(start)
        self.accepting = frozenset(int(q) for q in accepting)
        if self.table.shape != (self.table.shape[0], len(self.symbols)):
            raise ValidationError(f"table must have shape (states, {len(self.symbols)}), got "
                                  f"{tuple(self.table.shape)}")

    # Construction ---------------------------------------------------------------------------
    @classmethod
    def from_regex(cls, pattern: str, symbols: Sequence[Hashable]) -> DFA:
        """The minimal DFA of a regular expression over whole symbols (syntax: module docstring).

        Symbols are matched by their `str`; raises ValidationError for an unknown symbol name or
        a malformed pattern.
        """
        symbols = tuple(symbols)
        names = {str(s): i for i, s in enumerate(symbols)}
        if len(names) != len(symbols):
            raise ValidationError("symbols must have distinct names")
        if len(symbols) > 65_534:
            raise ValidationError(f"at most 65,534 symbols are supported, got {len(symbols)}")
        translated = _translate(pattern, names)
        try:
            fsm = interegular.parse_pattern(translated).to_fsm()
        except Exception as err:  # interegular raises several private error types
            raise ValidationError(f"malformed pattern {pattern!r}: {err}") from err
        return cls._from_fsm(fsm.reduce(), symbols)

    @classmethod
    def from_transitions(cls, symbols: Sequence[Hashable], transitions: dict, start: Hashable,
                         accepting: Iterable[Hashable]) -> DFA:
        """The minimal DFA of an automaton given as {(state, symbol): next state} (any state
        names; missing pairs reject)."""
        symbols = tuple(symbols)
        index = {s: i for i, s in enumerate(symbols)}
        states = {start} | {q for q, _ in transitions} | set(transitions.values())
        accepting = set(accepting)
        if not accepting <= states:
            raise ValidationError(f"accepting states {sorted(map(str, accepting - states))} "
                                  "are not states of the automaton")
        ids = {q: i for i, q in enumerate(sorted(states, key=str))}
        fmap: dict[int, dict[int, int]] = {i: {} for i in ids.values()}
        for (q, s), r in transitions.items():
            if s not in index:
                raise ValidationError(f"unknown symbol {s!r} in transitions")
            fmap[ids[q]][index[s]] = ids[r]
        fsm = FSM(_alphabet(len(symbols)), set(ids.values()), ids[start],
                  {ids[q] for q in accepting}, fmap)
        return cls._from_fsm(fsm.reduce(), symbols)

    @classmethod
    def _from_fsm(cls, fsm: FSM, symbols: tuple) -> DFA:
        keys = [fsm.alphabet[_char(i)] for i in range(len(symbols))]
        order = {fsm.initial: 0}
        queue = deque([fsm.initial])
        edges = []
        while queue:
            q = queue.popleft()
            for a, key in enumerate(keys):
                r = fsm.map.get(q, {}).get(key) if key is not None else None
                if r is None:
                    continue
                if r not in order:
                    order[r] = len(order)
                    queue.append(r)
                edges.append((order[q], a, order[r]))
        accepting = {order[q] for q in fsm.finals if q in order}
        # trim: keep the states that can reach acceptance
        live = set(accepting)
        changed = True
        while changed:
            changed = False
            for q, _, r in edges:
                if r in live and q not in live:
                    live.add(q)
                    changed = True
        if 0 not in live:
            return cls(symbols, torch.full((1, len(symbols)), NO_STATE), 0, ())
        renum = {q: i for i, q in enumerate(sorted(live))}
        table = torch.full((len(renum), len(symbols)), NO_STATE, dtype=torch.long)
        for q, a, r in edges:
            if q in live and r in live:
                table[renum[q], a] = renum[r]
        return cls(symbols, table, renum[0], {renum[q] for q in accepting})

    def _to_fsm(self) -> FSM:
        fmap = {q: {a: int(r) for a, r in enumerate(row.tolist()) if r != NO_STATE}
                for q, row in enumerate(self.table)}
        return FSM(_alphabet(len(self.symbols)), set(range(self.num_states)), self.start,
                   set(self.accepting), fmap)

    def _same_symbols(self, other: DFA) -> None:
        if self.symbols != other.symbols:
            raise ValidationError("automata over different symbol lists cannot be combined")

    def intersection(self, other: DFA) -> DFA:
        """The minimal DFA of the strings both accept."""
        self._same_symbols(other)
        return DFA._from_fsm(self._to_fsm().intersection(other._to_fsm()).reduce(), self.symbols)

    def union(self, other: DFA) -> DFA:
        """The minimal DFA of the strings either accepts."""
        self._same_symbols(other)
        return DFA._from_fsm(self._to_fsm().union(other._to_fsm()).reduce(), self.symbols)

    def complement(self) -> DFA:
        """The minimal DFA of the strings over `symbols` this one rejects."""
        sink = self.num_states
        table = torch.cat([self.table, torch.full((1, len(self.symbols)), NO_STATE)])
        table = torch.where(table == NO_STATE, torch.full_like(table, sink), table)
        fmap = {q: dict(enumerate(row.tolist())) for q, row in enumerate(table)}
        rejecting = set(range(sink + 1)) - set(self.accepting)
        fsm = FSM(_alphabet(len(self.symbols)), set(range(sink + 1)), self.start, rejecting, fmap)
        return DFA._from_fsm(fsm.reduce(), self.symbols)

    # Queries --------------------------------------------------------------------------------
    @property
    def num_states(self) -> int:
        return self.table.shape[0]

    def is_empty(self) -> bool:
        """Whether the language is empty."""
        return not self.accepting

    def transitions(self) -> dict[tuple[int, Hashable], int]:
        """The transition function as {(state, symbol): next state}."""
        return {(q, self.symbols[a]): int(r) for q, row in enumerate(self.table)
                for a, r in enumerate(row.tolist()) if r != NO_STATE}

    def accepts(self, seq: Iterable[Hashable]) -> bool:
        """Whether the automaton accepts the sequence of symbols (unknown symbols reject)."""
        q = self.start
        for s in seq:
            a = self.index.get(s)
            if a is None:
                return False
            q = int(self.table[q, a])
            if q == NO_STATE:
                return False
        return q in self.accepting

    def run(self, seqs: Tensor, mask: Tensor | None = None) -> Tensor:
        """Run on a batch of symbol-index sequences (*batch, T), skipping masked positions:
        the state reached, `NO_STATE` where the automaton rejected on the way."""
        seqs = seqs.long()
        if bool(((seqs < 0) | (seqs >= len(self.symbols))).any()):
            raise ValidationError(f"symbol indices must lie in [0, {len(self.symbols)})")
        dead = self.num_states  # an extra absorbing row stands for rejection
        table = torch.cat([self.table.masked_fill(self.table == NO_STATE, dead),
                           torch.full((1, len(self.symbols)), dead)]).to(seqs.device)
        q = torch.full(seqs.shape[:-1], self.start, dtype=torch.long, device=seqs.device)
        for t in range(seqs.shape[-1]):
            r = table[q, seqs[..., t]]
            q = r if mask is None else torch.where(mask[..., t], r, q)
        return q.masked_fill(q == dead, NO_STATE)

    def accepts_batch(self, seqs: Tensor, mask: Tensor | None = None) -> Tensor:
        """Acceptance of a batch of symbol-index sequences: bool (*batch,)."""
        q = self.run(seqs, mask)
        acc = torch.zeros(self.num_states + 1, dtype=torch.bool, device=seqs.device)
        acc[list(self.accepting)] = True
        return acc[q]  # NO_STATE = -1 reads the extra False entry

    def product(self) -> ProductStates:
        """The product states (symbol, automaton state) of this automaton with a chain over its
        symbols, with the allowed steps, first states and last states."""
        pairs = sorted({(a, int(r)) for row in self.table for a, r in enumerate(row.tolist())
                        if r != NO_STATE})
        if not pairs:
            raise ValidationError("the automaton accepts no non-empty sequence")
        sym = torch.tensor([a for a, _ in pairs], dtype=torch.long)
        state = torch.tensor([q for _, q in pairs], dtype=torch.long)
        allowed = self.table[state][:, sym] == state.unsqueeze(0)
        initial = self.table[self.start][sym] == state
        final = torch.zeros(self.num_states, dtype=torch.bool)
        final[list(self.accepting)] = True
        return ProductStates(sym, state, allowed, initial, final[state], len(self.symbols))

    def __repr__(self) -> str:
        return (f"DFA({self.num_states} states, {len(self.symbols)} symbols, start={self.start}, "
                f"accepting={sorted(self.accepting)})")


def _alphabet(n: int) -> Alphabet:
    return Alphabet({_char(i): i for i in range(n)})


def _translate(pattern: str, names: dict[str, int]) -> str:
    """A symbol-level pattern as a character-level pattern for interegular."""
    if not isinstance(pattern, str):
        raise ValidationError(f"pattern must be a string, got {type(pattern).__name__}")
    out: list[str] = []
    in_class: list[str] | None = None
    negated = False
    pos = 0
    depth = 0
    every = "".join(_char(i) for i in range(len(names)))
    while pos < len(pattern):
        m = _TOKEN.match(pattern, pos)
        if m is None:
            raise ValidationError(f"malformed pattern {pattern!r} at position {pos}")
        tok = m.group()
        pos = m.end()
        if tok.isspace():
            continue
        if in_class is not None:
            if tok == "]":
                chars = set(in_class)
                members = [c for c in every if (c in chars) != negated]
                if not members:
                    raise ValidationError(f"empty symbol class in pattern {pattern!r}")
                out.append("[" + "".join(members) + "]")
                in_class = None
            elif tok[0] in _SPECIAL and tok != ".":
                raise ValidationError(f"unexpected {tok!r} inside [...] in pattern {pattern!r}")
            else:
                in_class.append(_symbol(tok, names, pattern))
            continue
        if tok in ("[", "[^"):
            in_class, negated = [], tok == "[^"
        elif tok == "]":
            raise ValidationError(f"unbalanced ']' in pattern {pattern!r}")
        elif tok == ".":
            out.append("[" + every + "]")
        elif tok in ("(", ")"):
            depth += 1 if tok == "(" else -1
            if depth < 0:
                raise ValidationError(f"unbalanced ')' in pattern {pattern!r}")
            out.append(tok)
        elif tok[0] == "{":
            if not re.fullmatch(r"\{\s*\d+\s*(,\s*\d*\s*)?\}", tok):
                raise ValidationError(f"malformed repetition {tok!r} in pattern {pattern!r}")
            out.append(tok.replace(" ", ""))
        elif tok in ("|", "*", "+", "?"):
            out.append(tok)
        else:
            out.append(_symbol(tok, names, pattern))
    if in_class is not None:
        raise ValidationError(f"unclosed '[' in pattern {pattern!r}")
    if depth:
        raise ValidationError(f"unbalanced '(' in pattern {pattern!r}")
    return "".join(out)


def _symbol(tok: str, names: dict[str, int], pattern: str) -> str:
    name = tok[1:-1] if tok.startswith('"') else tok
    if name not in names:
        raise ValidationError(f"unknown symbol {name!r} in pattern {pattern!r}; known: "
                              f"{sorted(names)[:20]}")
    return _char(names[name])


@dataclass(frozen=True)
class ProductStates:
    """The states of a chain conditioned on a regular language: pairs (symbol, automaton state
    after reading it). A step a -> b is allowed iff the automaton goes from state[a] to state[b]
    on symbol[b]; a sequence may begin in `initial` states and end in `final` ones. Because the
    automaton is deterministic, symbol sequences in the language and allowed product sequences
    correspond one to one.
    """

    symbol: Tensor  # (n,) long
    state: Tensor  # (n,) long
    allowed: Tensor  # (n, n) bool
    initial: Tensor  # (n,) bool
    final: Tensor  # (n,) bool
    num_symbols: int

    @property
    def size(self) -> int:
        return self.symbol.numel()

    def lift(self, unary: Tensor, pairwise: Tensor, start: Tensor | None = None,
             end: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Symbol-level log-potentials (unary (*, T, L), pairwise (L, L) or (*, L, L), start and
        end (L,) or (*, L)) as product-level ones, -inf where the automaton forbids."""
        dev = unary.device
        sym = self.symbol.to(dev)
        neg = torch.tensor(float("-inf"), dtype=unary.dtype, device=dev)
        zero = unary.new_zeros(self.num_symbols)
        start = zero if start is None else start
        end = zero if end is None else end
        p_unary = unary[..., sym]
        p_pair = torch.where(self.allowed.to(dev), pairwise[..., sym[:, None], sym[None, :]], neg)
        p_start = torch.where(self.initial.to(dev), start[..., sym], neg)
        p_end = torch.where(self.final.to(dev), end[..., sym], neg)
        return p_unary, p_pair, p_start, p_end

    def project(self, values: Tensor) -> Tensor:
        """Sum product-level values (*, n) over the states of each symbol: (*, L)."""
        out = values.new_zeros(*values.shape[:-1], self.num_symbols)
        return out.index_add(-1, self.symbol.to(values.device), values)

    def symbols_of(self, paths: Tensor, pad: int = -1) -> Tensor:
        """Symbol indices of product-state paths, keeping `pad` entries."""
        sym = self.symbol.to(paths.device)
        return torch.where(paths == pad, paths, sym[paths.clamp_min(0)])
