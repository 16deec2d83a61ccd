"""Shared spaces and boxes for the diagrams tests."""

import pytest

from condprob import FiniteSpace


@pytest.fixture
def spaces():
    return FiniteSpace(["a", "b"], name="X"), FiniteSpace(3, name="Y"), FiniteSpace(2, name="Z")
