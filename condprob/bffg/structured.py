"""A structured finite kernel kind for BFFG: one step of a finite-state token model read by a
token-level automaton, on the product of model states h and automaton states q.

    K((h, q), (h', q')) = sum_w P(h', w | h) [next(q, w) = q'],

with two absorbing automaton states besides the S states of the automaton: `done` (= S, reached by
eos; the text has ended, every further token is eos) and `dead` (= S + 1, reached by a token that
leaves the language). The pullback (K g)(h, q) is the model's own `backward_step` (for a bigram a
sparse product with the transition matrix, which is never formed), so the generic
`backward_filter` runs on an 82k-word vocabulary times an automaton. The dense matrix is built only
when an operation asks for it (small models). Guiding marginalised to the token:
P(w | prefix, h) = P(w | prefix) g(h'(w), next(q, w)) / (K g) (`guided_token_weights`).

The model supplies `num_states`, `backward_step(g (H, C), next (S, V)) -> (H, S)` (sum over the
next token and model state of P(h', w | h) g(h', next[q, w])), `event_weights(prefix, g, next (B, V))
-> (B, V)` (the joint weight P(w | prefix) g(h', next[b, w]) summed over h') and
`initial_joint(next (V,), C) -> (H, C)` (the law of (h_1, q_1) after the first token of a text).
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from condprob import backend as B
from condprob.automata import NO_STATE
from condprob.bffg.messages import FiniteMessage
from condprob.bffg.model import Model
from condprob.errors import SpaceMismatchError, ValidationError
from condprob.finite import Kernel, Predicate, State
from condprob.spaces import FiniteSpace, Space, product

DENSE_LIMIT = 4096


class StepModel(Protocol):
    """What a finite-state model provides for the product kernel (see the module docstring)."""

    @property
    def num_states(self) -> int: ...

    def backward_step(self, g: torch.Tensor, next_state: torch.Tensor) -> torch.Tensor: ...

    def event_weights(self, prefix: torch.Tensor, g: torch.Tensor,
                      next_state: torch.Tensor) -> torch.Tensor: ...

    def initial_joint(self, next_state: torch.Tensor, columns: int) -> torch.Tensor: ...


class TokenAutomatonKernel(Kernel):
    """The kernel K on (model state, automaton state) of the module docstring.

    `next_state` (S, V) is the token-level automaton (`NO_STATE` where a token leaves the
    language); `eos` the token that leads from accepting states to `done`; `states` the space of
    model states (e.g. the vocabulary for a bigram), default 0..H-1.
    """

    def __init__(self, model: StepModel, next_state: torch.Tensor, eos: int | None = None,
                 states: Space | None = None):
        s, v = next_state.shape
        if states is None:
            states = FiniteSpace(model.num_states, name="model state")
        if states.size != model.num_states:
            raise ValidationError(f"the space of model states has {states.size} outcomes; the "
                                  f"model has {model.num_states}")
        if eos is not None and not 0 <= eos < v:
            raise ValidationError(f"eos must be a token id in [0, {v}), got {eos}")
        self.model, self.eos, self.num_automaton_states = model, eos, s
        self.done, self.dead = s, s + 1
        nxt = torch.full((s + 2, v), s + 1, dtype=torch.long)
        nxt[:s] = torch.where(next_state == NO_STATE, s + 1, next_state)
        if eos is not None:
            nxt[s, eos] = s
        self.next_state = nxt
        automaton = FiniteSpace([*range(s), "done", "dead"], name="automaton state")
        self.dom = self.cod = product(states, automaton)
        self._sharp = False

    def __repr__(self) -> str:
        h, c = self.shape
        return f"TokenAutomatonKernel({h} model states x {c - 2} automaton states + done, dead)"

    @property
    def shape(self) -> tuple[int, int]:
        """(H, S + 2): the message layout of a predicate's values on the product space."""
        return self.model.num_states, self.num_automaton_states + 2

    @property
    def exact(self) -> bool:
        return False

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return ()

    def __getattr__(self, name: str) -> Any:
        """`array`, the dense matrix, built on first access column by column as pullbacks of
        indicators (small models only) and then held as an attribute."""
        if name != "array":
            raise AttributeError(name)
        n = self.dom.size
        if n > DENSE_LIMIT:
            raise ValidationError(f"a dense matrix of a product kernel over {n} states is too "
                                  f"large (limit {DENSE_LIMIT}); use pullback")
        eye = torch.eye(n, dtype=torch.float64)
        self.array = torch.stack([self._pull(eye[j]) for j in range(n)], -1)
        return self.array

    def _pull(self, values: torch.Tensor) -> torch.Tensor:
        g = values.reshape(self.shape)
        s = self.num_automaton_states
        out = torch.cat([self.model.backward_step(g, self.next_state[:s]), g[:, s:]], -1)
        return out.reshape(-1)

    def pullback(self, predicate: Predicate) -> Predicate:
        """(K g)(h, q) by the model's backward step; g at `done` and `dead` stays."""
        if predicate.space != self.cod:
            raise SpaceMismatchError("pullback of a predicate", self.cod, predicate.space)
        if B.is_exact(predicate.values) or predicate.values.ndim != 1:
            raise TypeError("a token-automaton kernel pulls back float64 predicates without batch "
                            "dimensions; dense finite kernels (condprob.finite.Kernel) take "
                            "exact and batched ones")
        return Predicate(self._pull(predicate.values.double()), self.dom,
                         name=f"({predicate.name} pulled back)", validate=False)

    def initial_state(self, start: int) -> State:
        """The law of (h_1, q_1) after the first token of a text, the automaton read from
        `start`."""
        joint = self.model.initial_joint(self.next_state[start], self.shape[1])
        return State(joint.reshape(-1), self.cod)

    def guided_token_weights(self, prefix: torch.Tensor, q: torch.Tensor,
                             h: FiniteMessage) -> torch.Tensor:
        """Unnormalised guided law of the next token, (B, V): P(w | prefix) h(h', next(q, w))
        summed over the model state h' (a point mass on eos once the text is `done`)."""
        if h.space != self.cod:
            raise SpaceMismatchError("guiding message", self.cod, h.space)
        g = h.values().reshape(self.shape)
        weights = self.model.event_weights(prefix, g, self.next_state[q])
        if self.eos is not None:
            ended = torch.zeros_like(weights)
            ended[:, self.eos] = 1.0
            weights = torch.where((q == self.done).unsqueeze(-1), ended, weights)
        return weights


def automaton_chain(kernel: TokenAutomatonKernel, start: int, length: int,
                    final: torch.Tensor) -> Model:
    """The chain 0 -> 1 -> ... -> length - 1 of (model state, automaton state) after each token
    of a text, the prior `kernel.initial_state(start)` at the root, every edge `kernel`, and the
    likelihood `final` (H, S + 2) observed at the last node."""
    if length < 1:
        raise ValidationError(f"a chain needs at least one node, got length {length}")
    if tuple(final.shape) != kernel.shape:
        raise ValidationError(f"final likelihood has shape {tuple(final.shape)}; expected "
                              f"{kernel.shape}")
    m = Model(0, kernel.initial_state(start))
    for t in range(1, length):
        m.add_edge(t - 1, t, kernel)
    return m.observe(length - 1, FiniteMessage.likelihood(final.reshape(-1), kernel.cod))
