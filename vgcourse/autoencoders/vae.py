"""A variational autoencoder of single frames (Kingma & Welling 2014), with the KL weight β of Higgins et al. 2017.

An encoder q_φ(z|x) = N(μ_φ(x), diag σ²_φ(x)), a standard normal prior p(z) = N(0, I) and a Gaussian decoder
p_θ(x|z) = N(μ_θ(z), s² I) whose one noise level s is learned with the rest (a "calibrated decoder", Rybkin,
Daniilidis & Levine 2021). Training maximises the evidence lower bound (ELBO, Kingma & Welling 2014, eq. (3)):

    log p_θ(x) ≥ L(θ, φ; x) = E_{q_φ(z|x)}[log p_θ(x|z)] − KL(q_φ(z|x) ‖ p(z)),

estimated as in their eq. (10): the KL in closed form (Appendix B) and the expectation with one reparameterised
draw z = μ + σ ⊙ ε, ε ~ N(0, I), so that gradients flow through the draw into the encoder. β-VAE (Higgins et al.
2017, eq. (4)) weights the KL term: loss = −E[log p(x|z)] + β · KL; β = 1 is the ELBO itself, β > 1 buys a smoother
latent space with blurrier reconstructions, β < 1 the reverse.

Frames are image batches (N, C, H, W) in [-1, 1] (8-bit frames dequantised with uniform noise stray up to 1/255
beyond). The encoder halves the resolution with strided 4×4 convolutions down to 4×4 and the decoder mirrors it with
transposed convolutions, as a DCGAN's discriminator and generator do (:mod:`vgcourse.gan.dcgan`), with GroupNorm so
that a frame's code never depends on the rest of its batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from vgcourse.autoencoders.kl import DiagonalGaussian
from vgcourse.nn.blocks import group_norm

LOG_2PI = math.log(2 * math.pi)


@dataclass
class FrameVAEConfig:
    """Sizes of a :class:`FrameVAE`: ``width`` channels at full resolution, doubled at every halving down to 4×4."""

    channels: int = 1
    size: int = 32  # a power of two, at least 8
    latent_dim: int = 32
    width: int = 32
    beta: float = 1.0  # the KL weight (β-VAE); 1 is the ELBO
    init_scale: float = 0.2  # the decoder's noise level s at the start (it is learned)
    min_log_scale: float = math.log(2 / 255 / math.sqrt(12))  # the decoder's s may not drop below 8-bit noise
    norm_groups: int = 8

    def __post_init__(self):
        if self.size < 8 or self.size & (self.size - 1):
            raise ValueError(f"FrameVAEConfig.size must be a power of two >= 8, got {self.size}")
        if not self.beta >= 0:
            raise ValueError(f"FrameVAEConfig.beta must be >= 0, got {self.beta}")
        if not self.init_scale > 0:
            raise ValueError(f"FrameVAEConfig.init_scale must be > 0, got {self.init_scale}")

    @property
    def levels(self) -> int:
        """How many times the encoder halves the frame (and the decoder doubles it): size -> 4."""
        return int(math.log2(self.size // 4))

    @property
    def bottom_channels(self) -> int:
        return self.width * 2 ** (self.levels - 1)


def check_frames(x: torch.Tensor, name: str = "frames", channels: int | None = None,
                 size: int | None = None) -> torch.Tensor:
    """Assert ``x`` is a float image batch (N, C, H, W) (C = ``channels``, H = W = ``size`` if given). Shapes only:
    a value check would wait for the GPU at every training step."""
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or not x.is_floating_point():
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"expected {name} of shape (N, C, H, W) as floats, got {got}"
                         + (" (clips? take their frames first)" if isinstance(x, torch.Tensor) and x.ndim == 5 else ""))
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"expected {name} with C={channels} channels in (N, C, H, W), got {tuple(x.shape)}")
    if size is not None and tuple(x.shape[-2:]) != (size, size):
        raise ValueError(f"expected {name} of {size}×{size} pixels, got (N, C, H, W) = {tuple(x.shape)}")
    return x


class FrameVAE(nn.Module):
    """Encoder q(z|x), decoder mean μ_θ(z) and the decoder's learned log-scale log s. Inputs: x (N, C, H, W)."""

    def __init__(self, cfg: FrameVAEConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or FrameVAEConfig()
        w, g = cfg.width, cfg.norm_groups
        enc: list[nn.Module] = []
        c = cfg.channels
        for i in range(cfg.levels):  # size -> size/2 -> ... -> 4
            enc += [nn.Conv2d(c, w * 2 ** i, 4, 2, 1), group_norm(w * 2 ** i, g), nn.SiLU()]
            c = w * 2 ** i
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(c * 16, 2 * cfg.latent_dim))
        self.project = nn.Linear(cfg.latent_dim, c * 16)  # z -> (c, 4, 4)
        dec: list[nn.Module] = [group_norm(c, g), nn.SiLU()]
        for i in reversed(range(cfg.levels)):  # 4 -> 8 -> ... -> size
            c_out = w * 2 ** (i - 1) if i > 0 else cfg.channels
            dec.append(nn.ConvTranspose2d(c, c_out, 4, 2, 1))
            if i > 0:
                dec += [group_norm(c_out, g), nn.SiLU()]
            c = c_out
        self.decoder = nn.Sequential(*dec, nn.Tanh())
        self.log_scale = nn.Parameter(torch.tensor(math.log(cfg.init_scale)))  # log s of p(x|z) = N(μ_θ(z), s² I)

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """x (N, C, H, W) -> q(z|x) with mean and log-variance (N, latent_dim)."""
        check_frames(x, "x", self.cfg.channels, self.cfg.size)
        mean, logvar = self.encoder(x).chunk(2, dim=1)  # 2 × (N, latent_dim)
        return DiagonalGaussian(mean, logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (N, latent_dim) -> the decoder's mean μ_θ(z) (N, C, H, W) in [-1, 1]."""
        if z.ndim != 2 or z.shape[1] != self.cfg.latent_dim:
            raise ValueError(f"expected latents of shape (N, {self.cfg.latent_dim}), got {tuple(z.shape)}")
        h = rearrange(self.project(z), "n (c h w) -> n c h w", h=4, w=4)  # (N, C_bottom, 4, 4)
        return self.decoder(h)  # (N, C, H, W)

    def scale(self) -> torch.Tensor:
        """log s, floored at ``cfg.min_log_scale`` (the noise of 8-bit data, so that the density stays bounded)."""
        return self.log_scale.clamp(min=self.cfg.min_log_scale)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, DiagonalGaussian, torch.Tensor]:
        """The decoder mean of one reparameterised draw z = μ + σ ε (N, C, H, W), q(z|x), and z (N, latent_dim)."""
        posterior = self.encode(x)
        z = posterior.sample(generator)  # Kingma & Welling 2014, eq. (10): z = μ + σ ⊙ ε
        return self.decode(z), posterior, z

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n frames μ_θ(z), z ~ N(0, I) (the decoder's mean: the noise of p(x|z) is not drawn). (n, C, H, W)."""
        device = self.log_scale.device
        z = torch.randn(n, self.cfg.latent_dim, generator=generator, device=device)
        return self.decode(z)


def gaussian_nll(x: torch.Tensor, mean: torch.Tensor, log_scale: torch.Tensor) -> torch.Tensor:
    """−log N(x; mean, s² I) per frame (N,) in nats: Σ over pixels of [½((x − μ)² / s² + log 2π) + log s].

    Inputs: x, mean (N, C, H, W); log_scale log s, () or broadcastable to x.
    """
    inv_var = torch.exp(-2 * log_scale)
    per_pixel = 0.5 * (x.float() - mean.float()).pow(2) * inv_var + 0.5 * LOG_2PI + log_scale
    return per_pixel.flatten(1).sum(1)


def vae_terms(model: FrameVAE, x: torch.Tensor, generator: torch.Generator | None = None
              ) -> dict[str, torch.Tensor]:
    """The two terms of the ELBO per frame (N,), in nats: ``nll`` = −log p(x|z) for one draw z ~ q(z|x) and
    ``kl`` = KL(q(z|x) ‖ N(0, I)); and ``recon``, the decoder's mean (N, C, H, W). −ELBO = nll + kl.

    Inputs: x (N, C, H, W) in [-1, 1] with C = ``cfg.channels`` and H = W = ``cfg.size``."""
    recon, posterior, _ = model(x, generator)
    return {"nll": gaussian_nll(x, recon, model.scale()), "kl": posterior.kl(), "recon": recon}


def vae_loss(model: FrameVAE, x: torch.Tensor, beta: float | None = None,
             generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    """β-VAE loss averaged over frames (Higgins et al. 2017, eq. (4)): E[−log p(x|z)] + β · KL, in nats per frame.

    x (N, C, H, W) in [-1, 1] -> dict of () tensors: loss, nll, kl, neg_elbo = nll + kl (the β = 1 loss, whatever β
    trains), scale = s."""
    beta = model.cfg.beta if beta is None else beta
    terms = vae_terms(model, x, generator)
    nll, kl = terms["nll"].mean(), terms["kl"].mean()
    return {"loss": nll + beta * kl, "nll": nll, "kl": kl, "neg_elbo": nll + kl,
            "scale": model.scale().detach().exp()}


@torch.no_grad()
def negative_elbo(model: FrameVAE, x: torch.Tensor, draws: int = 1,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """−ELBO per frame (N,) in nats, the expectation over q(z|x) averaged over ``draws`` draws: an upper bound on
    −log p(x) (divide by C·H·W·ln 2 for bits per dimension). Inputs: x (N, C, H, W) in [-1, 1]."""
    kl = model.encode(x).kl()
    nll = torch.stack([vae_terms(model, x, generator)["nll"] for _ in range(draws)]).mean(0)
    return nll + kl


def frame_vae_tiny(**kw) -> FrameVAEConfig:  # tests and the smoke profile: 16×16, widths 8/16
    return FrameVAEConfig(**{**dict(size=16, width=8, latent_dim=8, norm_groups=4), **kw})


def frame_vae_small(**kw) -> FrameVAEConfig:  # 32×32: widths 32/64/128, 32 latents
    return FrameVAEConfig(**kw)
