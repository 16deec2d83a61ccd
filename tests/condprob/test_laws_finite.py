"""Every finite law, on Hypothesis-drawn kernels, in the float and the exact backend."""

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from condprob import State, laws
from condprob import backend as B

BACKENDS = pytest.mark.parametrize("exact", [False, True], ids=["float64", "exact"])


@st.composite
def chain3(draw, exact):
    x, y, z, w = (draw(laws.finite_spaces(name=n)) for n in "XYZW")
    return (draw(laws.kernels(x, y, exact)), draw(laws.kernels(y, z, exact)),
            draw(laws.kernels(z, w, exact)))


@BACKENDS
@given(data=st.data())
def test_category_laws(exact, data):
    f, g, h = data.draw(chain3(exact))
    laws.law_associativity(f, g, h)
    laws.law_identity(f)
    laws.law_discard_naturality(f)


@BACKENDS
@given(data=st.data())
def test_monoidal_laws(exact, data):
    f1, g1, _ = data.draw(chain3(exact))
    f2, g2, _ = data.draw(chain3(exact))
    laws.law_interchange(f1, g1, f2, g2)
    laws.law_tensor_identity(f1, f2)
    laws.law_copy_comonoid(f1.dom)
    laws.law_copy_comonoid(f1.dom @ f2.dom)
    laws.law_swap_involution(f1.dom, f2.cod)


@BACKENDS
@given(data=st.data())
def test_disintegration_laws(exact, data):
    space = data.draw(laws.product_spaces(3))
    joint = data.draw(laws.states(space, exact))
    along = data.draw(st.sampled_from([0, "B", ("C", "A"), (1, 2)]))
    laws.law_disintegration(joint, along)
    x, y = space.select(0), space.select((1, 2))
    prior = data.draw(laws.states(x, exact))
    laws.law_disintegration_unique(prior, data.draw(laws.kernels(x, y, exact)))


@BACKENDS
@given(data=st.data())
def test_inversion_laws(exact, data):
    x, y, z = (data.draw(laws.finite_spaces(name=n)) for n in "XYZ")
    prior = data.draw(laws.states(x, exact))
    c, d = data.draw(laws.kernels(x, y, exact)), data.draw(laws.kernels(y, z, exact))
    laws.law_inversion(prior, c)
    laws.law_inversion_is_disintegration(prior, c)
    laws.law_inversion_involution(prior, c)
    laws.law_inversion_composite(prior, c, d)
    laws.law_inversion_recovers_prior(prior, c)
    q = data.draw(laws.states(y, exact))
    laws.law_inversion_tensor(prior, c, q, d)


@BACKENDS
@given(data=st.data())
def test_update_laws(exact, data):
    x, y = (data.draw(laws.finite_spaces(name=n)) for n in "XY")
    s = data.draw(laws.states(x, exact))
    p, q = data.draw(laws.predicates(x, exact)), data.draw(laws.predicates(x, exact))
    assume(not bool(B.zero_mask(s.validity(p & q))))
    laws.law_pearl(s, p, q)
    c = data.draw(laws.kernels(x, y, exact))
    label = data.draw(st.sampled_from(y.labels))
    assume(not bool(B.zero_mask((s >> c).prob(label))))
    laws.law_jeffrey_point(s, c, label)


def test_laws_detect_a_wrong_inversion(monkeypatch):
    """Power check: with a deliberately wrong inversion (ignoring the prior), the laws fail."""
    from condprob import Kernel
    from condprob.finite import Kernel as K

    right = K._invert
    monkeypatch.setattr(K, "_invert", lambda self, prior: right(self, State.uniform(self.dom)))
    prior = State([0.7, 0.3], ["a", "b"])
    c = Kernel([[0.9, 0.1], [0.2, 0.8]], ["a", "b"], ["u", "v"])
    with pytest.raises(AssertionError, match="Bayesian inversion"):
        laws.law_inversion(prior, c)
    with pytest.raises(AssertionError):
        laws.law_inversion_recovers_prior(prior, c)


def test_laws_detect_a_wrong_disintegration(monkeypatch):
    """Power check: a 'disintegration' that forgets the dependence fails the law."""
    from condprob import Disintegration, FiniteSpace, Kernel, disintegrate
    from condprob.finite import State as S

    right = S._disintegrate

    def independent(self, along):
        m, k, null = right(self, along)
        rest = self.marginal(1)
        return Disintegration(m, Kernel([rest.probs.tolist()] * m.cod.size, m.cod, k.cod), null)

    x, y = FiniteSpace(["a", "b"], "X"), FiniteSpace(["u", "v"], "Y")
    joint = State([0.4, 0.1, 0.1, 0.4], x @ y)
    laws.law_disintegration(joint, 0)
    monkeypatch.setattr(S, "_disintegrate", independent)
    assert disintegrate(joint, 0).kernel.cod == y
    with pytest.raises(AssertionError, match="disintegration"):
        laws.law_disintegration(joint, 0)
