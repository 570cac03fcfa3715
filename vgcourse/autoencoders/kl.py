"""A KL-regularised video autoencoder: the "first stage" of latent diffusion.

Rombach et al. 2022 (LDM, §3 and Appendix G) train a convolutional autoencoder whose encoder outputs a
diagonal Gaussian q(z|x) and penalise its KL divergence to N(0, I) with a tiny weight (~1e-6), so that
the latent keeps almost all the detail yet stays in a bounded, roughly Gaussian region the diffusion model
can learn. Blattmann et al. 2023 ("Align your Latents") and Esser et al. 2023 (Gen-1) take such an image
autoencoder to video by mixing frames with temporal convolutions while keeping one latent frame per frame:
we downsample H and W by f = 2^(len(channel_mults) - 1) and keep T, so (B, C, T, H, W) ->
(B, Cz, T, H/f, W/f).

Two ways to mix time, chosen by ``temporal_kernel``:
- ``"3d"``: every conv of a residual block is a full 3×3×3 convolution.
- ``"factorised"``: each residual block has 1×3×3 (per-frame) convs, the second followed by a 3×1×1
  (per-pixel, across frames) conv. The temporal conv starts as the identity, so at initialisation the model is an
  image autoencoder applied frame by frame, as when Blattmann et al. 2023 insert temporal layers into a pretrained
  image model.

Normalisation is a GroupNorm per frame, so an image (T = 1) is handled as a one-frame video and its
statistics never depend on other frames. The LDM objective also has LPIPS and a patch GAN; we keep only
the pixel term (L1 by default), which is enough on the course's synthetic data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vgcourse.nn.blocks import group_norm
from vgcourse.train import Trainer, make_trainer
from vgcourse.video import check_video


@dataclass
class VideoAutoencoderConfig:
    """Sizes of a :class:`VideoAutoencoder`; the spatial downsampling factor is 2^(len(channel_mults) - 1)."""

    in_channels: int = 1
    latent_channels: int = 4
    base_channels: int = 16
    channel_mults: tuple[int, ...] = (1, 2, 4)  # one level each; every level but the last halves H and W
    num_res_blocks: int = 1  # per encoder level (the decoder has one more, as in LDM)
    temporal_kernel: str = "factorised"  # "factorised": (1,3,3)+(3,1,1); "3d": (3,3,3)
    kl_weight: float = 1e-6  # weight of the KL term against the summed pixel loss (LDM's value)
    recon_loss: str = "l1"  # "l1" (LDM) or "mse"
    norm_groups: int = 8

    @property
    def downsample(self) -> int:
        return 2 ** (len(self.channel_mults) - 1)


def kl_f4_tiny(**kw) -> VideoAutoencoderConfig:  # tests: channels 8/16/16
    return VideoAutoencoderConfig(**{**dict(base_channels=8, channel_mults=(1, 2, 2), norm_groups=4), **kw})


def kl_f4_small(**kw) -> VideoAutoencoderConfig:  # cpu profile (the default): channels 16/32/64, 64×64 -> 16×16
    return VideoAutoencoderConfig(**kw)


def kl_f4_base(**kw) -> VideoAutoencoderConfig:  # gpu profile: channels 32/64/128, 64×64 -> 16×16
    return VideoAutoencoderConfig(**{**dict(base_channels=32), **kw})


def kl_f8_base(**kw) -> VideoAutoencoderConfig:  # f = 8: channels 32/64/128/128, 64×64 -> 8×8
    return VideoAutoencoderConfig(**{**dict(base_channels=32, channel_mults=(1, 2, 4, 4)), **kw})


class DiagonalGaussian:
    """The posterior q(z|x) = N(mean, diag(exp(logvar))) of a KL autoencoder.

    Inputs: mean, logvar (B, ...): (B, Cz, T, h, w) for :class:`VideoAutoencoder`, (N, latent_dim) for
    :class:`~vgcourse.autoencoders.vae.FrameVAE`; logvar is clamped to [-30, 20] as in LDM.
    """

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor):
        if mean.shape != logvar.shape:
            raise ValueError(f"mean and logvar must have one shape, got {tuple(mean.shape)} and {tuple(logvar.shape)}")
        self.mean = mean.float()
        self.logvar = logvar.float().clamp(-30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """z = mean + std · ε, ε ~ N(0, I) (reparameterisation, Kingma & Welling 2014, eq. (10)) -> (B, ...)."""
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + self.std * eps  # (B, ...)

    def mode(self) -> torch.Tensor:
        """The most likely latent: the mean -> (B, ...)."""
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL(q || N(0, I)) per sample (B,) in nats: ½ Σ (μ² + σ² − 1 − log σ²) (Kingma & Welling 2014, App. B)."""
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar).flatten(1).sum(1)



class FrameNorm(nn.Module):
    """GroupNorm applied to each frame on its own. Inputs: x (B, C, T, H, W)."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = group_norm(channels, groups)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[2]
        y = self.norm(rearrange(x, "b c t h w -> (b t) c h w"))  # (B·T, C, H, W)
        return rearrange(y, "(b t) c h w -> b c t h w", t=t)  # (B, C, T, H, W)


class SpaceTimeConv(nn.Module):
    """A 3×3×3 conv, full or factorised into 1×3×3 then 3×1×1; keeps (T, H, W). Inputs: x (B, C_in, T, H, W).

    ``temporal_kernel="spatial"`` gives the 1×3×3 conv alone (a per-frame conv).
    """

    def __init__(self, c_in: int, c_out: int, temporal_kernel: str):
        super().__init__()
        if temporal_kernel == "3d":
            self.spatial, self.temporal = nn.Conv3d(c_in, c_out, 3, padding=1), None
        elif temporal_kernel == "spatial":
            self.spatial, self.temporal = nn.Conv3d(c_in, c_out, (1, 3, 3), padding=(0, 1, 1)), None
        elif temporal_kernel == "factorised":
            self.spatial = nn.Conv3d(c_in, c_out, (1, 3, 3), padding=(0, 1, 1))
            self.temporal = nn.Conv3d(c_out, c_out, (3, 1, 1), padding=(1, 0, 0))
            with torch.no_grad():  # start as the identity over time: a per-frame image model
                self.temporal.weight.zero_()
                self.temporal.weight[:, :, 1, 0, 0].copy_(torch.eye(c_out))
                self.temporal.bias.zero_()
        else:
            raise ValueError(f"temporal_kernel must be 'factorised', '3d' or 'spatial', got {temporal_kernel!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.spatial(x)  # (B, C_out, T, H, W)
        return x if self.temporal is None else self.temporal(x)  # (B, C_out, T, H, W)


class ResBlock3d(nn.Module):
    """norm → SiLU → conv → norm → SiLU → conv, plus a skip. Inputs: x (B, C_in, T, H, W).

    Factorised: the first conv is per-frame and the second adds the temporal 3×1×1 conv, one temporal layer per
    block (as Blattmann et al. 2023 interleave temporal layers with spatial ones); "3d": both convs are 3×3×3.
    """

    def __init__(self, c_in: int, c_out: int, cfg: VideoAutoencoderConfig):
        super().__init__()
        first = "3d" if cfg.temporal_kernel == "3d" else "spatial"
        self.norm1, self.conv1 = FrameNorm(c_in, cfg.norm_groups), SpaceTimeConv(c_in, c_out, first)
        self.norm2, self.conv2 = FrameNorm(c_out, cfg.norm_groups), SpaceTimeConv(c_out, c_out, cfg.temporal_kernel)
        self.skip = nn.Conv3d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (B, C_out, T, H, W)
        return self.skip(x) + self.conv2(F.silu(self.norm2(h)))  # (B, C_out, T, H, W)


class Encoder(nn.Module):
    """x (B, C, T, H, W) -> Gaussian parameters (B, 2·Cz, T, H/f, W/f); downsampling is spatial only."""

    def __init__(self, cfg: VideoAutoencoderConfig):
        super().__init__()
        chans = [cfg.base_channels * m for m in cfg.channel_mults]
        self.conv_in = nn.Conv3d(cfg.in_channels, chans[0], (1, 3, 3), padding=(0, 1, 1))
        blocks: list[nn.Module] = []
        c = chans[0]
        for i, c_out in enumerate(chans):
            for _ in range(cfg.num_res_blocks):
                blocks.append(ResBlock3d(c, c_out, cfg))
                c = c_out
            if i < len(chans) - 1:  # halve H and W, keep T
                blocks.append(nn.Conv3d(c, c, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))
        blocks += [ResBlock3d(c, c, cfg), ResBlock3d(c, c, cfg)]  # the middle of LDM's encoder
        self.blocks = nn.Sequential(*blocks)
        self.norm_out = FrameNorm(c, cfg.norm_groups)
        self.conv_out = nn.Conv3d(c, 2 * cfg.latent_channels, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.conv_in(x))  # (B, C_last, T, H/f, W/f)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, 2·Cz, T, H/f, W/f)


class Decoder(nn.Module):
    """z (B, Cz, T, h, w) -> x (B, C, T, h·f, w·f); nearest-neighbour upsampling of H and W, then a conv."""

    def __init__(self, cfg: VideoAutoencoderConfig):
        super().__init__()
        chans = [cfg.base_channels * m for m in cfg.channel_mults][::-1]
        c = chans[0]
        self.conv_in = nn.Conv3d(cfg.latent_channels, c, (1, 3, 3), padding=(0, 1, 1))
        blocks: list[nn.Module] = [ResBlock3d(c, c, cfg), ResBlock3d(c, c, cfg)]
        for i, c_out in enumerate(chans):
            for _ in range(cfg.num_res_blocks + 1):
                blocks.append(ResBlock3d(c, c_out, cfg))
                c = c_out
            if i < len(chans) - 1:
                blocks += [nn.Upsample(scale_factor=(1, 2, 2), mode="nearest"),
                           nn.Conv3d(c, c, (1, 3, 3), padding=(0, 1, 1))]
        self.blocks = nn.Sequential(*blocks)
        self.norm_out = FrameNorm(c, cfg.norm_groups)
        self.conv_out = nn.Conv3d(c, cfg.in_channels, (1, 3, 3), padding=(0, 1, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.conv_in(z))  # (B, C_first, T, H, W)
        return self.conv_out(F.silu(self.norm_out(h)))  # (B, C, T, H, W)


class VideoAutoencoder(nn.Module):
    """A KL-regularised video autoencoder (LDM first stage) that keeps T and shrinks H, W by ``cfg.downsample``.

    Inputs: videos x (B, C, T, H, W) in [-1, 1] with H and W divisible by ``cfg.downsample``; T ≥ 1.
    """

    def __init__(self, cfg: VideoAutoencoderConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or VideoAutoencoderConfig()
        if cfg.temporal_kernel not in ("factorised", "3d"):
            raise ValueError(f"temporal_kernel must be 'factorised' or '3d', got {cfg.temporal_kernel!r}")
        if cfg.recon_loss not in ("l1", "mse"):
            raise ValueError(f"recon_loss must be 'l1' or 'mse', got {cfg.recon_loss!r}")
        if cfg.downsample < 4:
            raise ValueError(f"expected at least 4× spatial downsampling (len(channel_mults) >= 3), "
                             f"got channel_mults={cfg.channel_mults} (f={cfg.downsample})")
        self.encoder, self.decoder = Encoder(cfg), Decoder(cfg)
        # LDM: latents are multiplied by scale_factor before diffusion so that they have unit std
        self.register_buffer("scale_factor", torch.tensor(1.0))

    def _check_input(self, x: torch.Tensor) -> None:
        check_video(x, "x", channels=self.cfg.in_channels)
        f = self.cfg.downsample
        if x.shape[-2] % f or x.shape[-1] % f:
            raise ValueError(f"expected H and W divisible by the downsampling factor {f}, got (B, C, T, H, W) = "
                             f"{tuple(x.shape)}")

    def _check_latent(self, z: torch.Tensor) -> None:
        if not isinstance(z, torch.Tensor) or z.ndim != 5 or z.shape[1] != self.cfg.latent_channels:
            shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
            raise ValueError(f"expected latents of shape (B, Cz={self.cfg.latent_channels}, T, h, w), got {shape}")

    def encode(self, x: torch.Tensor) -> DiagonalGaussian:
        """x (B, C, T, H, W) -> q(z|x) over latents (B, Cz, T, H/f, W/f)."""
        self._check_input(x)
        mean, logvar = self.encoder(x).chunk(2, dim=1)  # 2 × (B, Cz, T, H/f, W/f)
        return DiagonalGaussian(mean, logvar)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, Cz, T, h, w) -> x̂ (B, C, T, h·f, w·f), roughly in [-1, 1] (not clamped)."""
        self._check_latent(z)
        return self.decoder(z)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, DiagonalGaussian]:
        """x (B, C, T, H, W) in [-1, 1] -> (x̂ (B, C, T, H, W) decoded from one draw z ~ q(z|x), q(z|x) over
        latents (B, Cz, T, H/f, W/f))."""
        posterior = self.encode(x)
        return self.decode(posterior.sample(generator)), posterior  # (B, C, T, H, W), q(z|x)

    def loss(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """LDM's objective without LPIPS/GAN, divided by D = C·T·H·W so it reads per pixel.

        x (B, C, T, H, W) in [-1, 1] -> dict of () tensors: loss, recon (mean L1 or MSE per pixel), kl (mean
        per-sample KL in nats); the total is recon + kl_weight · kl / D, i.e. (Σ_pixels |x − x̂| + kl_weight · KL) / D
        averaged over the batch.
        """
        recon, posterior = self(x, generator)
        diff = recon.float() - x.float()
        rec = diff.abs().mean() if self.cfg.recon_loss == "l1" else diff.pow(2).mean()
        kl = posterior.kl().mean()
        dims = x[0].numel()
        return {"loss": rec + self.cfg.kl_weight * kl / dims, "recon": rec, "kl": kl}

    @torch.no_grad()
    def fit_scale_factor(self, batch: torch.Tensor, generator: torch.Generator | None = None) -> float:
        """Set ``scale_factor`` = 1 / std of sampled latents of ``batch`` (LDM, §4.3.2 and App. G); return it.

        Inputs: batch (B, C, T, H, W) in [-1, 1]; the std is taken over all entries of z (B, Cz, T, H/f, W/f).
        """
        z = self.encode(batch).sample(generator)  # (B, Cz, T, h, w)
        self.scale_factor.fill_(1.0 / z.float().std().item())
        return float(self.scale_factor)

    def encode_scaled(self, x: torch.Tensor, generator: torch.Generator | None = None,
                      sample: bool = True) -> torch.Tensor:
        """The latent a diffusion model sees: scale_factor · z, z ~ q(z|x) (or its mean if ``sample=False``).

        x (B, C, T, H, W) in [-1, 1] -> (B, Cz, T, H/f, W/f).
        """
        posterior = self.encode(x)
        z = posterior.sample(generator) if sample else posterior.mode()
        return z * self.scale_factor  # (B, Cz, T, h, w)

    def decode_scaled(self, z: torch.Tensor) -> torch.Tensor:
        """Undo the scaling and decode: x̂ = D(z / scale_factor); z (B, Cz, T, h, w) -> (B, C, T, h·f, w·f)."""
        return self.decode(z / self.scale_factor)  # (B, C, T, H, W)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, T, H, W) -> x̂ = D(mean of q(z|x)) (B, C, T, H, W) clamped to [-1, 1]: what a reconstruction metric
        scores (no sampling noise; the scale factor cancels)."""
        return self.decode_scaled(self.encode_scaled(x, sample=False)).clamp(-1, 1)


def train_autoencoder(ae: VideoAutoencoder, data: Any, steps: int, batch: int, lr: float, minutes: float | None = None,
                      weight_decay: float = 0.01, scale_clips: int = 16, desc: str = "KL autoencoder",
                      seed: int = 2) -> Trainer:
    """Train the first stage on ``data`` and fit its latent scale factor; return the trainer (``.summary``,
    ``.history``) with ``ae`` trained and in eval mode.

    AdamW at a constant ``lr`` (weight decay on conv and linear weights only, :func:`vgcourse.train.configure_adamw`),
    ``batch`` clips of ``data.stream(batch, seed)`` per step for ``steps`` steps (or ``minutes``, steps then a cap),
    on :meth:`VideoAutoencoder.loss`; then ``scale_factor`` = 1 / std of the latents of ``scale_clips`` clips
    (``data.batch(scale_clips, seed=seed + 1)``), LDM's unit-variance scaling (§4.3.2). ``data`` is a course dataset
    (``stream``, ``batch``), on the device of ``ae``.
    """
    device = next(ae.parameters()).device
    trainer = make_trainer(ae, data.stream(batch, seed=seed, device=device), steps, lambda m, b: m.loss(b.video),
                           lr=lr, weight_decay=weight_decay, minutes=minutes, desc=desc)
    trainer.fit()
    ae.eval()
    ae.fit_scale_factor(data.batch(scale_clips, seed=seed + 1, device=device).video)
    return trainer
