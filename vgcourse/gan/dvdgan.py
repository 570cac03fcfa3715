"""DVD-GAN: a BigGAN for video with a ConvGRU per scale and a dual discriminator (Clark, Donahue & Simonyan 2019).

**Generator** (§3.2): the latent z ~ N(0, I) is mapped linearly to a 4×4 feature map, which is the input, at every
frame, to a convolutional GRU unrolled once per frame. Each frame's output then goes through two residual blocks on
its own (time folded into the batch), the second doubling the resolution; this ConvGRU + two residual blocks group
repeats until the frames reach full size. Every normalisation layer is conditioned on z (BigGAN's conditional batch
norm: a gain and a bias predicted from z). All variation of a clip comes from its one z; the ConvGRUs make it move.

**Dual discriminator** (§3.1): D_S judges k frames sampled at random from each clip, at full resolution, each on its
own, and sums their scores (k = 8 in the paper); D_T judges the whole clip after a spatial downsampling φ (2×2
average pooling), with 3D convolutions in its first two residual blocks. Neither sees a full-resolution clip: D_S
has no time, D_T no fine detail, which is what makes it cheap. Loss: the hinge loss (Lim & Ye 2017) summed over
both, with spectral normalisation in both networks in the paper.

:class:`TemporalDiscriminator` with ``downsample=1`` is the expensive alternative the dual pair replaces: one 3D
discriminator on full-resolution clips (MoCoGAN's D_V sees full resolution, §3.1 of the paper).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vgcourse.gan.convgru import ConvGRU, batch_to_frames, frames_to_batch
from vgcourse.gan.losses import adversarial_losses
from vgcourse.gan.regularizers import r1_due, r1_penalty


@dataclass(frozen=True)
class DVDGANConfig:
    """Sizes of a DVD-GAN: the generator's channels per resolution 4, 8, ..., image_size, the discriminators'."""

    image_size: int = 32
    frames: int = 16
    channels: int = 1
    latent_dim: int = 120  # z: 120 dimensions in the paper (as BigGAN)
    gen_channels: tuple[int, ...] = (256, 128, 64, 32)  # at 4×4, 8×8, ..., image_size
    gen_norm: str = "batch"  # conditional 'batch' norm (paper) or conditional 'group' norm (batch-independent)
    disc_width: int = 32  # D_S and D_T channels: width, 2·width, 4·width
    k_frames: int = 8  # frames D_S judges per clip
    temporal_downsample: int = 2  # φ: D_T sees clips average-pooled by this factor in space

    def __post_init__(self):
        if len(self.gen_channels) < 2 or 4 * 2 ** (len(self.gen_channels) - 1) != self.image_size:
            raise ValueError(f"gen_channels needs one entry per resolution 4, 8, ..., image_size={self.image_size}, "
                             f"got {len(self.gen_channels)}: {self.gen_channels}")
        if self.gen_norm not in ("batch", "group"):
            raise ValueError(f"gen_norm must be 'batch' or 'group', got {self.gen_norm!r}")
        if not 1 <= self.k_frames <= self.frames:
            raise ValueError(f"k_frames must be in [1, frames={self.frames}], got {self.k_frames}")
        if self.frames % 4:
            raise ValueError(f"D_T halves time twice: frames must be a multiple of 4, got {self.frames}")
        if self.image_size // self.temporal_downsample < 8:
            raise ValueError(f"D_T halves space twice and needs clips of at least 8×8 after φ, got "
                             f"{self.image_size}/{self.temporal_downsample}")


def dvdgan_paper(image_size: int = 64, frames: int = 48) -> DVDGANConfig:
    """The paper's structure at 64×64 × 48 frames (Kinetics-600): a 120-d z, D_S on k = 8 frames, D_T on clips
    downsampled 2×, a ConvGRU + two residual blocks per resolution. Channels are BigGAN's pattern at ch = 128 (the
    paper gives no per-layer table, so its parameter counts are not reproduced here)."""
    levels = {32: (1024, 512, 256, 128), 64: (1024, 1024, 512, 256, 128), 128: (1024, 1024, 512, 256, 128, 128)}
    return DVDGANConfig(image_size=image_size, frames=frames, channels=3, latent_dim=120,
                        gen_channels=levels[image_size], gen_norm="batch", disc_width=128, k_frames=8,
                        temporal_downsample=2)


# ---- the generator -----------------------------------------------------------------------------------------
class ConditionalNorm(nn.Module):
    """Normalisation without its own affine, then a gain 1 + γ(z) and a bias β(z) predicted linearly from z (BigGAN's
    conditional batch norm; DVD-GAN feeds it z). x (N, C, H, W), z (N, d)."""

    def __init__(self, channels: int, latent_dim: int, kind: str = "batch"):
        super().__init__()
        self.norm = (nn.BatchNorm2d(channels, affine=False) if kind == "batch"
                     else nn.GroupNorm(min(32, channels // 4) or 1, channels, affine=False))
        self.gain = nn.Linear(latent_dim, channels)
        self.bias = nn.Linear(latent_dim, channels)
        nn.init.zeros_(self.gain.weight), nn.init.zeros_(self.gain.bias)  # start as a plain normalisation
        nn.init.zeros_(self.bias.weight), nn.init.zeros_(self.bias.bias)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * (1 + self.gain(z)[:, :, None, None]) + self.bias(z)[:, :, None, None]


class GBlock(nn.Module):
    """BigGAN's generator residual block (Brock et al. 2019, Fig. 15): norm, ReLU, (upsample), conv 3×3, norm,
    ReLU, conv 3×3, plus a skip path ((upsample), conv 1×1). x (N, C_in, H, W), z (N, d) -> (N, C_out, H', W')."""

    def __init__(self, in_channels: int, out_channels: int, latent_dim: int, upsample: bool, norm: str):
        super().__init__()
        self.upsample = upsample
        self.norm1 = ConditionalNorm(in_channels, latent_dim, norm)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = ConditionalNorm(out_channels, latent_dim, norm)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels or upsample else None

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        up = (lambda a: F.interpolate(a, scale_factor=2, mode="nearest")) if self.upsample else (lambda a: a)
        h = self.conv1(up(F.relu(self.norm1(x, z))))
        h = self.conv2(F.relu(self.norm2(h, z)))
        return h + (self.skip(up(x)) if self.skip is not None else x)


class DVDGANGenerator(nn.Module):
    """z (B, d) -> a clip (B, C, T, H, W) in [-1, 1]: linear to 4×4, then at each resolution a ConvGRU over the frames
    and two residual blocks per frame (the second doubles the resolution), then norm, ReLU, conv 3×3, tanh."""

    def __init__(self, config: DVDGANConfig):
        super().__init__()
        c = config
        self.config = c
        ch = c.gen_channels
        self.project = nn.Linear(c.latent_dim, ch[0] * 16)  # z -> 4×4×ch_0
        # update gates start mostly shut (σ(−2) ≈ 0.12): the same input at every frame moves the state over the whole
        # clip instead of settling on its fixed point within a few frames (our choice; the paper gives no init)
        self.grus = nn.ModuleList([ConvGRU(ch[i], ch[i], update_bias=-2.0) for i in range(len(ch) - 1)])
        self.blocks = nn.ModuleList([nn.ModuleList([GBlock(ch[i], ch[i], c.latent_dim, False, c.gen_norm),
                                                    GBlock(ch[i], ch[i + 1], c.latent_dim, True, c.gen_norm)])
                                     for i in range(len(ch) - 1)])
        self.out_norm = (nn.BatchNorm2d(ch[-1]) if c.gen_norm == "batch"
                         else nn.GroupNorm(min(32, ch[-1] // 4) or 1, ch[-1]))
        self.out = nn.Conv2d(ch[-1], c.channels, 3, padding=1)

    def sample_latents(self, n: int, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None) -> torch.Tensor:
        device = device if device is not None else next(self.parameters()).device
        return torch.randn(n, self.config.latent_dim, generator=generator, device=device)

    def forward(self, z: torch.Tensor, frames: int | None = None) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.config.latent_dim:
            raise ValueError(f"expected z of shape (B, {self.config.latent_dim}), got {tuple(z.shape)}")
        b, t = z.shape[0], frames or self.config.frames
        x = self.project(z).view(b, -1, 4, 4)  # (B, ch_0, 4, 4)
        x = x[:, :, None].expand(-1, -1, t, -1, -1)  # the same map is the ConvGRU's input at every frame
        z_frames = z.repeat_interleave(t, dim=0)  # (B·T, d): each frame's norms conditioned on its clip's z
        for gru, (block1, block2) in zip(self.grus, self.blocks):
            x = gru(x)  # (B, ch_i, T, r, r): unrolled once per frame
            h = frames_to_batch(x)  # (B·T, ch_i, r, r): the blocks see each frame on its own
            h = block2(block1(h, z_frames), z_frames)  # (B·T, ch_{i+1}, 2r, 2r)
            x = batch_to_frames(h, b)
        frames_out = torch.tanh(self.out(F.relu(self.out_norm(frames_to_batch(x)))))  # (B·T, C, H, W)
        return batch_to_frames(frames_out, b)

    def sample(self, n: int, frames: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        return self(self.sample_latents(n, generator), frames)


# ---- the discriminators ------------------------------------------------------------------------------------
class DBlock(nn.Module):
    """BigGAN's discriminator residual block, 2D or 3D (DVD-GAN's D_T: 3×3×3 convolutions): (ReLU), conv 3, ReLU,
    conv 3, (average-pool 2), plus a skip path (conv 1, average-pool 2). The first block of a network skips the
    leading ReLU (its input is the image)."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool, dims: int = 2, first: bool = False):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        self.pool = (nn.AvgPool2d(2) if dims == 2 else nn.AvgPool3d(2)) if downsample else nn.Identity()
        self.first = first
        self.conv1 = conv(in_channels, out_channels, 3, padding=1)
        self.conv2 = conv(out_channels, out_channels, 3, padding=1)
        self.skip = conv(in_channels, out_channels, 1) if in_channels != out_channels or downsample else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv1(x if self.first else F.relu(x))
        h = self.pool(self.conv2(F.relu(h)))
        return h + (self.pool(self.skip(x)) if self.skip is not None else x)


class SpatialDiscriminator(nn.Module):
    """D_S: k frames of each clip (B, C, k, H, W), each judged on its own by a 2D BigGAN discriminator, the clip's
    score the sum of its frames' scores (B,). Blocks: width, 2·width, 4·width down to H/8, one more at 4·width."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.channels = channels
        self.blocks = nn.Sequential(DBlock(channels, width, True, first=True),  # H => H/2
                                    DBlock(width, 2 * width, True),  # => H/4
                                    DBlock(2 * width, 4 * width, True),  # => H/8
                                    DBlock(4 * width, 4 * width, False))
        self.head = nn.Linear(4 * width, 1)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.ndim != 5 or frames.shape[1] != self.channels or frames.shape[3] % 8 or frames.shape[4] % 8:
            raise ValueError(f"expected k frames of each clip, (B, {self.channels}, k, H, W) with H and W multiples of "
                             f"8 (three halvings; sample_clip_frames picks them), got {tuple(frames.shape)}")
        b = frames.shape[0]
        h = F.relu(self.blocks(frames_to_batch(frames)))  # (B·k, 4w, H/8, W/8)
        scores = self.head(h.sum((2, 3)))  # (B·k, 1): sum pooling, as BigGAN
        return rearrange(scores, "(b k) 1 -> b k", b=b).sum(1)


class TemporalDiscriminator(nn.Module):
    """D_T: a clip (B, C, T, H, W) average-pooled by ``downsample`` in space (φ), two 3D residual blocks (each halving
    space and time), one 2D block per remaining frame, sum pooling and a linear score (B,).

    With ``downsample=1`` it judges full-resolution clips: the single 3D discriminator the dual pair replaces."""

    def __init__(self, channels: int, width: int, downsample: int = 2):
        super().__init__()
        self.channels = channels
        self.downsample = downsample
        self.blocks3d = nn.Sequential(DBlock(channels, width, True, dims=3, first=True),  # T, H => T/2, H/2
                                      DBlock(width, 2 * width, True, dims=3))  # => T/4, H/4
        self.block2d = DBlock(2 * width, 4 * width, False)
        self.head = nn.Linear(4 * width, 1)

    def phi(self, video: torch.Tensor) -> torch.Tensor:
        """φ: 2D average pooling of every frame by ``downsample`` (identity at 1)."""
        if self.downsample == 1:
            return video
        return F.avg_pool3d(video, (1, self.downsample, self.downsample))

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        r = 4 * self.downsample  # φ, then two halvings
        if video.ndim != 5 or video.shape[1] != self.channels or video.shape[2] < 4 or min(video.shape[3:]) < r:
            raise ValueError(f"expected clips of shape (B, {self.channels}, T, H, W) with T >= 4 and H, W >= {r} (φ "
                             f"pools by {self.downsample}, then time and space halve twice), got {tuple(video.shape)}")
        b = video.shape[0]
        h = self.blocks3d(self.phi(video))  # (B, 2w, T/4, H'/4, W'/4)
        h = F.relu(self.block2d(frames_to_batch(h)))  # (B·T/4, 4w, ...)
        return self.head(batch_to_frames(h, b).sum((2, 3, 4)))[:, 0]  # sum over time and space


def build_dvdgan(config: DVDGANConfig, dual: bool = True) -> nn.ModuleDict:
    """{"G", "D_S", "D_T"}; with ``dual=False``, {"G", "D_T"} where D_T sees full-resolution clips (no φ, no D_S)."""
    c = config
    g = DVDGANGenerator(c)
    if not dual:
        return nn.ModuleDict({"G": g, "D_T": TemporalDiscriminator(c.channels, c.disc_width, downsample=1)})
    return nn.ModuleDict({"G": g, "D_S": SpatialDiscriminator(c.channels, c.disc_width),
                          "D_T": TemporalDiscriminator(c.channels, c.disc_width, c.temporal_downsample)})


# ---- the training step -------------------------------------------------------------------------------------
def sample_clip_frames(video: torch.Tensor, k: int) -> torch.Tensor:
    """k distinct frames of each clip, drawn at random on the video's device: (B, C, T, H, W) -> (B, C, k, H, W)."""
    b, _, t = video.shape[:3]
    idx = torch.rand(b, t, device=video.device).argsort(dim=1)[:, :k]  # (B, k): a random subset per clip
    picked = video[torch.arange(b, device=video.device)[:, None], :, idx]  # (B, k, C, H, W)
    return rearrange(picked, "b k c h w -> b c k h w")


@dataclass(frozen=True)
class DVDGANRecipe:
    """One training step's loss and regulariser (the paper: hinge loss, spectral norm, no R1)."""

    loss: str = "hinge"
    k_frames: int = 8
    r1_gamma: float = 0.0
    r1_every: int = 1


def dvdgan_step(trainer, batch, recipe: DVDGANRecipe = DVDGANRecipe()) -> dict[str, torch.Tensor]:
    """One D update then one G update. The model holds "G" and "D_T", and "D_S" for the dual pair (a model without
    "D_S" trains against D_T alone). The generated clips of the D update are reused, detached, in the G update.

    The networks come from ``trainer.forward_model`` (compiled when the loop compiles), and G is *called*, so that
    its compiled forward runs (``G.sample`` would reach the uncompiled module). R1 differentiates a gradient (a
    double backward), which compiled graphs do not support: it runs on the uncompiled networks of ``trainer.model``,
    which hold the same weights.

    Inputs: ``batch``, a video (B, C, T, H, W) in [-1, 1] (or a batch with ``.video``) with T >= 4 and H, W >= 4·φ
    (D_T), H and W multiples of 8 (D_S); G draws B clips of T frames at its ``image_size``. Returns a dict of ()
    tensors: d_temporal, r1 (0 when not due), g_temporal, and d_spatial, g_spatial with the dual pair."""
    m = trainer.forward_model
    G, D_T = m["G"], m["D_T"]
    D_S = m["D_S"] if "D_S" in m else None
    d_loss_fn, g_loss_fn = adversarial_losses(recipe.loss)
    real = batch.video if hasattr(batch, "video") else batch  # (B, C, T, H, W)
    fake = G(G.sample_latents(real.shape[0], device=real.device), real.shape[2])  # (B, C, T, H, W), graph kept

    d_temporal = d_loss_fn(D_T(real), D_T(fake.detach()))
    d_loss, logs = d_temporal, {"d_temporal": d_temporal.detach()}
    if D_S is not None:
        real_k = sample_clip_frames(real, recipe.k_frames)
        d_spatial = d_loss_fn(D_S(real_k), D_S(sample_clip_frames(fake.detach(), recipe.k_frames)))
        d_loss, logs["d_spatial"] = d_loss + d_spatial, d_spatial.detach()
    r1 = torch.zeros((), device=real.device)
    if r1_due(trainer, recipe.r1_gamma, recipe.r1_every):
        eager = trainer.model  # the same weights, uncompiled: R1's double backward needs them
        r1 = r1_penalty(eager["D_T"], real, recipe.r1_gamma)
        if D_S is not None:
            r1 = r1 + r1_penalty(eager["D_S"], real_k, recipe.r1_gamma)
        r1 = recipe.r1_every * r1
        d_loss = d_loss + r1
    logs["r1"] = r1.detach()
    trainer.optimize(d_loss, "disc")

    discriminators = [d for d in (D_S, D_T) if d is not None]
    for d in discriminators:
        d.requires_grad_(False)
    g_temporal = g_loss_fn(D_T(fake))
    g_loss, logs["g_temporal"] = g_temporal, g_temporal.detach()
    if D_S is not None:
        g_spatial = g_loss_fn(D_S(sample_clip_frames(fake, recipe.k_frames)))
        g_loss, logs["g_spatial"] = g_loss + g_spatial, g_spatial.detach()
    trainer.optimize(g_loss, "gen")
    for d in discriminators:
        d.requires_grad_(True)
    return logs
