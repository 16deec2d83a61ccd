"""Error types of condprob. Each names the object that caused it."""

from __future__ import annotations


class CondprobError(Exception):
    """Base class of condprob's own errors."""


class ConditioningError(CondprobError, ValueError):
    """Conditioning on an event of probability zero (or an inconsistent condition).

    Failure is an outcome, not a NaN: every conditioning operation raises this error, naming the
    event, instead of dividing by zero.
    """

    def __init__(self, event: object, detail: str = "it has probability zero"):
        self.event = event
        super().__init__(f"cannot condition on {event}: {detail}")


class SpaceMismatchError(CondprobError, TypeError):
    """Two objects that must share a space do not (e.g. composing X -> Y with Z -> W)."""

    def __init__(self, what: str, expected: object, got: object):
        self.expected = expected
        self.got = got
        super().__init__(f"{what}: expected {expected}, got {got}")


class ValidationError(CondprobError, ValueError):
    """An argument is malformed (not a distribution, wrong shape, unknown label, ...)."""


def check_positive_int(value: object, name: str) -> int:
    """`value` when it is an int >= 1 (a bool is not); else `ValidationError` "{name} must be a
    positive integer, got {value!r}"."""
    return _check_int(value, name, 1, "a positive integer")


def check_nonnegative_int(value: object, name: str) -> int:
    """`value` when it is an int >= 0 (a bool is not); else `ValidationError` "{name} must be a
    non-negative integer, got {value!r}"."""
    return _check_int(value, name, 0, "a non-negative integer")


def _check_int(value: object, name: str, low: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValidationError(f"{name} must be {what}, got {value!r}")
    return value
