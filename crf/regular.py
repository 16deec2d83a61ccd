"""`RegCCRF`: a linear-chain CRF conditioned on a regular language of label sequences.

    p(y | x) = 1[y in L] exp(score(y)) / sum_{y' in L} exp(score(y'))

(Papay, Klinger and Pado, ICLR 2022.) The language is a regular expression over label names or a
`condprob.automata.DFA`; its minimal DFA times the labels gives the chain's states
(label, automaton state), so training, decoding, top-k, sampling, marginals and entropy all
happen under the constraint, and sequences outside the language have log-probability -inf.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from condprob import chain as ch
from condprob.automata import DFA
from condprob.errors import ValidationError
from crf.linear_chain import LinearChainCRF


class RegCCRF(LinearChainCRF):
    """A CRF over `labels` whose sequences are restricted to the language `constraint`.

    Args:
        labels: label names (the symbols of the pattern).
        constraint: a pattern (syntax of `condprob.automata`) or a DFA over the labels.
        init_scale: as for `LinearChainCRF`.
    """

    def __init__(self, labels: Sequence[str], constraint: str | DFA, init_scale: float = 0.1):
        if isinstance(labels, int):
            raise ValidationError("RegCCRF needs label names (the symbols of the constraint)")
        super().__init__(labels, init_scale)
        if isinstance(constraint, DFA):
            if list(constraint.symbols) != self.labels:
                raise ValidationError("the automaton's symbols must be the CRF's labels, in order")
            dfa = constraint
        else:
            dfa = DFA.from_regex(constraint, self.labels)
        if dfa.is_empty():
            raise ValidationError(f"the constraint {constraint!r} accepts no sequence")
        self.dfa = dfa
        self.product = dfa.product()

    @property
    def num_states(self) -> int:
        """The size of the product chain (reachable (label, automaton state) pairs)."""
        return self.product.size

    def chain(self, emissions: Tensor, mask: Tensor | None = None,
              allowed: Tensor | None = None) -> ch.Chain:
        self._check(emissions, mask)
        if allowed is not None:
            emissions = emissions.masked_fill(~allowed, float("-inf"))
        dt = emissions.dtype
        parts = self.product.lift(emissions, self.transitions.to(dt), self.start.to(dt),
                                  self.end.to(dt))
        return ch.Chain(*parts, mask=mask)

    def _to_labels(self, states: Tensor) -> Tensor:
        return self.product.symbols_of(states, ch.PAD)

    def _to_label_marginals(self, marginals: Tensor) -> Tensor:
        return self.product.project(marginals)

    def _outside(self, tags: Tensor, mask: Tensor | None) -> Tensor:
        return ~self.dfa.accepts_batch(tags, mask)

    def accepts(self, tags: Tensor, mask: Tensor | None = None) -> Tensor:
        """Whether label sequences (*batch, T) lie in the language: bool (*batch,)."""
        return self.dfa.accepts_batch(tags, mask)

    def extra_repr(self) -> str:
        return f"labels={self.num_labels}, automaton_states={self.dfa.num_states}, " \
               f"chain_states={self.num_states}"


def constrained_decode(model: LinearChainCRF, constraint: str | DFA, emissions: Tensor,
                       mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Decode a (possibly unconstrained) CRF's scores under a language: the best sequence in
    the language ("constrained decoding" of the paper, as opposed to constrained training)."""
    reg = RegCCRF(model.labels, constraint)
    with torch.no_grad():
        for name in ("transitions", "start", "end"):
            getattr(reg, name).copy_(getattr(model, name))
    return reg.decode(emissions, mask)
