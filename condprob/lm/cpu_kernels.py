"""Compiled CPU kernels of `condprob.lm.sampling.sample_filtered` (numba, a few passes per row).

- `topk_draw`: top-k without a sort of the vocabulary. The row is cut into m >= 4k strided chunks
  (lane j holds the tokens i = j mod m) whose maxima one vectorised pass computes; the k-th
  largest chunk maximum T is a lower bound of the k-th largest logit (k distinct chunks hold a
  value >= T), so every token the filter keeps, ties with the k-th included, is >= T. A second
  pass collects the few candidates >= T; a selection finds the k-th largest among them. Top-p and
  min-p are exact prefixes of the sorted kept candidates (every kept set is an upper set), and
  the token is drawn by inverse CDF over the kept set.
- `nucleus_draw`: dual-pivot rejection sampling (FlashInfer's, as in `condprob.lm.sampling`) on
  rows of probabilities for top-p and min-p without top-k: a draw j by inverse CDF over
  {p > low, p >= min-p threshold}, accepted when the mass of the strictly more probable tokens is
  below top-p; a rejection raises `low`. A round reads the row about three times.

Masses and weights are summed in float64. Each kernel checks its rows in its first pass (NaN,
+inf, no token of positive weight) and reports them instead of drawing, so that the caller raises
the usual `ValidationError`. Compiled on first use (`cache=True`: numba's on-disk cache serves
later processes), never at import.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

_FAST = {"nnan", "nsz", "reassoc", "contract", "arcp"}
"""Flags of the vectorised float64 sums over rows the first pass has checked (no NaN there)."""

_BLOCK = 64
"""Block of the candidate and inverse-CDF scans: a vectorised test of the block first."""


@njit(cache=True)
def _lane_max(row, acc):  # pragma: no cover (compiled)
    """acc[j] = max of row[i] over i = j mod m (m = len(acc)), elementwise and vectorised;
    returns whether the row holds a NaN or a +inf (a NaN never enters acc)."""
    m = acc.shape[0]
    V = row.shape[0]
    bad = acc.copy()
    for j in range(m):
        acc[j] = -np.inf
        bad[j] = 0
    s = 0
    while s + m <= V:
        for j in range(m):
            v = row[s + j]
            acc[j] = v if v > acc[j] else acc[j]
            bad[j] = bad[j] if v < np.inf else 1
        s += m
    for j in range(V - s):
        v = row[s + j]
        acc[j] = v if v > acc[j] else acc[j]
        bad[j] = bad[j] if v < np.inf else 1
    for j in range(m):
        if bad[j] > 0:
            return True
    return False


@njit(cache=True)
def _kth_largest(a, n, k):  # pragma: no cover (compiled)
    """The k-th largest of a[:n] (1 <= k <= n) by three-way quickselect; reorders a[:n]."""
    lo, hi, want = 0, n, k - 1
    while True:
        x, y, z = a[lo], a[(lo + hi) // 2], a[hi - 1]
        pivot = max(min(x, y), min(max(x, y), z))
        lt, i, gt = lo, lo, hi
        while i < gt:
            if a[i] > pivot:
                a[lt], a[i] = a[i], a[lt]
                lt += 1
                i += 1
            elif a[i] < pivot:
                gt -= 1
                a[gt], a[i] = a[i], a[gt]
            else:
                i += 1
        if want < lt:
            hi = lt
        elif want >= gt:
            lo = gt
        else:
            return pivot


@njit(cache=True)
def _block_hits(block, thr):  # pragma: no cover (compiled)
    """How many of the _BLOCK values are >= `thr`; a slice and a constant trip count make the
    loop vectorised."""
    h = 0
    for i in range(_BLOCK):
        h += block[i] >= thr
    return h


@njit(cache=True)
def topk_draw(x, k, top_p, min_p, probs, u, out):  # pragma: no cover (compiled)
    """One token per row of logits `x` (B, V) from the top-k law (ties with the k-th kept),
    intersected with top-p (`top_p` < 1; `probs` holds softmax(x) then) and min-p (`min_p` > 0);
    `u` (B,) uniforms in [0, 1). Tokens go to `out`; a row with a NaN, a +inf or no finite logit
    gets -1. Needs 1 <= k < V."""
    B, V = x.shape
    m = max(4 * k, 256)
    acc = np.empty(m, x.dtype)
    vals = np.empty(V, x.dtype)
    work = np.empty(max(V, m), x.dtype)
    idx = np.empty(V, np.int64)
    w = np.empty(V, np.float64)
    for b in range(B):
        row = x[b]
        if _lane_max(row, acc):
            out[b] = -1
            continue
        top = acc[0]
        for j in range(m):
            work[j] = acc[j]
            top = max(top, acc[j])
        if top == -np.inf:
            out[b] = -1
            continue
        thr = _kth_largest(work, m, k)
        n = 0
        for s in range(0, V, _BLOCK):
            stop = min(V, s + _BLOCK)
            if stop - s == _BLOCK and _block_hits(row[s:stop], thr) == 0:
                continue
            for i in range(s, stop):  # branch-free: write always, advance on a candidate
                v = row[i]
                vals[n] = v
                idx[n] = i
                n += v >= thr
        for i in range(n):
            work[i] = vals[i]
        kth = _kth_largest(work, n, k)
        keep = 0
        for i in range(n):
            if vals[i] >= kth and (min_p <= 0 or math.exp(vals[i] - top) >= min_p):
                vals[keep] = vals[i]
                idx[keep] = idx[i]
                keep += 1
        if top_p < 1:
            for i in range(1, keep):  # insertion sort, descending: few inversions (<= k n)
                v, t, j = vals[i], idx[i], i
                while j > 0 and vals[j - 1] < v:
                    vals[j], idx[j] = vals[j - 1], idx[j - 1]
                    j -= 1
                vals[j], idx[j] = v, t
            mass = 0.0
            i = 0
            while i < keep and mass < top_p:  # a group of ties is kept or dropped whole
                v = vals[i]
                while i < keep and vals[i] == v:
                    mass += probs[b, idx[i]]
                    i += 1
            keep = i
        total = 0.0
        for i in range(keep):
            w[i] = math.exp(np.float64(vals[i]) - np.float64(top))
            total += w[i]
        target = u[b] * total
        run = 0.0
        pick = -1
        for i in range(keep):
            run += w[i]
            if run > target:
                pick = i
                break
        if pick < 0:
            pick = keep - 1
            while w[pick] <= 0:
                pick -= 1
        out[b] = idx[pick]


@njit(cache=True, fastmath=_FAST)
def _mass(row, low, floor):  # pragma: no cover (compiled)
    """Sum of row[i] over {row[i] > low, row[i] >= floor}, in float64."""
    s = 0.0
    for i in range(row.shape[0]):
        p = row[i]
        s += np.float64(p) if (p > low) & (p >= floor) else 0.0
    return s


@njit(cache=True, fastmath=_FAST)
def _block_mass(block, low, floor):  # pragma: no cover (compiled)
    """Sum in float64 of the _BLOCK probabilities p of `block` with p > low and p >= floor."""
    s = 0.0
    for i in range(_BLOCK):
        p = block[i]
        s += np.float64(p) if (p > low) & (p >= floor) else 0.0
    return s


@njit(cache=True)
def _draw(row, low, floor, target):  # pragma: no cover (compiled)
    """Inverse CDF over {p > low, p >= floor}: the first index whose running sum passes
    `target` (block sums first, then the elements of one block), or the last member when
    rounding leaves the target unreached."""
    V = row.shape[0]
    full = V - V % _BLOCK
    run = 0.0
    for s in range(0, V, _BLOCK):
        if s < full:
            block = _block_mass(row[s:s + _BLOCK], low, floor)
            if run + block <= target:
                run += block
                continue
        for i in range(s, min(V, s + _BLOCK)):
            p = row[i]
            if (p > low) & (p >= floor):
                run += p
                if run > target:
                    return i
    i = V - 1
    while not ((row[i] > low) & (row[i] >= floor)):
        i -= 1
    return i


@njit(cache=True)
def nucleus_draw(probs, top_p, min_p, u, low, high, out):  # pragma: no cover (compiled)
    """Dual-pivot rejection sampling of one token per row of `probs` (B, V) from the top-p
    (`top_p` < 1) and min-p (`min_p` > 0) law, one round per column of the uniforms `u` (B, R).
    Rows with out[b] >= 0 are done; (low, high) carry the pivots of open rows (high < 0: a row
    not started). A row still open after R rounds keeps out[b] = -1; a row with a NaN (softmax of
    a NaN, a +inf or no finite logit) gets -2."""
    B, V = probs.shape
    acc = np.empty(256, probs.dtype)
    for b in range(B):
        if out[b] >= 0:
            continue
        row = probs[b]
        if _lane_max(row, acc):
            out[b] = -2
            continue
        pmax = 0.0
        for j in range(acc.shape[0]):
            pmax = max(pmax, acc[j])
        floor = min_p * pmax if min_p > 0 else 0.0
        if high[b] < 0:
            low[b], high[b] = 0.0, pmax
        for r in range(u.shape[1]):
            j = _draw(row, low[b], floor, u[b, r] * _mass(row, low[b], floor))
            piv1 = row[j]
            if top_p >= 1 or _mass(row, piv1, 0.0) < top_p:
                out[b] = j
                break
            piv2 = (piv1 + high[b]) / 2
            if _mass(row, piv2, 0.0) < top_p:
                low[b], high[b] = piv1, piv2
            else:
                low[b] = piv2
