"""The lm tour section runs end to end and writes its figure."""

import pytest

from condprob.lm.tour import run


@pytest.mark.slow
def test_tour(tmp_path):
    text = run(tmp_path)
    assert "no intervention reproduces the text: True" in text
    assert "Exact P(" in text and (tmp_path / "lm.png").stat().st_size > 1000
    assert "ESS/N 1.00 at every step" in text and "Token-free laws" in text
