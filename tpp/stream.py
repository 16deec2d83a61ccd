"""Event sequences streamed from many files, batch by batch (bounded memory).

`EventFiles` reads the formats of the in-memory loaders: CSV files with one row per event
(`EventBatch.from_csv`; each sequence's rows contiguous) and JSON-lines files with one
`EventBatch.from_dicts` record ({"times": [...], "marks": [...], "T": end}) per line. It is a data
set for `tpp.train` and `condprob.train.fit`: `data[indices]` is an `EventBatch`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from condprob.errors import ValidationError, check_positive_int
from condprob.train import FileRecords
from tpp.data import EventBatch

__all__ = ["EventFiles"]


class EventFiles(FileRecords):
    """Event sequences in CSV or JSON-lines files, indexed once and read on demand.

    Args:
        paths: the files (all of one format; CSV files share their header).
        num_marks: the number of mark categories (a batch cannot see them all; 1 when there is no
            mark column).
        format: "csv" (plain comma-separated values without quoted fields) or "jsonl".
        seq_col, time_col, mark_col: CSV columns, as for `EventBatch.from_csv`.
        T: the window end of every sequence (default: a record's "T", else its last time).
    """

    def __init__(self, paths: Sequence[str | Path], num_marks: int | None = None,
                 format: str = "csv", seq_col: str = "seq_id", time_col: str = "time",
                 mark_col: str | None = "mark", T: float | None = None):
        if format not in ("csv", "jsonl"):
            raise ValidationError(f"format must be 'csv' or 'jsonl', got {format!r}")
        if num_marks is None and (format == "jsonl" or mark_col is not None):
            raise ValidationError("give num_marks: a streamed batch cannot see every mark")
        if num_marks is not None:
            check_positive_int(num_marks, "num_marks")
        self.num_marks, self.T = 1 if num_marks is None else num_marks, T
        if format == "jsonl":
            super().__init__(paths, self._from_json)
            return
        columns = None
        for path in paths:
            if not Path(path).is_file():
                raise ValidationError(f"no such file: {path}")
            with open(path) as fh:
                head = fh.readline().strip().split(",")
            if columns is not None and head != columns:
                raise ValidationError(f"{path}: header {head} differs from {columns}")
            columns = head
        need = [seq_col, time_col] + ([mark_col] if mark_col else [])
        missing = [c for c in need if c not in (columns or [])]
        if missing:
            raise ValidationError(f"{paths[0]}: missing column(s) {missing}")
        seq = columns.index(seq_col)
        self._time = columns.index(time_col)
        self._mark = columns.index(mark_col) if mark_col else None
        super().__init__(paths, self._from_csv, group=lambda line: line.split(",")[seq],
                         header=True)

    def _row(self, line: str) -> tuple[float, int]:
        r = line.split(",")
        try:
            return float(r[self._time]), int(r[self._mark]) if self._mark is not None else 0
        except (IndexError, ValueError) as err:
            raise ValidationError(f"malformed CSV row {line!r} ({err})") from None

    def _from_csv(self, records: list[list[str]]) -> EventBatch:
        rows = [[self._row(line) for line in rec] for rec in records]
        return EventBatch.from_sequences([[t for t, _ in rec] for rec in rows],
                                         [[m for _, m in rec] for rec in rows], self.T,
                                         self.num_marks)

    def _from_json(self, records: list[list[str]]) -> EventBatch:
        dicts = []
        for rec in records:
            try:
                dicts.append(json.loads(rec[0]))
            except json.JSONDecodeError as err:
                raise ValidationError(f"malformed JSON line {rec[0][:80]!r} ({err})") from None
        return EventBatch.from_dicts(dicts, self.T, self.num_marks)
