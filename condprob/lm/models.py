"""Offline next-token models: bigram tables (dense or interpolated from counts) and hidden Markov
language models.

`BigramLM` is a torch module mapping prefixes (B, T) to next-token logits (B, V) that depend on the
last token only (the initial law for empty prefixes). `symspell_bigram()` builds a real word-level
model from the unigram and bigram counts shipped in the `symspellpy` wheel (MIT): Witten-Bell
interpolation p(w | v) = lam_v c(v, w) / c(v) + (1 - lam_v) u(w), lam_v = c(v) / (c(v) + T(v)),
with T(v) the number of distinct successors of v and u the unigram law. Nothing is downloaded.
"""

from __future__ import annotations

import functools
import importlib.util
import warnings
from pathlib import Path

import torch

from condprob.errors import ValidationError
from condprob.lm.kernel import TokenKernel
from condprob.tolerance import check_probabilities

DENSE_LIMIT = 4096


class BigramLM(torch.nn.Module):
    """Next-token logits from the last token: log(base_v u + sparse row v) (see module doc).

    Stored as a unigram law `u` (V,), per-token weights `base` (V,) and a CSR matrix
    (`crow`, `col`, `val`) of the remaining mass, so a 80k-word vocabulary fits in memory.
    """

    def __init__(self, initial: torch.Tensor, unigram: torch.Tensor, base: torch.Tensor,
                 crow: torch.Tensor, col: torch.Tensor, val: torch.Tensor):
        super().__init__()
        v = initial.shape[0]
        if unigram.shape != (v,) or base.shape != (v,) or crow.shape != (v + 1,):
            raise ValidationError("initial, unigram, base and crow must have sizes V, V, V, V+1")
        self.register_buffer("initial", initial)
        self.register_buffer("unigram", unigram)
        self.register_buffer("base", base)
        self.register_buffer("crow", crow)
        self.register_buffer("col", col)
        self.register_buffer("val", val)
        try:
            self._sparse(check=True)
        except RuntimeError as err:
            raise ValidationError(f"crow, col and val must form a CSR matrix: {err}") from err

    @classmethod
    def from_matrix(cls, transition: torch.Tensor, initial: torch.Tensor) -> BigramLM:
        """A dense bigram model: P(next = w | last = v) = transition[v, w], P(first) = initial."""
        t, i = torch.as_tensor(transition), torch.as_tensor(initial)
        if i.ndim != 1 or t.shape != (i.shape[0], i.shape[0]):
            raise ValidationError(f"initial must be (V,) and transition (V, V), got "
                                  f"{tuple(i.shape)} and {tuple(t.shape)}")
        for name, m in (("transition", t), ("initial", i)):
            check_probabilities(m if m.is_floating_point() else m.double(), name)
        t, i = t.double(), i.double()
        v = i.shape[0]
        nz = t.nonzero()
        crow = torch.zeros(v + 1, dtype=torch.long)
        crow[1:] = torch.cumsum(torch.bincount(nz[:, 0], minlength=v), 0)
        return cls(i, torch.full((v,), 1.0 / v, dtype=torch.float64),
                   torch.zeros(v, dtype=torch.float64), crow, nz[:, 1], t[nz[:, 0], nz[:, 1]])

    @property
    def vocab_size(self) -> int:
        return self.initial.shape[0]

    def probs_after(self, last: torch.Tensor) -> torch.Tensor:
        """P(next | last token) for a batch of last tokens (B,) -> (B, V)."""
        out = self.base[last].unsqueeze(-1) * self.unigram
        starts, lens = self.crow[last], self.crow[last + 1] - self.crow[last]
        rows = torch.repeat_interleave(torch.arange(last.shape[0]), lens)
        offs = torch.arange(int(lens.sum())) - torch.repeat_interleave(
            torch.cumsum(lens, 0) - lens, lens)
        pos = starts[rows] + offs
        return out.index_put_((rows, self.col[pos]), self.val[pos], accumulate=True)

    def forward(self, prefix: torch.Tensor) -> torch.Tensor:
        if prefix.shape[1] == 0:
            return self.initial.log().expand(prefix.shape[0], -1).clone()
        return self.probs_after(prefix[:, -1]).log()

    @property
    def num_states(self) -> int:
        """Model states for exact conditioning: the last token."""
        return self.vocab_size

    def backward_step(self, g: torch.Tensor, next_state: torch.Tensor) -> torch.Tensor:
        """sum_w P(w | v) g(w, next_state[q, w]) for all (v, q): g (V, C) -> (V, S)."""
        return self.matmul(g.gather(1, next_state.T))

    def event_weights(self, prefix: torch.Tensor, g: torch.Tensor,
                      next_state: torch.Tensor) -> torch.Tensor:
        """P(next = w | prefix) g(w, next_state[b, w]): (B, V)."""
        return self.forward(prefix).exp() * g[torch.arange(self.vocab_size), next_state]

    def initial_joint(self, next_state: torch.Tensor, columns: int) -> torch.Tensor:
        """P(h_1 = w, q_1 = next_state[w]) = initial[w] (h_1: the first token): (V, columns)."""
        out = torch.zeros(self.vocab_size, columns, dtype=torch.float64)
        return out.index_put_((torch.arange(self.vocab_size), next_state), self.initial.double())

    def _sparse(self, check: bool = False) -> torch.Tensor:
        """The sparse part of the transition matrix as a torch CSR tensor (V, V)."""
        v = self.vocab_size
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            return torch.sparse_csr_tensor(self.crow, self.col, self.val, (v, v),
                                           check_invariants=check)

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        """P @ x for the transition matrix P (V, V) and x (V, K), without forming P: the
        rank-one part base u' plus a sparse CSR product."""
        return self.base.unsqueeze(-1) * (self.unigram @ x) + self._sparse() @ x

    def transition_matrix(self) -> torch.Tensor:
        """The dense (V, V) transition matrix (only for V <= 4096)."""
        if self.vocab_size > DENSE_LIMIT:
            raise ValidationError(f"a dense transition matrix of a {self.vocab_size}-token "
                                  f"vocabulary is too large (limit {DENSE_LIMIT})")
        return self.probs_after(torch.arange(self.vocab_size))


class HMMLM(torch.nn.Module):
    """A hidden Markov language model: h_1 ~ initial, h_{t+1} ~ transition[h_t], and token
    w_t ~ emission[h_t]. The next-token law of a prefix is (alpha_T transition) emission with
    alpha_T the filtered law of the last hidden state (initial emission for the empty prefix)."""

    def __init__(self, initial: torch.Tensor, transition: torch.Tensor, emission: torch.Tensor):
        super().__init__()
        init = torch.as_tensor(initial, dtype=torch.float64)
        trans = torch.as_tensor(transition, dtype=torch.float64)
        emit = torch.as_tensor(emission, dtype=torch.float64)
        h = init.shape[0]
        if trans.shape != (h, h) or emit.ndim != 2 or emit.shape[0] != h:
            raise ValidationError(f"expected initial ({h},), transition ({h}, {h}) and emission "
                                  f"({h}, V); got {tuple(trans.shape)} and {tuple(emit.shape)}")
        for name, given in (("initial", initial), ("transition", transition),
                            ("emission", emission)):
            m = torch.as_tensor(given)
            check_probabilities(m if m.is_floating_point() else m.double(), name)
        self.register_buffer("initial", init)
        self.register_buffer("transition", trans)
        self.register_buffer("emission", emit)

    @property
    def num_states(self) -> int:
        """Model states for exact conditioning: the hidden states."""
        return self.initial.shape[0]

    def predictive(self, prefix: torch.Tensor) -> torch.Tensor:
        """Law of the hidden state that emits the next token, given each prefix: (B, H)."""
        if prefix.shape[1] == 0:
            return self.initial.expand(prefix.shape[0], -1)
        alpha = self.initial * self.emission[:, prefix[:, 0]].T
        for t in range(1, prefix.shape[1]):
            alpha = alpha / alpha.sum(-1, keepdim=True)
            alpha = (alpha @ self.transition) * self.emission[:, prefix[:, t]].T
        if (alpha.sum(-1) <= 0).any():
            raise ValidationError("a prefix has probability zero under the HMM")
        return (alpha / alpha.sum(-1, keepdim=True)) @ self.transition

    def forward(self, prefix: torch.Tensor) -> torch.Tensor:
        return (self.predictive(prefix) @ self.emission).log()

    def backward_step(self, g: torch.Tensor, next_state: torch.Tensor) -> torch.Tensor:
        """sum_h' A[h, h'] sum_w B[h', w] g(h', next_state[q, w]): (H, C) -> (H, S)."""
        return self.transition @ (g[:, next_state] * self.emission.unsqueeze(1)).sum(-1)

    def event_weights(self, prefix: torch.Tensor, g: torch.Tensor,
                      next_state: torch.Tensor) -> torch.Tensor:
        """sum_h' rho(h') B[h', w] g(h', next_state[b, w]), rho the predictive law: (B, V)."""
        return torch.einsum("bh,hv,hbv->bv", self.predictive(prefix), self.emission,
                            g[:, next_state])

    def initial_joint(self, next_state: torch.Tensor, columns: int) -> torch.Tensor:
        """P(h_1 = h, q_1 = q) = sum of initial[h] B[h, w] over w with next_state[w] = q:
        (H, columns)."""
        out = torch.zeros(self.num_states, columns, dtype=torch.float64)
        return out.index_add_(1, next_state, self.initial.unsqueeze(-1) * self.emission)


def _symspell_dir() -> Path:
    spec = importlib.util.find_spec("symspellpy")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("the symspell bigram model needs the symspellpy package "
                          "(pip install symspellpy); nothing is downloaded")
    return Path(list(spec.submodule_search_locations)[0])


@functools.lru_cache(maxsize=2)
def symspell_bigram(max_words: int | None = None) -> TokenKernel:
    """A word-level bigram `TokenKernel` from symspellpy's shipped frequency dictionaries.

    `max_words` keeps the most frequent words only (all 82,765 by default).
    """
    folder = _symspell_dir()
    words, counts = [], []
    with open(folder / "frequency_dictionary_en_82_765.txt", encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == 2:
                words.append(parts[0])
                counts.append(float(parts[1]))
    uni = torch.tensor(counts, dtype=torch.float64)
    if max_words is not None:
        keep = torch.argsort(uni, descending=True)[:max_words].sort().values
        words = [words[i] for i in keep.tolist()]
        uni = uni[keep]
    index = {w: i for i, w in enumerate(words)}
    src, dst, cnt = [], [], []
    with open(folder / "frequency_bigramdictionary_en_243_342.txt", encoding="utf-8") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == 3 and parts[0] in index and parts[1] in index:
                src.append(index[parts[0]])
                dst.append(index[parts[1]])
                cnt.append(float(parts[2]))
    v = len(words)
    src_t, dst_t, cnt_t = torch.tensor(src), torch.tensor(dst), torch.tensor(cnt).double()
    order = torch.argsort(src_t * v + dst_t)
    src_t, dst_t, cnt_t = src_t[order], dst_t[order], cnt_t[order]
    row_total = torch.zeros(v, dtype=torch.float64).index_add_(0, src_t, cnt_t)
    distinct = torch.bincount(src_t, minlength=v).double()
    lam = torch.where(row_total > 0, row_total / (row_total + distinct), 0.0)
    crow = torch.zeros(v + 1, dtype=torch.long)
    crow[1:] = torch.cumsum(torch.bincount(src_t, minlength=v), 0)
    val = lam[src_t] * cnt_t / row_total[src_t]
    unigram = uni / uni.sum()
    model = BigramLM(unigram, unigram, 1 - lam, crow, dst_t, val)
    return TokenKernel(model, words)
