"""The score/SDE exercises: each solution passes its own check, an untouched stub reads "not attempted yet", and
known-wrong answers fail with a message that names the mistake."""

import pytest
import torch

from vgcourse.diffusion.sde import broadcast
from vgcourse.exercises import FAIL, NOT_ATTEMPTED, PASS, check, solution

NAMES = ["ve_marginal_std", "reverse_diffusion_step", "hutchinson_divergence"]


def stub(*args, **kwargs):
    # YOUR CODE HERE
    raise NotImplementedError


@pytest.mark.parametrize("name", NAMES)
def test_solution_passes_its_check(name: str):
    result = check(name, solution(name))
    assert result.status == PASS, str(result)


@pytest.mark.parametrize("name", NAMES)
def test_untouched_stub_is_not_attempted(name: str):
    assert check(name, stub).status == NOT_ATTEMPTED


def _fails_with(name: str, answer, *fragments: str) -> None:
    result = check(name, answer)
    assert result.status == FAIL, str(result)
    for fragment in fragments:
        assert fragment in result.message, result.message


def test_ve_marginal_std_wrong_answers():
    _fails_with("ve_marginal_std", lambda t, lo, hi: lo + t * (hi - lo), "geometric, not linear")
    _fails_with("ve_marginal_std", lambda t, lo, hi: torch.sqrt((lo * (hi / lo) ** t) ** 2 - lo ** 2),
                "exact kernel std")
    _fails_with("ve_marginal_std", lambda t, lo, hi: hi * (lo / hi) ** t, "expected σ=")  # runs backwards in t
    _fails_with("ve_marginal_std", lambda t, lo, hi: float(lo), "expected a tensor of shape (6,)")


def test_reverse_diffusion_step_wrong_answers():
    def forwards(sde, score_fn, x, t, dt, z):
        f, G = sde.discretize(x, t, dt)
        return x + f + broadcast(G ** 2, x) * score_fn(x, t) + broadcast(G, x) * z

    def no_noise(sde, score_fn, x, t, dt, z):
        f, G = sde.discretize(x, t, dt)
        return x - f + broadcast(G ** 2, x) * score_fn(x, t)

    def euler_maruyama(sde, score_fn, x, t, dt, z):  # a valid predictor, but not this one for the VP SDE
        drift, g = sde.sde(x, t)
        return x - (drift - broadcast(g ** 2, x) * score_fn(x, t)) * dt + broadcast(g, x) * dt ** 0.5 * z

    _fails_with("reverse_diffusion_step", forwards, "VPSDE", "stepped forwards")
    _fails_with("reverse_diffusion_step", no_noise, "noise G z is missing")
    _fails_with("reverse_diffusion_step", euler_maruyama, "VPSDE: off by up to")


def test_hutchinson_divergence_wrong_answers():
    def exact(fn, x, v):
        jac = torch.stack([torch.autograd.functional.jacobian(lambda xi: fn(xi[None])[0], xi) for xi in x])
        return jac.diagonal(dim1=1, dim2=2).sum(1)

    def one_sided(fn, x, v):  # 1ᵀ J v: a Jacobian-vector product summed, not vᵀ J v
        return torch.autograd.functional.jvp(fn, x, v)[1].sum(1)

    _fails_with("hutchinson_divergence", exact, "exact divergence")
    _fails_with("hutchinson_divergence", lambda fn, x, v: (v * v).sum(1), "vᵀv")
    _fails_with("hutchinson_divergence", one_sided, "1ᵀ J v")
    _fails_with("hutchinson_divergence", lambda fn, x, v: (v * v).sum(), "shape (6,)")


def test_hutchinson_solution_is_unbiased_for_a_known_matrix():
    # E[vᵀ A v] = tr(A) for Rademacher v: average many probes of the solution on a linear field x ↦ A x.
    g = torch.Generator().manual_seed(0)
    A = torch.randn(4, 4, generator=g, dtype=torch.float64)
    n = 20_000
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    v = torch.randint(0, 2, (n, 4), generator=g).double() * 2 - 1
    est = solution("hutchinson_divergence")(lambda y: y @ A.T, x, v)
    sym = (A + A.T) / 2
    var = 2 * (sym ** 2).sum() - 2 * (sym.diagonal() ** 2).sum()  # Rademacher: 2 Σ_{i≠j} sym_ij²
    assert abs(est.mean() - A.trace()) < 5 * (var / n).sqrt()
    torch.testing.assert_close(est.var(), var, rtol=0.05, atol=0)
