"""Tagging-scheme constraints as label-level regular expressions (for `crf.RegCCRF`).

Each helper takes entity types and returns (labels, pattern): the scheme's label list and the
regular expression of its well-formed sequences, with labels quoted so any type name works.
"""

from __future__ import annotations

from collections.abc import Sequence

from condprob.errors import ValidationError


def _check(types: Sequence[str]) -> list[str]:
    if isinstance(types, str):
        raise ValidationError(f"entity types must be a list of names, got the string {types!r} "
                              f"(write [{types!r}] for one type)")
    types = list(types)
    if not types:
        raise ValidationError("at least one entity type is needed")
    if len(set(types)) != len(types):
        raise ValidationError(f"entity types must be distinct, got {types}")
    for t in types:
        if not isinstance(t, str) or not t or '"' in t:
            raise ValidationError(f"entity types must be non-empty strings without '\"', got {t!r}")
    return types


def _q(label: str) -> str:
    return f'"{label}"'


def bio(types: Sequence[str]) -> tuple[list[str], str]:
    """BIO (IOB2): every chunk starts with B-X; I-X only continues a B-X or I-X chunk."""
    types = _check(types)
    labels = ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
    chunks = [f"{_q('B-' + t)} {_q('I-' + t)}*" for t in types]
    return labels, "(O | " + " | ".join(chunks) + ")*"


def bioes(types: Sequence[str]) -> tuple[list[str], str]:
    """BIOES (BILOU): single-token chunks are S-X; longer ones are B-X I-X* E-X."""
    types = _check(types)
    labels = ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I", "E", "S")]
    chunks = [f"{_q('S-' + t)} | {_q('B-' + t)} {_q('I-' + t)}* {_q('E-' + t)}" for t in types]
    return labels, "(O | " + " | ".join(chunks) + ")*"


def iob1(types: Sequence[str]) -> tuple[list[str], str]:
    """IOB1: chunks are runs of I-X; B-X appears only right after a token of the same type X
    (to split two adjacent chunks)."""
    types = _check(types)
    labels = ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]
    chunks = [f"{_q('I-' + t)} ({_q('I-' + t)} | {_q('B-' + t)})*" for t in types]
    return labels, "(O | " + " | ".join(chunks) + ")*"


SCHEMES = {"bio": bio, "bioes": bioes, "iob1": iob1}
