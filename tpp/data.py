"""Event data: a validated, padded batch of event sequences on observation windows [0, T].

A sequence is a list of event times 0 <= t_1 <= ... <= t_n <= T with a mark per event: a category
in {0, ..., K-1} or a vector in R^d. `EventBatch` stores B sequences padded to a common length L
(padded times are T, padded marks are 0) with their lengths and windows.
"""

from __future__ import annotations

import csv
import itertools
import math
import pickle
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from condprob.errors import ValidationError
from condprob.tolerance import within

__all__ = ["EventBatch"]


class EventBatch:
    """B event sequences padded to length L.

    Args:
        times: (B, L) event times, non-decreasing within each sequence.
        marks: (B, L) integer marks in [0, num_marks) or (B, L, d) real mark vectors.
        lengths: (B,) number of real events per sequence.
        T: (B,) window ends (a number broadcasts); every event lies in [0, T].
        num_marks: number of categories (categorical marks; default 1 + the largest mark).
    """

    def __init__(self, times: Tensor, marks: Tensor, lengths: Tensor, T: Tensor | float,
                 num_marks: int | None = None, dtype: torch.dtype = torch.float64):
        times = torch.as_tensor(times, dtype=dtype)
        if times.ndim != 2:
            raise ValidationError(f"times must have shape (B, L), got {tuple(times.shape)}")
        B, L = times.shape
        lengths = torch.as_tensor(lengths)
        if lengths.shape != (B,) or lengths.is_floating_point():
            raise ValidationError(f"lengths must be {B} integers, got {lengths!r}")
        if ((lengths < 0) | (lengths > L)).any():
            raise ValidationError(f"lengths must lie in [0, {L}], got {lengths.tolist()}")
        T = torch.as_tensor(T, dtype=dtype)
        T = T.expand(B).clone() if T.ndim == 0 else T
        if T.shape != (B,) or not torch.isfinite(T).all() or (T <= 0).any():
            raise ValidationError(f"T must be {B} finite positive window ends, got {T.tolist()}")
        marks = torch.as_tensor(marks)
        self.continuous = marks.is_floating_point()
        if marks.shape[:2] != (B, L) or marks.ndim != (3 if self.continuous else 2):
            raise ValidationError(
                f"marks must have shape ({B}, {L}) (categorical) or ({B}, {L}, d) (continuous), "
                f"got {tuple(marks.shape)}")
        self.lengths = lengths.long()
        mask = torch.arange(L) < self.lengths[:, None]
        self.mask = mask
        real = times[mask]
        if not torch.isfinite(real).all():
            raise ValidationError("event times must be finite")
        if (real < 0).any():
            raise ValidationError(f"event times must be >= 0, got minimum {real.min().item()}")
        if L > 1 and ((times[:, 1:] < times[:, :-1]) & mask[:, 1:]).any():
            b = int(((times[:, 1:] < times[:, :-1]) & mask[:, 1:]).any(1).nonzero()[0, 0])
            raise ValidationError(f"event times of sequence {b} are not sorted")
        over = (times > T[:, None]) & mask
        if over.any():
            b = int(over.any(1).nonzero()[0, 0])
            raise ValidationError(
                f"sequence {b} has an event at {times[b][over[b]][0].item()} outside its window "
                f"[0, {T[b].item()}]")
        if self.continuous:
            marks = marks.to(dtype)
            if not torch.isfinite(marks[mask]).all():
                raise ValidationError("continuous marks must be finite")
            self.num_marks = None
            self.mark_dim: int | None = marks.shape[-1]
        else:
            marks = marks.long()
            top = int(marks[mask].max()) + 1 if mask.any() else 1
            num_marks = top if num_marks is None else num_marks
            if (marks[mask] < 0).any() or top > num_marks:
                bad = marks[mask][(marks[mask] < 0) | (marks[mask] >= num_marks)][0].item()
                raise ValidationError(f"mark {bad} out of range [0, {num_marks})")
            self.num_marks = num_marks
            self.mark_dim = None
            marks = marks.masked_fill(~mask, 0)
        self.times = torch.where(mask, times, T[:, None])
        self.marks = marks if not self.continuous else marks.masked_fill(~mask[..., None], 0.0)
        self.T = T

    # Construction ---------------------------------------------------------------------------
    @classmethod
    def from_sequences(cls, times: Sequence[Sequence[float]], marks: Sequence[Any] | None = None,
                       T: float | Sequence[float] | None = None, num_marks: int | None = None,
                       dtype: torch.dtype = torch.float64) -> EventBatch:
        """Pad ragged sequences; marks default to 0; T defaults to each sequence's last time."""
        if len(times) == 0:
            raise ValidationError("an event batch needs at least one sequence")
        B, L = len(times), max(len(t) for t in times)
        marks = [[0] * len(t) for t in times] if marks is None else marks
        if len(marks) != B or any(len(m) != len(t) for m, t in zip(marks, times, strict=True)):
            raise ValidationError("marks must give one mark per event of every sequence")
        first = next((m[0] for m in marks if len(m)), 0)
        continuous = isinstance(first, Sequence | Tensor) or isinstance(first, float)
        if continuous:
            d = len(first) if isinstance(first, Sequence | Tensor) else 1
            M = torch.zeros(B, L, d, dtype=dtype)
        else:
            M = torch.zeros(B, L, dtype=torch.long)
        Tt = torch.zeros(B, dtype=dtype)
        tt = torch.zeros(B, L, dtype=dtype)
        for b, (t, m) in enumerate(zip(times, marks, strict=True)):
            n = len(t)
            try:
                tt[b, :n] = torch.as_tensor(t, dtype=dtype)
                if n:
                    M[b, :n] = torch.as_tensor(m, dtype=M.dtype).reshape(M[b, :n].shape)
            except (ValueError, TypeError, RuntimeError) as err:
                raise ValidationError(f"sequence {b}: times must be numbers and marks integers "
                                      f"(or vectors of one length): {err}") from None
            if T is None:
                Tt[b] = float(t[-1]) if n else math.nan
            else:
                Tt[b] = float(T) if isinstance(T, int | float) else float(T[b])
            if n:
                tt[b, n:] = Tt[b]
        return cls(tt, M, torch.tensor([len(t) for t in times]), Tt, num_marks, dtype)

    @classmethod
    def from_dicts(cls, records: Sequence[Mapping[str, Any]], T: float | None = None,
                   num_marks: int | None = None) -> EventBatch:
        """From dicts {"times": [...], "marks": [...], "T": end} ("marks" and "T" optional)."""
        for i, r in enumerate(records):
            if "times" not in r:
                raise ValidationError(f"record {i} has no 'times' key (keys: {sorted(r)})")
        ends = [r.get("T", T) for r in records]
        if any(e is None for e in ends):
            ends = None if all(e is None for e in ends) else [
                e if e is not None else r["times"][-1] for e, r in zip(ends, records, strict=True)]
        return cls.from_sequences([r["times"] for r in records],
                                  [r.get("marks", [0] * len(r["times"])) for r in records],
                                  ends, num_marks)

    @classmethod
    def from_csv(cls, path: str | Path, seq_col: str = "seq_id", time_col: str = "time",
                 mark_col: str | None = "mark", T: float | None = None,
                 num_marks: int | None = None) -> EventBatch:
        """One row per event; rows are grouped by `seq_col` (in order of first appearance)."""
        seqs: dict[str, tuple[list[float], list[int]]] = {}
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            need = [seq_col, time_col] + ([mark_col] if mark_col else [])
            missing = [c for c in need if c not in (reader.fieldnames or [])]
            if missing:
                raise ValidationError(f"{path}: missing column(s) {missing}")
            for row in reader:
                ts, ms = seqs.setdefault(row[seq_col], ([], []))
                try:
                    ts.append(float(row[time_col]))
                    ms.append(int(row[mark_col]) if mark_col else 0)
                except (ValueError, TypeError):
                    raise ValidationError(
                        f"{path}, line {reader.line_num}: {time_col} must be a number and "
                        f"{mark_col} an integer, got {row[time_col]!r} and "
                        f"{row.get(mark_col) if mark_col else None!r}") from None
        return cls.from_sequences([s[0] for s in seqs.values()], [s[1] for s in seqs.values()],
                                  T, num_marks)

    @classmethod
    def from_easytpp_pickle(cls, path: str | Path, split: str = "train",
                            T: float | None = None) -> EventBatch:
        """EasyTPP pickles: {"dim_process": K, split: [[{"time_since_start", "type_event"}, ...]]}."""
        with open(path, "rb") as fh:
            try:
                data = pickle.load(fh)
            except Exception as err:  # a truncated or foreign file raises any of a dozen types
                raise ValidationError(f"{path} is not a readable pickle: {type(err).__name__}: "
                                      f"{err}") from None
        if not isinstance(data, Mapping):
            raise ValidationError(f"{path} holds a {type(data).__name__}, not EasyTPP's dict "
                                  "{'dim_process': K, split: [[event dicts]]}")
        if split not in data:
            raise ValidationError(f"{path} has no split {split!r} (keys: {sorted(data)})")
        try:
            times = [[float(e["time_since_start"]) for e in s] for s in data[split]]
            marks = [[int(e["type_event"]) for e in s] for s in data[split]]
        except (KeyError, TypeError, ValueError) as err:
            raise ValidationError(f"{path}, split {split!r}: every event must be a dict with a "
                                  f"numeric 'time_since_start' and an integer 'type_event' "
                                  f"({type(err).__name__}: {err})") from None
        return cls.from_sequences(times, marks, T, data.get("dim_process"))

    # Views ----------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.times.shape[0]

    @property
    def max_len(self) -> int:
        """Padded length L."""
        return self.times.shape[1]

    @property
    def num_events(self) -> int:
        """Number of real (unpadded) events."""
        return int(self.lengths.sum())

    @property
    def inter_times(self) -> Tensor:
        """tau_i = t_i - t_{i-1} with t_0 = 0; padded entries are 0."""
        prev = torch.nn.functional.pad(self.times[:, :-1], (1, 0))
        return (self.times - prev).masked_fill(~self.mask, 0.0)

    @property
    def last_times(self) -> Tensor:
        """Time of each sequence's last event (0 for an empty sequence)."""
        if self.max_len == 0:
            return torch.zeros_like(self.T)
        idx = (self.lengths - 1).clamp(min=0)
        last = self.times.gather(1, idx[:, None])[:, 0]
        return torch.where(self.lengths > 0, last, torch.zeros_like(last))

    def _check_index(self, b: Any) -> None:
        if isinstance(b, bool) or not isinstance(b, int) or not -len(self) <= b < len(self):
            raise ValidationError(f"sequence index {b!r} out of range for {len(self)} sequences")

    def sequence(self, b: int) -> tuple[Tensor, Tensor]:
        """The unpadded times and marks of sequence b."""
        self._check_index(b)
        n = int(self.lengths[b])
        return self.times[b, :n], self.marks[b, :n]

    def __getitem__(self, idx: int | slice | Tensor | Sequence[int]) -> EventBatch:
        """A sub-batch (an int keeps the batch dimension), trimmed to its longest sequence."""
        if isinstance(idx, int):
            idx = [idx]
        if not isinstance(idx, slice) and not (isinstance(idx, Tensor) and idx.dtype == torch.bool):
            for i in torch.as_tensor(idx).reshape(-1).tolist():
                self._check_index(i)
        lengths = self.lengths[idx]
        L = int(lengths.max()) if len(lengths) else 0
        return EventBatch(self.times[idx, :L], self.marks[idx, :L], lengths, self.T[idx],
                          self.num_marks, self.times.dtype)

    def split(self, fractions: Sequence[float] = (0.6, 0.2, 0.2),
              seed: int | None = 0) -> tuple[EventBatch, ...]:
        """Random split of the sequences by the given fractions (a seed of None keeps order)."""
        if any(f < 0 for f in fractions) or not within(math.fsum(fractions) - 1, torch.float64):
            raise ValidationError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
        B = len(self)
        order = (torch.arange(B) if seed is None
                 else torch.randperm(B, generator=torch.Generator().manual_seed(seed)))
        cuts = [round(c * B) for c in itertools.accumulate(fractions)]
        parts, start = [], 0
        for stop in cuts:
            if stop == start:
                raise ValidationError(f"split {fractions} of {B} sequences leaves a part empty")
            parts.append(self[order[start:stop]])
            start = stop
        return tuple(parts)

    def batches(self, batch_size: int, shuffle: bool = False,
                generator: torch.Generator | None = None) -> Iterator[EventBatch]:
        """Mini-batches of at most `batch_size` sequences, each trimmed to its own padding."""
        if batch_size < 1:
            raise ValidationError(f"batch_size must be >= 1, got {batch_size}")
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        for start in range(0, len(self), batch_size):
            yield self[order[start:start + batch_size]]

    def window(self, t0: float, t1: float) -> EventBatch:
        """The events in [t0, t1] of every sequence, shifted to the window [0, t1 - t0]."""
        if not 0 <= t0 < t1:
            raise ValidationError(f"need 0 <= t0 < t1, got {t0}, {t1}")
        keep = self.mask & (self.times >= t0) & (self.times <= t1)
        times = [(self.times[b][keep[b]] - t0).tolist() for b in range(len(self))]
        marks = [self.marks[b][keep[b]].tolist() for b in range(len(self))]
        return EventBatch.from_sequences(times, marks, t1 - t0, self.num_marks, self.times.dtype)

    def __repr__(self) -> str:
        kind = f"{self.num_marks} marks" if not self.continuous else f"marks in R^{self.mark_dim}"
        return f"EventBatch({len(self)} sequences, {self.num_events} events, {kind})"

