"""The frame VAE: the ELBO's two terms by hand, the reparameterisation, β, the bound itself, and learning."""

import math

import pytest
import torch
from torch import nn

from vgcourse.autoencoders import (
    FrameVAE,
    FrameVAEConfig,
    frame_vae_small,
    frame_vae_tiny,
    gaussian_nll,
    negative_elbo,
    vae_loss,
    vae_terms,
)
from vgcourse.train import TrainConfig, Trainer


def _frames(n=6, size=16, seed=0):
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_shapes_levels_and_errors():
    cfg = frame_vae_small()
    assert (cfg.size, cfg.levels, cfg.bottom_channels, cfg.latent_dim) == (32, 3, 128, 32)
    vae = FrameVAE(cfg)
    x = _frames(3, 32)
    recon, posterior, z = vae(x)
    assert recon.shape == x.shape and posterior.mean.shape == (3, 32) and z.shape == (3, 32)
    assert recon.abs().max() <= 1 and vae.sample(5).shape == (5, 1, 32, 32)
    convs = [m for m in vae.encoder if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [32, 64, 128] and all(c.stride == (2, 2) for c in convs)
    with pytest.raises(ValueError, match=r"expected x of shape \(N, C, H, W\) as floats.*clips"):
        vae.encode(torch.zeros(2, 1, 3, 32, 32))
    with pytest.raises(ValueError, match="32×32"):
        vae.encode(torch.zeros(2, 1, 16, 16))
    with pytest.raises(ValueError, match="C=1 channels"):
        vae.encode(torch.zeros(2, 3, 32, 32))
    with pytest.raises(ValueError, match="latents of shape"):
        vae.decode(torch.zeros(2, 7))
    with pytest.raises(ValueError, match="power of two"):
        FrameVAEConfig(size=20)
    with pytest.raises(ValueError, match="beta"):
        FrameVAEConfig(beta=-1.0)


def test_gaussian_nll_by_hand():
    x = torch.tensor([[[[0.5, -0.5]]]])  # (1, 1, 1, 2)
    mean = torch.zeros_like(x)
    log_s = torch.tensor(math.log(0.5))
    want = 2 * (0.5 * 0.25 / 0.25 + 0.5 * math.log(2 * math.pi) + math.log(0.5))
    assert gaussian_nll(x, mean, log_s).item() == pytest.approx(want)
    # it is torch's Normal log-density, summed over pixels
    normal = torch.distributions.Normal(mean, log_s.exp())
    assert gaussian_nll(x, mean, log_s).item() == pytest.approx(-normal.log_prob(x).sum().item())


def test_kl_closed_form_matches_monte_carlo():
    """Kingma & Welling 2014, App. B: KL(N(μ, σ²) ‖ N(0, 1)) = ½ Σ (μ² + σ² − 1 − log σ²)."""
    vae = FrameVAE(frame_vae_tiny())
    posterior = vae.encode(_frames(2))
    g = torch.Generator().manual_seed(0)
    z = torch.stack([posterior.sample(g) for _ in range(20000)])  # (S, N, d)
    q = torch.distributions.Normal(posterior.mean, posterior.std)
    p = torch.distributions.Normal(0.0, 1.0)
    mc = (q.log_prob(z) - p.log_prob(z)).sum(-1).mean(0)  # (N,)
    torch.testing.assert_close(posterior.kl().detach(), mc.detach(), rtol=0.05, atol=0.05)


def test_reparameterisation_sends_gradients_to_the_encoder():
    vae = FrameVAE(frame_vae_tiny())
    vae_terms(vae, _frames(4))["nll"].sum().backward()  # the reconstruction term alone
    last = vae.encoder[-1]  # the linear layer giving μ and log σ²
    d = vae.cfg.latent_dim
    assert last.weight.grad[:d].abs().sum() > 0  # through μ
    assert last.weight.grad[d:].abs().sum() > 0  # through σ = exp(½ log σ²): the draw z = μ + σ ε


def test_beta_weights_the_kl_and_elbo_is_beta_one():
    vae = FrameVAE(frame_vae_tiny(beta=4.0))
    x = _frames(4)
    out = vae_loss(vae, x, generator=torch.Generator().manual_seed(0))
    assert out["loss"].item() == pytest.approx(out["nll"].item() + 4.0 * out["kl"].item(), rel=1e-6)
    assert out["neg_elbo"].item() == pytest.approx(out["nll"].item() + out["kl"].item(), rel=1e-6)
    other = vae_loss(vae, x, beta=0.5, generator=torch.Generator().manual_seed(0))
    assert other["loss"].item() == pytest.approx(out["nll"].item() + 0.5 * out["kl"].item(), rel=1e-6)


def test_scale_is_floored_at_8_bit_noise():
    vae = FrameVAE(frame_vae_tiny())
    with torch.no_grad():
        vae.log_scale.fill_(-20.0)
    assert vae.scale().item() == pytest.approx(math.log(2 / 255 / math.sqrt(12)))


def test_negative_elbo_bounds_an_importance_sampled_likelihood():
    """−ELBO ≥ −log p(x) ≈ −log (1/K) Σ p(x|z_k) p(z_k) / q(z_k|x) (Burda et al. 2016), for any weights."""
    torch.manual_seed(0)
    vae = FrameVAE(frame_vae_tiny()).eval()
    x = _frames(3)
    with torch.no_grad():
        vae.log_scale.fill_(math.log(0.3))
        neg_elbo = negative_elbo(vae, x, draws=256, generator=torch.Generator().manual_seed(1))
        posterior = vae.encode(x)
        q = torch.distributions.Normal(posterior.mean, posterior.std)
        z = q.sample((512,))  # (K, N, d)
        recon = vae.decode(z.flatten(0, 1)).unflatten(0, (512, 3))
        log_w = (-gaussian_nll(x.expand(512, -1, -1, -1, -1).flatten(0, 1), recon.flatten(0, 1), vae.scale())
                 .view(512, 3) + torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(-1) - q.log_prob(z).sum(-1))
        iw = -(torch.logsumexp(log_w, 0) - math.log(512))  # (N,)
    assert (neg_elbo >= iw - 0.5).all()
    assert (neg_elbo - iw).mean() > 0


def test_vae_learns_to_reconstruct():
    torch.manual_seed(0)
    vae = FrameVAE(frame_vae_tiny())
    x = torch.zeros(8, 1, 16, 16) - 1
    for i in range(8):
        x[i, :, 2 * i:2 * i + 3, 3:13] = 1  # a bar at 8 heights
    opt = torch.optim.Adam(vae.parameters(), 3e-3)
    trainer = Trainer(vae, opt, lambda s: x, TrainConfig(steps=300, progress=False, measure_flops=False),
                      loss_fn=lambda m, b: vae_loss(m, b))
    with torch.no_grad():
        before = (vae(x)[0] - x).abs().mean().item()
    trainer.fit()
    vae.eval()
    with torch.no_grad():
        after = (vae.decode(vae.encode(x).mean) - x).abs().mean().item()
    assert after < 0.15 < before
    assert trainer.history[-1]["neg_elbo"] < trainer.history[0]["neg_elbo"]
    assert trainer.history[-1]["scale"] < 0.5  # the learned noise level fell with the error
