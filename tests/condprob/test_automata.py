"""Regex -> minimal DFA against brute force (Python's re on one-letter symbols, Myhill-Nerode
state counts), products with chains against enumeration."""

from __future__ import annotations

import itertools
import math
import re

import pytest
import torch

from condprob import chain as ch
from condprob.automata import DFA, NO_STATE
from condprob.errors import ValidationError

SYMBOLS = ["a", "b", "c"]
PATTERNS = ["(a | b c*)*", "a b* c?", "(a b)+ | c{2,3}", "[a b]* c", "[^a] .", "a{2} | (b | c){1,}",
            "((a | b) c)* a?", "a{0,2} b{3}", "c* (a c* b c*)*", ""]


def strings(max_len: int):
    for n in range(max_len + 1):
        yield from itertools.product(SYMBOLS, repeat=n)


def python_regex(pattern: str) -> re.Pattern:
    return re.compile(re.sub(r"\s+", "", pattern).replace(".", "[abc]"))


def residual_classes(pattern: str, depth: int = 4, probe: int = 5) -> int:
    """Myhill-Nerode: the number of distinct non-empty residual languages of prefixes (each
    residual probed on all suffixes up to `probe` symbols)."""
    rx = python_regex(pattern)
    suffixes = list(strings(probe))
    seen = set()
    for prefix in strings(depth):
        sig = tuple(bool(rx.fullmatch("".join(prefix + s))) for s in suffixes)
        if any(sig):
            seen.add(sig)
    return len(seen)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_regex_matches_brute_force_and_is_minimal(pattern):
    dfa = DFA.from_regex(pattern, SYMBOLS)
    rx = python_regex(pattern)
    seqs = list(strings(6))
    for s in seqs:
        assert dfa.accepts(s) == bool(rx.fullmatch("".join(s))), s
    assert dfa.num_states == residual_classes(pattern)
    # batched run agrees, with masks skipping positions
    idx = torch.tensor([[SYMBOLS.index(x) for x in s] + [0] * (6 - len(s)) for s in seqs])
    mask = torch.arange(6) < torch.tensor([len(s) for s in seqs])[:, None]
    got = dfa.accepts_batch(idx, mask)
    assert got.tolist() == [dfa.accepts(s) for s in seqs]


def test_symbols_with_long_names_classes_and_quotes():
    labels = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "x y"]
    dfa = DFA.from_regex('(O | B-PER I-PER* | B-ORG I-ORG* | "x y")*', labels)
    assert dfa.accepts(["O", "B-PER", "I-PER", "x y", "B-ORG"])
    assert not dfa.accepts(["O", "I-PER"])
    assert not dfa.accepts(["B-PER", "I-ORG"])
    assert not dfa.accepts(["unknown"])
    cls = DFA.from_regex("[B-PER B-ORG] [^O B-PER B-ORG]*", labels)
    assert cls.accepts(["B-ORG", "I-PER", "x y"]) and not cls.accepts(["B-ORG", "O"])
    assert dfa.transitions()[(dfa.start, "O")] == dfa.start


def test_boolean_operations_and_transitions_round_trip():
    a = DFA.from_regex("(a | b)* a", SYMBOLS)
    b = DFA.from_regex("a (a | b | c)*", SYMBOLS)
    both, either, neither = a.intersection(b), a.union(b), a.complement()
    for s in strings(5):
        assert both.accepts(s) == (a.accepts(s) and b.accepts(s))
        assert either.accepts(s) == (a.accepts(s) or b.accepts(s))
        assert neither.accepts(s) == (not a.accepts(s))
    again = DFA.from_transitions(SYMBOLS, a.transitions(), a.start, a.accepting)
    assert again.num_states == a.num_states
    assert all(again.accepts(s) == a.accepts(s) for s in strings(5))
    named = DFA.from_transitions(["x"], {("even", "x"): "odd", ("odd", "x"): "even"}, "even",
                                 ["even"])
    assert named.accepts(["x", "x"]) and not named.accepts(["x"]) and named.num_states == 2


def test_empty_language_and_errors():
    empty = DFA.from_regex("a", SYMBOLS).intersection(DFA.from_regex("b", SYMBOLS))
    assert empty.is_empty() and empty.num_states == 1 and not empty.accepts(["a"])
    with pytest.raises(ValidationError, match="no non-empty"):
        empty.product()
    with pytest.raises(ValidationError, match="unknown symbol 'd'"):
        DFA.from_regex("a d", SYMBOLS)
    for bad, msg in [("(a", "unbalanced '\\('"), ("a)", "unbalanced '\\)'"), ("[a", "unclosed"),
                     ("a]", "unbalanced ']'"), ("a{x}", "malformed"), ("[^a b c]", "empty symbol"),
                     ("[a (]", "inside"), ("* a", "malformed"), ("a{2", "malformed")]:
        with pytest.raises(ValidationError, match=msg):
            DFA.from_regex(bad, SYMBOLS)
    with pytest.raises(ValidationError, match="pattern must be a string"):
        DFA.from_regex(3, SYMBOLS)
    with pytest.raises(ValidationError, match="distinct"):
        DFA.from_regex("a", ["a", "a"])
    with pytest.raises(ValidationError, match="different symbol lists"):
        DFA.from_regex("a", SYMBOLS).union(DFA.from_regex("a", ["a"]))
    with pytest.raises(ValidationError, match="accepting states"):
        DFA.from_transitions(["x"], {(0, "x"): 1}, 0, [2])
    with pytest.raises(ValidationError, match="unknown symbol"):
        DFA.from_transitions(["x"], {(0, "y"): 1}, 0, [1])
    with pytest.raises(ValidationError, match="symbol indices"):
        DFA.from_regex("a", SYMBOLS).run(torch.tensor([[3]]))
    with pytest.raises(ValidationError, match="table must have shape"):
        DFA(SYMBOLS, torch.zeros(2, 2), 0, [0])


def test_product_chain_is_the_chain_conditioned_on_the_language():
    dfa = DFA.from_regex("(a b | c)* a?", SYMBOLS)
    prod = dfa.product()
    g = torch.Generator().manual_seed(0)
    steps = 4
    unary = torch.randn(steps, 3, generator=g, dtype=torch.float64)
    pair = torch.randn(3, 3, generator=g, dtype=torch.float64)
    start = torch.randn(3, generator=g, dtype=torch.float64)
    end = torch.randn(3, generator=g, dtype=torch.float64)
    pu, pp, ps, pe = prod.lift(unary.unsqueeze(0), pair, start, end)
    c = ch.Chain(pu, pp, ps, pe)
    scores = {}
    for y in itertools.product(range(3), repeat=steps):
        if dfa.accepts([SYMBOLS[i] for i in y]):
            scores[y] = (start[y[0]] + end[y[-1]] + sum(unary[t, j] for t, j in enumerate(y))
                         + sum(pair[i, j] for i, j in zip(y[:-1], y[1:], strict=True))).item()
    z = math.log(sum(math.exp(s) for s in scores.values()))
    assert ch.log_partition(c).item() == pytest.approx(z, rel=1e-12)
    marg = prod.project(ch.marginals(c))[0]
    want = torch.zeros(steps, 3, dtype=torch.float64)
    for y, s in scores.items():
        for t, j in enumerate(y):
            want[t, j] += math.exp(s - z)
    torch.testing.assert_close(marg, want, rtol=1e-10, atol=1e-12)
    best = prod.symbols_of(ch.viterbi(c)[1])[0]
    assert tuple(best.tolist()) == max(scores, key=scores.get)
    assert prod.symbols_of(torch.tensor([NO_STATE, 0])).tolist() == [NO_STATE, 0]


def regexes(depth: int = 3):
    """Hypothesis strategy: random patterns over a, b, c (our syntax; Python's is the same with
    the spaces removed and '.' as [abc])."""
    from hypothesis import strategies as st

    atom = st.sampled_from(["a", "b", "c", ".", "[a b]", "[^a]"])

    def extend(inner):
        return st.one_of(
            st.tuples(inner, inner).map(lambda p: f"{p[0]} {p[1]}"),
            st.tuples(inner, inner).map(lambda p: f"({p[0]} | {p[1]})"),
            st.tuples(inner, st.sampled_from(["*", "+", "?", "{2}", "{0,2}", "{1,}"]))
            .map(lambda p: f"({p[0]}){p[1]}"),
        )

    return st.recursive(atom, extend, max_leaves=6)


def test_random_patterns_match_python_re():
    from hypothesis import given, settings

    @settings(deadline=None)
    @given(regexes())
    def check(pattern):
        dfa = DFA.from_regex(pattern, SYMBOLS)
        rx = re.compile(re.sub(r"\s+", "", pattern).replace("[^a]", "[bc]").replace(".", "[abc]"))
        for s in strings(5):
            assert dfa.accepts(s) == bool(rx.fullmatch("".join(s))), (pattern, s)

    check()
