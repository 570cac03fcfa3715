"""Training score models: the SDE's denoising score-matching loss (Song et al. 2021, eq. (7)) and NCSN's
noise-conditional score network (Song & Ermon 2019; NCSNv2's 1/σ output scaling)."""

import math

import pytest
import torch
from torch import nn

from vgcourse.diffusion import (
    SDE,
    VESDE,
    VPSDE,
    NoiseConditionalScore,
    SubVPSDE,
    VideoUNet,
    geometric_sigmas,
    sde_loss,
    video_unet_tiny,
)
from vgcourse.nn import randomised

MU = torch.tensor([1.0, -0.5, 0.0, 2.0], dtype=torch.float64)
S = torch.tensor([0.3, 0.6, 1.0, 0.2], dtype=torch.float64)  # data N(μ, diag(s²)): every p_t is Gaussian too


def true_eps(sde: SDE):
    """ε*(x, t) = -std(t) ∇x log p_t(x) for p_t = N(a μ, diag(a² s² + std²)), (a, std) from sde.marginal_prob."""
    def eps(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        a, std = sde.marginal_prob(torch.ones(len(t), 1, dtype=x.dtype), t)  # a (B, 1) coefficient of x(0), std (B,)
        return std[:, None] * (x - a * MU) / (a ** 2 * S ** 2 + std[:, None] ** 2)
    return eps


def test_sde_loss_matches_a_hand_computation():
    x0 = torch.tensor([[0.5, -1.0, 0.2], [0.0, 0.3, 0.9], [-0.7, 0.1, 0.4]], dtype=torch.float64)
    model = lambda x, t: 0.5 * x + t[:, None]  # noqa: E731 — any model of (x_t, t)
    eps = 1e-3
    g = torch.Generator().manual_seed(0)  # sde_loss draws t, then z
    t = torch.rand(3, generator=g, dtype=torch.float64) * (1 - eps) + eps
    z = torch.randn(3, 3, generator=g, dtype=torch.float64)
    integral = 0.1 * t + 0.5 * (20.0 - 0.1) * t ** 2                         # ∫_0^t β(s) ds, β from 0.1 to 20
    x_vp = torch.exp(-0.5 * integral)[:, None] * x0 + torch.sqrt(1 - torch.exp(-integral))[:, None] * z
    x_ve = x0 + (0.01 * (50.0 / 0.01) ** t)[:, None] * z                      # σ(t) = σ_min (σ_max / σ_min)^t
    for sde, x_t in ((VPSDE(0.1, 20.0), x_vp), (VESDE(0.01, 50.0), x_ve)):
        by_hand = ((0.5 * x_t + t[:, None] - z) ** 2).mean()
        loss = sde_loss(model, x0, sde, eps=eps, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(loss, by_hand)
    with pytest.raises(ValueError, match="expected 0 <= eps < T"):
        sde_loss(model, x0, VPSDE(), eps=1.0)


@pytest.mark.parametrize("sde", [VPSDE(), SubVPSDE(), VESDE(0.01, 5.0)], ids=["vp", "subvp", "ve"])
def test_sde_loss_is_minimised_by_the_true_score(sde: SDE):
    n = 20_000
    x0 = MU + S * torch.randn(n, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def loss_and_slope(c: float) -> tuple[float, float]:
        """The loss of the model c·ε* and its derivative in c, on the same t and z for every c."""
        scale = torch.tensor(c, dtype=torch.float64, requires_grad=True)
        loss = sde_loss(lambda x, t: scale * true_eps(sde)(x, t), x0, sde, generator=torch.Generator().manual_seed(2))
        loss.backward()
        return loss.item(), scale.grad.item()

    best, slope = loss_and_slope(1.0)
    # at the true score the gradient is zero in expectation: 2 E[ε* · (ε* - z)] = 0 since E[z | x_t] = ε*
    assert abs(slope) < 0.02, slope                   # its standard error here is about 0.005
    low, slope_low = loss_and_slope(0.8)
    high, slope_high = loss_and_slope(1.2)
    assert best < low and best < high and slope_low < -0.05 and slope_high > 0.05
    # the minimum is the irreducible part E_t[mean_j a² s_j² / (a² s_j² + std²)] (what ε* cannot know about z)
    g = torch.Generator().manual_seed(2)
    t = torch.rand(n, generator=g, dtype=torch.float64) * (1 - 1e-5) + 1e-5
    a, std = sde.marginal_prob(torch.ones(n, 1, dtype=torch.float64), t)
    minimum = (a ** 2 * S ** 2 / (a ** 2 * S ** 2 + std[:, None] ** 2)).mean().item()
    assert math.isclose(best, minimum, rel_tol=0.03), (best, minimum)


class TimesIndex(nn.Module):
    """net(x, i) = (i + 1) · x: an output that depends on the noise level's index."""

    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return (idx.to(x.dtype) + 1).view(-1, *[1] * (x.dim() - 1)) * x


def test_ncsn_divides_the_net_by_its_sigma():
    sigmas = geometric_sigmas(0.05, 2.0, 4)
    ncsn = NoiseConditionalScore(TimesIndex(), sigmas)
    x = torch.randn(4, 1, 2, 3, 3, generator=torch.Generator().manual_seed(0))
    idx = torch.tensor([0, 3, 1, 3])
    expected = -(idx.float() + 1).view(-1, 1, 1, 1, 1) * x / sigmas[idx].view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(ncsn(x, idx), expected)
    assert "sigmas" in ncsn.state_dict() and "sigmas" not in dict(ncsn.named_parameters())  # saved, not trained
    with pytest.raises(ValueError, match="expected idx as a long tensor"):
        ncsn(x, idx.float())
    with pytest.raises(ValueError, match="expected sigmas in decreasing order"):
        NoiseConditionalScore(TimesIndex(), sigmas.flip(0))


def test_ncsn_on_the_video_unet_is_conditioned_on_the_noise_level():
    torch.manual_seed(0)
    unet = randomised(VideoUNet(video_unet_tiny()))        # 16×16, 8 frames
    sigmas = geometric_sigmas(0.02, 2.0, 10)
    ncsn = NoiseConditionalScore(unet, sigmas).eval()
    x = torch.randn(2, 1, 8, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        big, small = ncsn(x, torch.tensor([0, 0])), ncsn(x, torch.tensor([9, 9]))
        assert big.shape == x.shape
        torch.testing.assert_close(small * sigmas[9], -unet(x, torch.tensor([9, 9])))
    # a lower noise level gives a larger score: by the 1/σ scaling (σ_0 / σ_9 = 100) and through the net's timestep
    assert small.norm() > 20 * big.norm()
    assert not torch.allclose(small * sigmas[9], big * sigmas[0], atol=1e-3)  # the net itself sees the level


def test_ncsn_with_the_right_net_is_the_true_score():
    # Data N(0, s² I) perturbed by σ: q_σ = N(0, (s² + σ²) I), score -x / (s² + σ²); net = σ x / (s² + σ²).
    s2, sigmas = 0.25, geometric_sigmas(0.01, 1.0, 5).double()

    class Ideal(nn.Module):
        def forward(self, x, idx):
            sigma = sigmas[idx][:, None]
            return sigma * x / (s2 + sigma ** 2)

    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    idx = torch.arange(6) % 5
    torch.testing.assert_close(NoiseConditionalScore(Ideal(), sigmas)(x, idx), -x / (s2 + sigmas[idx][:, None] ** 2))
