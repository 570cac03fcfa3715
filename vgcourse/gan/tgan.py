"""TGAN (Saito, Matsumoto & Saito 2017): a temporal generator, an image generator and a 3D-convolutional critic.

The video generator is two networks (the paper's Figure 1):

- the **temporal generator** G₀ maps one latent z₀ ∈ R^K₀ to one latent per frame, [z₁¹, …, z₁ᵀ] ∈ R^(K₁×T), with 1D
  transposed convolutions along time: a length-1 "sequence" z₀ → 1 → 2 → 4 → 8 → 16 steps (BN + ReLU between,
  tanh at the end);
- the **image generator** G₁ draws frame t from (z₀, z₁ᵗ): each is projected by a linear layer to half of a 4×4
  stack of feature maps, the halves are concatenated and upsampled by DCGAN's transposed convolutions, with a last
  3×3 layer to the image (tanh). z₀ is shared by all frames (what stays), z₁ᵗ is the frame's own (what moves).

The **discriminator** (a WGAN critic) is 3D convolutions, stride 2 in time and space, on the whole clip:
3×16×64×64 → 64×8×32×32 → 128×4×16×16 → 256×2×8×8 → 512×1×4×4 → one score (Figure 1). It is trained as a
Wasserstein critic kept 1-Lipschitz by *singular value clipping* (§4.2: every few iterations, each weight's
singular values above 1 are set to 1; :func:`~vgcourse.gan.clip_singular_values`), or, as the chapter compares,
with a modern stabiliser: the hinge loss and spectral normalisation (``disc_norm="spectral"``), or the
non-saturating (logistic) loss with a lazy R1 penalty on real clips and no normalisation in the critic
(``disc_norm="none"``). :func:`tgan_step` is one training step of any of them.

Sizes: :func:`tgan_paper` is the paper's 64×64×16 network (K₀ = K₁ = 100, the sizes of the authors' Moving MNIST
configuration); :func:`tgan_small` the course's 32×32×16×1 one, whose image generator is one doubling shorter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange, repeat
from torch import nn

from vgcourse.gan.dcgan import NORMS, gan_step, init_dcgan_weights, sample_z
from vgcourse.gan.regularizers import apply_spectral_norm, r1_due


@dataclass
class TGANConfig:
    """Sizes of a TGAN. ``temporal_channels``: G₀'s widths at sequence lengths 1, 2, 4, … (one per doubling, so
    ``frames`` = 2^len); ``gen_channels``: G₁'s feature maps at 4×4 (half from z₀, half from z₁ᵗ), halved at every
    doubling; ``disc_channels``: the critic's first width, doubled at every layer; ``disc_norm``: "batch" (the paper),
    "spectral" (no batch norm, spectral normalisation on every layer) or "none" (for a gradient penalty instead)."""

    channels: int = 1
    size: int = 32  # a power of two, at least 8
    frames: int = 16  # 2 ** len(temporal_channels)
    z_dim: int = 100  # K₀
    z_frame_dim: int = 100  # K₁
    temporal_channels: tuple[int, ...] = (512, 256, 128, 128)
    gen_channels: int = 512
    disc_channels: int = 64
    disc_norm: str = "batch"

    def __post_init__(self):
        self.temporal_channels = tuple(self.temporal_channels)
        if self.size < 8 or self.size & (self.size - 1):
            raise ValueError(f"TGANConfig.size must be a power of two >= 8, got {self.size}")
        if self.frames != 2 ** len(self.temporal_channels):
            raise ValueError(f"TGANConfig.frames must be 2 ** len(temporal_channels) = "
                             f"{2 ** len(self.temporal_channels)} (one temporal doubling per width), got {self.frames}")
        if self.frames % 2 ** self.levels:
            raise ValueError(f"the critic halves time {self.levels} times: frames must be a multiple of "
                             f"{2 ** self.levels}, got {self.frames}")
        if self.disc_norm not in NORMS:
            raise ValueError(f"TGANConfig.disc_norm must be one of {NORMS}, got {self.disc_norm!r}")
        if self.gen_channels % 2 ** (self.levels + 1):
            raise ValueError(f"gen_channels={self.gen_channels} must halve {self.levels + 1} times evenly")

    @property
    def levels(self) -> int:
        """Spatial doublings from 4×4 to ``size`` (G₁) and stride-2 layers of the critic."""
        return int(math.log2(self.size // 4))


def tgan_paper(**kw) -> TGANConfig:
    """The paper's sizes: 64×64×16×3, K₀ = K₁ = 100, G₁ from 512 maps at 4×4, a critic of widths 64 … 512."""
    return TGANConfig(**{**dict(channels=3, size=64, frames=16), **kw})


def tgan_small(**kw) -> TGANConfig:
    """The course's clips, 32×32×16×1: G₁ 256 → 128 → 64 → 32 → 1 and a critic 1 → 64 → 128 → 256 → score."""
    return TGANConfig(**{**dict(gen_channels=256), **kw})


def tgan_tiny(**kw) -> TGANConfig:
    """Tests and the smoke profile: 16×16×8×1 with narrow layers."""
    return TGANConfig(**{**dict(size=16, frames=8, z_dim=16, z_frame_dim=16, temporal_channels=(32, 32, 16),
                                gen_channels=32, disc_channels=8), **kw})


class TemporalGenerator(nn.Module):
    """G₀: z₀ (B, K₀) -> frame latents z₁ (B, K₁, T) in (−1, 1), by 1D transposed convolutions along time."""

    def __init__(self, cfg: TGANConfig):
        super().__init__()
        widths = cfg.temporal_channels
        layers: list[nn.Module] = [nn.ConvTranspose1d(cfg.z_dim, widths[0], 1, 1, 0), nn.BatchNorm1d(widths[0]),
                                   nn.ReLU()]  # length 1 -> 1: a linear layer written as a 1D transposed conv
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose1d(c_in, c_out, 4, 2, 1), nn.BatchNorm1d(c_out), nn.ReLU()]  # length × 2
        layers += [nn.ConvTranspose1d(widths[-1], cfg.z_frame_dim, 4, 2, 1), nn.Tanh()]  # to T steps of K₁
        self.net = nn.Sequential(*layers)

    def forward(self, z0: torch.Tensor) -> torch.Tensor:
        return self.net(z0[:, :, None])  # (B, K₀, 1) -> (B, K₁, T)


class ImageGenerator(nn.Module):
    """G₁: (z₀, z₁ᵗ) of N frames, (N, K₀) and (N, K₁) -> frames (N, C, size, size) in [-1, 1]."""

    def __init__(self, cfg: TGANConfig):
        super().__init__()
        half = cfg.gen_channels // 2
        self.project_content = nn.Sequential(nn.Linear(cfg.z_dim, half * 16, bias=False), nn.BatchNorm1d(half * 16),
                                             nn.ReLU())  # z₀ -> (half, 4, 4)
        self.project_frame = nn.Sequential(nn.Linear(cfg.z_frame_dim, half * 16, bias=False),
                                           nn.BatchNorm1d(half * 16), nn.ReLU())  # z₁ᵗ -> (half, 4, 4)
        layers: list[nn.Module] = []
        c = cfg.gen_channels
        for _ in range(cfg.levels):  # 4 -> 8 -> ... -> size
            layers += [nn.ConvTranspose2d(c, c // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(c // 2), nn.ReLU()]
            c //= 2
        layers += [nn.ConvTranspose2d(c, cfg.channels, 3, 1, 1), nn.Tanh()]  # 3×3, stride 1: to the image
        self.net = nn.Sequential(*layers)

    def forward(self, z0: torch.Tensor, z1: torch.Tensor) -> torch.Tensor:
        h0 = rearrange(self.project_content(z0), "n (c h w) -> n c h w", h=4, w=4)  # (N, C/2, 4, 4)
        h1 = rearrange(self.project_frame(z1), "n (c h w) -> n c h w", h=4, w=4)  # (N, C/2, 4, 4)
        return self.net(torch.cat([h0, h1], dim=1))  # (N, C_img, size, size)


class TGANGenerator(nn.Module):
    """z₀ (B, K₀) -> clips (B, C, T, size, size) in [-1, 1]: G₀ gives each frame its latent, G₁ draws the frames."""

    def __init__(self, cfg: TGANConfig):
        super().__init__()
        self.cfg = cfg
        self.temporal = TemporalGenerator(cfg)
        self.image = ImageGenerator(cfg)
        init_dcgan_weights(self)

    def forward(self, z0: torch.Tensor) -> torch.Tensor:
        if z0.ndim != 2 or z0.shape[1] != self.cfg.z_dim:
            raise ValueError(f"expected z0 of shape (B, {self.cfg.z_dim}), got {tuple(z0.shape)}")
        b, t = z0.shape[0], self.cfg.frames
        z1 = self.temporal(z0)  # (B, K₁, T): one latent per frame
        frames = self.image(repeat(z0, "b k -> (b t) k", t=t), rearrange(z1, "b k t -> (b t) k"))  # (B·T, C, H, W)
        return rearrange(frames, "(b t) c h w -> b c t h w", b=b)  # (B, C, T, H, W)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n clips from z₀ ~ U(−1, 1), in the module's current mode (eval mode after
        :func:`~vgcourse.gan.dcgan.standing_statistics`): -> (n, C, frames, size, size) in [-1, 1]."""
        return self(sample_z(n, self.cfg.z_dim, next(self.parameters()).device, generator))


class VideoDiscriminator(nn.Module):
    """The critic: clips (B, C, T, size, size) -> scores (B,), 3D convolutions with stride 2 in time and space,
    LeakyReLU(0.2), batch norm after every layer but the first (``disc_norm="batch"``), then one convolution over
    the remaining (T / 2^levels) × 4 × 4 positions to a single score."""

    def __init__(self, cfg: TGANConfig):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c = cfg.channels
        for i in range(cfg.levels):  # (T, size, size) -> (T/2, size/2, size/2) -> ... -> (T/2^L, 4, 4)
            c_out = cfg.disc_channels * 2 ** i
            batch_norm = i > 0 and cfg.disc_norm == "batch"
            layers.append(nn.Conv3d(c, c_out, 4, 2, 1, bias=not batch_norm))
            layers += [nn.BatchNorm3d(c_out)] if batch_norm else []
            layers.append(nn.LeakyReLU(0.2))
            c = c_out
        layers.append(nn.Conv3d(c, 1, (cfg.frames // 2 ** cfg.levels, 4, 4)))  # all that is left -> one score
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)
        if cfg.disc_norm == "spectral":
            apply_spectral_norm(self)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        want = (self.cfg.channels, self.cfg.frames, self.cfg.size, self.cfg.size)
        if video.ndim != 5 or tuple(video.shape[1:]) != want:
            raise ValueError(f"expected clips of shape (B, {', '.join(map(str, want))}), got {tuple(video.shape)}")
        return self.net(video).flatten()  # (B,)


def tgan(cfg: TGANConfig) -> nn.ModuleDict:
    """The pair the training loop trains: ``{"G": TGANGenerator, "D": VideoDiscriminator}``."""
    return nn.ModuleDict({"G": TGANGenerator(cfg), "D": VideoDiscriminator(cfg)})


def tgan_step(trainer, real: torch.Tensor, z: torch.Tensor, loss: str = "wasserstein", clip_every: int = 0,
              r1_gamma: float = 0.0, r1_every: int = 1) -> dict[str, torch.Tensor]:
    """One TGAN update: :func:`~vgcourse.gan.gan_step` (the critic, SVC every ``clip_every``-th step, the generator)
    with R1 made *lazy*: the penalty γ/2 · E‖∇ₓD(x)‖² on the real clips is added every ``r1_every`` steps only,
    scaled by ``r1_every`` so that its average weight stays γ (Karras et al. 2020 (StyleGAN2), §3.1). It is never added
    on the one step whose FLOPs the loop counts, so that MFU is that of the plain step most steps are.

    Inputs: real clips (B, C, frames, size, size) in [-1, 1], z (N, z_dim). Returns a dict of () tensors: loss_d,
    loss_g and ``r1`` (0 on steps without it: every log has the same keys)."""
    due = r1_due(trainer, r1_gamma, r1_every)
    logs = gan_step(trainer, real, z, loss=loss, r1_gamma=r1_every * r1_gamma if due else 0.0, clip_every=clip_every)
    return {"r1": torch.zeros((), device=real.device)} | logs
