"""The factorised space-time U-Net of Ho et al. 2022, "Video Diffusion Models", §3.

An image diffusion U-Net (Ho et al. 2020) turned into a video model in two moves (Ho 2022, §3):
every 2D convolution becomes a space-only convolution (1×3×3, i.e. a 3×3 conv applied to each frame),
and after each spatial attention block a temporal attention block attends over the frames of each pixel,
with relative position embeddings so that it knows frame order without an absolute clock. Down- and
upsampling are spatial only, so the number of frames is preserved.

Inside the network a video lives as a batch of frames (B·T, C, H, W): convolutions, group norms and
spatial attention never see another frame. Only temporal attention mixes frames, so turning it into
"each frame attends only to itself" makes the frames independent images; that is how Ho 2022 trains
jointly on videos and images packed as extra frames.

Gen-1 (Esser et al. 2023, §3.3) adds a second temporal layer: a 1D temporal convolution after every 2D
spatial convolution of the residual blocks (``UNetBlocks.temporal_conv``). It mixes each pixel with the same pixel
in the neighbouring frames; images packed as frames skip it, as they skip temporal attention.

``UNetBlocks.joint_attention_resolutions`` undoes the factorisation where the feature map is small: at those sides a
block's spatial and temporal attention are replaced by one attention over all T·H·W positions of the clip, with
fixed 3D sin-cos positions (the layout of chapter 12's full-attention DiT). Packed images attend within their frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from vgcourse.nn.attention import attention
from vgcourse.nn.blocks import group_norm
from vgcourse.nn.parameters import count_parameters
from vgcourse.nn.positions import sincos_3d
from vgcourse.nn.transformer import Attention


@dataclass(frozen=True)
class UNetBlocks:
    """Which variant of each block a :class:`VideoUNet` builds. The defaults are Ho et al. 2022's video U-Net; each
    other choice is one paper's change to a block, and the course's chapters use the defaults.

    - ``temporal_conv``: a 3-tap temporal convolution after each spatial conv of a ResBlock (Gen-1, Esser et al.
      2023, §3.3).
    - ``joint_attention_resolutions``: at these sides one attention over all T·H·W positions replaces spatial +
      temporal attention (the layout of a full-attention DiT).
    - ``frame_positions``: a sinusoidal frame index added to temporal attention's input (AnimateDiff, Guo et al.
      2024, §4.2).
    - ``coordinates``: (t, y, x) channels in [-1, 1] appended to the input (CoordConv, Liu et al. 2018).
    - ``attention_conditioning``: the t + condition embedding also scales and shifts the attention blocks' inputs
      (adaLN, as in DiT's blocks).
    - ``scale_shift``: a ResBlock reads the embedding as a scale and shift of its second group norm's output
      (adaptive group normalisation, Dhariwal & Nichol 2021, §3, and every U-Net of the course); False: as a bias
      added to the first conv's output before that norm, as Ho et al. 2020's U-Net does (half the projection's
      parameters).
    """

    temporal_conv: bool = False
    joint_attention_resolutions: tuple[int, ...] = ()
    frame_positions: bool = False
    coordinates: bool = False
    attention_conditioning: bool = False
    scale_shift: bool = True

    def __post_init__(self):
        object.__setattr__(self, "joint_attention_resolutions", tuple(self.joint_attention_resolutions))


@dataclass
class VideoUNetConfig:
    """Sizes of a :class:`VideoUNet`; resolutions are feature-map sides in pixels for ``image_size`` inputs."""

    in_channels: int = 1
    out_channels: int | None = None  # default: in_channels (ε has the shape of x)
    base_channels: int = 64
    channel_mults: tuple[int, ...] = (1, 2, 4, 4)  # one U-Net level each; every level but the last halves H, W
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16, 8)  # spatial self-attention at these sides
    temporal_attention_resolutions: tuple[int, ...] = (32, 16, 8)  # temporal self-attention at these sides
    heads: int = 4
    dropout: float = 0.0
    num_classes: int | None = None  # label conditioning; index num_classes is the null label for CFG
    class_dropout: float = 0.1  # training only: replace a label by the null label with this probability
    cond_dim: int | None = None  # a conditioning vector (B, cond_dim), projected and added to the t embedding
    cond_channels: int = 0  # extra input channels (B, cond_channels, T, H, W) concatenated with x (not predicted)
    image_size: int = 32
    frames: int = 16  # relative positions are learned for offsets -(frames-1)..(frames-1)
    norm_groups: int = 32
    blocks: UNetBlocks = field(default_factory=UNetBlocks)  # which variant of each block (default: Ho 2022's)

    def __post_init__(self):
        if isinstance(self.blocks, dict):  # a config read back from JSON (a results file, a checkpoint)
            self.blocks = UNetBlocks(**self.blocks)
        if not isinstance(self.blocks, UNetBlocks):
            raise TypeError(f"blocks: expected UNetBlocks or a dict of its fields, got {type(self.blocks).__name__}")


def video_unet_tiny(**kw) -> VideoUNetConfig:  # smoke tests: ~0.2M parameters at 16×16
    return VideoUNetConfig(**{**dict(base_channels=16, channel_mults=(1, 2), num_res_blocks=1, image_size=16,
                                     frames=8, attention_resolutions=(8,), temporal_attention_resolutions=(16, 8),
                                     norm_groups=8, heads=2), **kw})


def video_unet_small(**kw) -> VideoUNetConfig:  # cpu profile: ~1.3M parameters at 32×32
    return VideoUNetConfig(**{**dict(base_channels=32, channel_mults=(1, 2, 2), num_res_blocks=1, image_size=32,
                                     attention_resolutions=(8,), temporal_attention_resolutions=(16, 8),
                                     norm_groups=16), **kw})


def video_unet_base(**kw) -> VideoUNetConfig:  # gpu profile: channels 64/128/256/256 at 64×64, ~21M parameters
    return VideoUNetConfig(**{**dict(base_channels=64, channel_mults=(1, 2, 4, 4), num_res_blocks=1, image_size=64,
                                     attention_resolutions=(16, 8), temporal_attention_resolutions=(32, 16, 8)),
                              **kw})


def ddpm_cifar10(**kw) -> VideoUNetConfig:
    """Ho et al. 2020's CIFAR10 U-Net (App. B: "35.7 million parameters"; the authors' code: 128 channels, multipliers
    (1, 2, 2, 2), two ResBlocks per level, attention at 16×16, dropout 0.1, the embedding added as a bias) as a
    one-frame :class:`VideoUNet` without temporal attention: an image model. Inputs (B, 3, 1, 32, 32)."""
    return VideoUNetConfig(**{**dict(in_channels=3, base_channels=128, channel_mults=(1, 2, 2, 2), num_res_blocks=2,
                                     attention_resolutions=(16,), temporal_attention_resolutions=(), heads=1,
                                     dropout=0.1, image_size=32, frames=1, blocks=UNetBlocks(scale_shift=False)),
                              **kw})


def ddpm_256(**kw) -> VideoUNetConfig:
    """Ho et al. 2020's U-Net for LSUN and CelebA-HQ at 256×256 (App. B: "114 million parameters"; the authors' code:
    128 channels, multipliers (1, 1, 2, 2, 4, 4), attention at 16×16, dropout 0) as a one-frame image model.
    Inputs (B, 3, 1, 256, 256)."""
    return ddpm_cifar10(**{**dict(channel_mults=(1, 1, 2, 2, 4, 4), dropout=0.0, image_size=256), **kw})


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps (Vaswani et al. 2017, §3.5). (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]  # (B, dim/2)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # (B, 2·(dim/2))
    return F.pad(emb, (0, dim % 2))  # (B, dim)


def coordinate_channels(shape: tuple[int, ...], device: torch.device | str = "cpu",
                        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(t, y, x) coordinates in [-1, 1] as three channels (B, 3, T, H, W) for videos of ``shape`` (B, C, T, H, W).

    CoordConv (Liu et al. 2018): convolutions are translation-equivariant and a per-clip vector added to every
    pixel (FiLM) is the same everywhere, so neither can say "start at the right edge" or "be 5 px further left
    in frame 8". Coordinates as input channels let every per-frame layer know where and when it is.
    A one-frame clip has t = −1.
    """
    b, _, t, h, w = shape
    axes = [torch.linspace(-1, 1 if n > 1 else -1, n, device=device, dtype=dtype) for n in (t, h, w)]
    grid = torch.stack(torch.meshgrid(*axes, indexing="ij"))  # (3, T, H, W)
    return grid.expand(b, 3, t, h, w)


class TemporalConv(nn.Module):
    """A residual 3-tap convolution over frames at each pixel, initialised to the identity (Gen-1, Esser et al.
    2023, §3.3: "a 1D temporal convolution after every 2D spatial convolution").

    Inputs: x (B·T, C, H, W); frames T; temporal: True (convolve over frames), False (skip: the frames are
    independent images) or (B,) bool, one choice per sample. Returns (B·T, C, H, W); zero padding in time.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv3d(channels, channels, (3, 1, 1), padding=(1, 0, 0))
        nn.init.zeros_(self.conv.weight)  # x + 0: a pretrained image block is unchanged at the start
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor, frames: int, temporal: bool | torch.Tensor = True) -> torch.Tensor:
        if temporal is False:
            return x
        h = self.conv(rearrange(x, "(b t) c h w -> b c t h w", t=frames))  # (B, C, T, H, W)
        if isinstance(temporal, torch.Tensor):  # packed images: no mixing across their "frames"
            h = h * temporal.to(h.dtype).view(-1, 1, 1, 1, 1)
        return x + rearrange(h, "b c t h w -> (b t) c h w")  # (B·T, C, H, W)


class Modulation(nn.Module):
    """adaLN for a U-Net attention block (DiT, Peebles & Xie 2023, §3.2): the embedding of the timestep and the
    condition scales and shifts the block's normalised input, ``norm(x) · (1 + scale(e)) + shift(e)``.

    Without it, the condition reaches a U-Net only through its ResBlocks, and attention sees it only as far as the
    features carry it; with it, temporal attention's queries depend on the frame clock *and* the condition at once.
    Zero-initialised for attention: the identity modulation at the start. Measured (chapter 10's reading): with joint
    attention at 8×8, 1,855 multi-task steps on the H200, it did not make the U-Net draw the caption's direction.
    :class:`ResBlock` scales and shifts by the same map (``zero_init=False``: its zeroed second conv already makes the
    block the identity, Ho et al. 2020's recipe).

    Inputs: h (N, C, H, W) normalised features; emb (N, D), one row per frame (N = B·T). Returns (N, C, H, W).
    """

    def __init__(self, emb_dim: int, channels: int, zero_init: bool = True):
        super().__init__()
        self.proj = nn.Linear(emb_dim, 2 * channels)
        if zero_init:
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        scale, shift = rearrange(self.proj(F.silu(emb)), "n (two c) -> two n c 1 1", two=2)  # 2 × (N, C, 1, 1)
        return h * (1 + scale.to(h.dtype)) + shift.to(h.dtype)  # (N, C, H, W)


def normalise(block: nn.Module, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
    """An attention block's input: its GroupNorm, then its :class:`Modulation` where it has one (emb required)."""
    h = block.norm(x)  # (N, C, H, W)
    if block.modulation is not None:
        if emb is None:
            raise ValueError("this attention block is conditioned (attention_conditioning); pass emb")
        h = block.modulation(h, emb)
    return h


class ResBlock(nn.Module):
    """A residual block of two per-frame 3×3 convs with the time embedding as a scale and shift
    (:class:`Modulation`), or with ``scale_shift=False`` as a bias added before the second norm (Ho et al. 2020's
    block: ``h = conv1(silu(norm1(x))) + W·silu(emb)``); with ``temporal_conv``, each 3×3 conv is followed by a
    :class:`TemporalConv` (Gen-1).

    Inputs: x (N, C_in, H, W) frames (N = B·T); emb (N, D); frames T and temporal as :class:`TemporalConv`
    (used only with ``temporal_conv``, always passed so that a clip is never mistaken for images). Returns
    (N, C_out, H, W).
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float, groups: int,
                 temporal_conv: bool = False, scale_shift: bool = True):
        super().__init__()
        self.norm1, self.conv1 = group_norm(c_in, groups), nn.Conv2d(c_in, c_out, 3, padding=1)
        # the time (+ condition) embedding: a scale and shift, or a bias (Ho et al. 2020)
        self.modulation = Modulation(emb_dim, c_out, zero_init=False) if scale_shift else None
        self.emb_bias = None if scale_shift else nn.Linear(emb_dim, c_out)
        self.norm2, self.drop = group_norm(c_out, groups), nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # the block starts as the identity (Ho et al. 2020's recipe)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.tconv1 = TemporalConv(c_out) if temporal_conv else None
        self.tconv2 = TemporalConv(c_out) if temporal_conv else None

    def forward(self, x: torch.Tensor, emb: torch.Tensor, frames: int, temporal: bool | torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (N, C_out, H, W)
        if self.tconv1 is not None:
            h = self.tconv1(h, frames, temporal)  # (N, C_out, H, W)
        if self.modulation is not None:
            h = self.modulation(self.norm2(h), emb)  # (N, C_out, H, W): scaled and shifted by the embedding
        else:
            h = self.norm2(h + self.emb_bias(F.silu(emb)).to(h.dtype)[:, :, None, None])  # (N, C_out, H, W)
        h = self.conv2(self.drop(F.silu(h)))  # (N, C_out, H, W)
        if self.tconv2 is not None:
            h = self.tconv2(h, frames, temporal)  # (N, C_out, H, W)
        return self.skip(x) + h  # (N, C_out, H, W)


class SpatialAttention(nn.Module):
    """Self-attention over the H·W positions of each frame, as a residual branch. Inputs: x (B·T, C, H, W);
    emb (B·T, D), used with ``emb_dim`` (:class:`Modulation`)."""

    def __init__(self, channels: int, heads: int, groups: int, emb_dim: int | None = None):
        super().__init__()
        self.norm, self.attn = group_norm(channels, groups), Attention(channels, heads)
        self.modulation = Modulation(emb_dim, channels) if emb_dim else None
        nn.init.zeros_(self.attn.proj.weight)
        nn.init.zeros_(self.attn.proj.bias)

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None = None) -> torch.Tensor:
        h = x.shape[2]
        tokens = rearrange(normalise(self, x, emb), "n c h w -> n (h w) c")  # (B·T, H·W, C)
        return x + rearrange(self.attn(tokens), "n (h w) c -> n c h w", h=h)  # (B·T, C, H, W)


class TemporalAttention(nn.Module):
    """Self-attention over the T frames at each pixel with a learned relative-position bias (Ho et al. 2022, §3).

    With ``frame_positions``, a sinusoidal embedding of the frame index (Vaswani et al. 2017, §3.5) is added to the
    normalised tokens before q, k, v, as AnimateDiff's motion module does (Guo et al. 2024, §4.2). A relative bias
    alone makes the block shift-equivariant in time: it can say "the frame before", not "frame 5", so a
    condition that is the same on every frame ("moves left") has no clock to turn into positions.

    Inputs: x (B·T, C, H, W); frames T; temporal: True (attend over frames), False (each frame attends only
    to itself: the frames are independent images) or (B,) bool, one choice per sample; emb (B·T, D), used with
    ``emb_dim`` (:class:`Modulation`). Returns (B·T, C, H, W).
    """

    def __init__(self, channels: int, heads: int, groups: int, max_frames: int, frame_positions: bool = False,
                 emb_dim: int | None = None):
        super().__init__()
        self.heads, self.max_frames, self.frame_positions = heads, max_frames, frame_positions
        self.norm, self.attn = group_norm(channels, groups), Attention(channels, heads)
        self.modulation = Modulation(emb_dim, channels) if emb_dim else None
        self.rel_bias = nn.Parameter(torch.zeros(2 * max_frames - 1, heads))  # one scalar per offset and head
        nn.init.zeros_(self.attn.proj.weight)
        nn.init.zeros_(self.attn.proj.bias)

    def position_bias(self, frames: int, device: torch.device) -> torch.Tensor:
        """(1, heads, T, T): bias[i, j] = table[j - i]; offsets past ±(max_frames-1) share the end entries."""
        pos = torch.arange(frames, device=device)
        offset = (pos[None, :] - pos[:, None]).clamp(-(self.max_frames - 1), self.max_frames - 1)  # (T, T)
        return rearrange(self.rel_bias[offset + self.max_frames - 1], "i j h -> 1 h i j")  # (1, heads, T, T)

    def forward(self, x: torch.Tensor, frames: int, temporal: bool | torch.Tensor,
                emb: torch.Tensor | None = None) -> torch.Tensor:
        _, _, h, w = x.shape
        tokens = rearrange(normalise(self, x, emb), "(b t) c h w -> (b h w) t c", t=frames)  # (B·H·W, T, C)
        if self.frame_positions:
            index = torch.arange(frames, device=x.device)
            tokens = tokens + timestep_embedding(index, tokens.shape[-1]).to(tokens.dtype)  # + (T, C) frame clock
        q, k, v = self.attn.split_heads(tokens)  # 3 × (B·H·W, heads, T, d)
        # A frame that attends only to itself has one key: softmax weight 1, so its output is its own value.
        out = v  # (B·H·W, heads, T, d)
        if temporal is not False:
            mixed = attention(q, k, v, bias=self.position_bias(frames, x.device).to(q.dtype))  # (B·H·W, heads, T, d)
            if temporal is True:
                out = mixed
            else:  # per sample: videos mix their frames, packed images do not
                keep = repeat(temporal, "b -> (b hw) 1 1 1", hw=h * w)  # (B·H·W, 1, 1, 1)
                out = torch.where(keep, mixed, v)  # (B·H·W, heads, T, d)
        out = self.attn.merge_heads(out)  # (B·H·W, T, C)
        return x + rearrange(out, "(b h w) t c -> (b t) c h w", h=h, w=w)  # (B·T, C, H, W)


class JointSpaceTimeAttention(nn.Module):
    """Self-attention over all T·H·W positions of a clip, with fixed 3D sin-cos positions, as a residual branch.

    The factorised blocks of Ho et al. 2022 never compare a pixel with a *different* pixel of another frame
    directly; this one does, as the full-attention DiT of chapter 12 does with its tokens. Positions:
    :func:`vgcourse.nn.positions.sincos_3d` (D/4 channels for t, 3D/8 each for y and x) added to the normalised
    features before q, k, v. Cost ∝ (T·H·W)², so it belongs at the lowest resolutions.

    Inputs: x (B·T, C, H, W); frames T; temporal: True (the clip's frames attend to each other), False (each
    frame attends only within itself and has the positions of frame 0: packed images, each a one-frame video)
    or (B,) bool, one choice per sample; emb (B·T, D), used with ``emb_dim`` (:class:`Modulation`).
    Returns (B·T, C, H, W).
    """

    def __init__(self, channels: int, heads: int, groups: int, emb_dim: int | None = None):
        super().__init__()
        if channels % 16:
            raise ValueError(f"joint space-time attention needs channels divisible by 16 (3D sin-cos), got {channels}")
        self.norm, self.attn = group_norm(channels, groups), Attention(channels, heads)
        self.modulation = Modulation(emb_dim, channels) if emb_dim else None
        nn.init.zeros_(self.attn.proj.weight)  # the identity at the start, as the other attention blocks
        nn.init.zeros_(self.attn.proj.bias)

    def forward(self, x: torch.Tensor, frames: int, temporal: bool | torch.Tensor,
                emb: torch.Tensor | None = None) -> torch.Tensor:
        _, c, h, w = x.shape
        tokens = rearrange(normalise(self, x, emb), "(b t) c h w -> b (t h w) c", t=frames)  # (B, T·H·W, C)
        pos, mask = sincos_3d(c, (frames, h, w), x.device), None  # (L, C), L = T·H·W; every position sees all
        if temporal is not True:
            still = sincos_3d(c, (1, h, w), x.device).repeat(frames, 1)  # (L, C): each packed image is a frame 0
            frame = torch.arange(frames, device=x.device).repeat_interleave(h * w)  # (L,) frame of each token
            mask = (frame[:, None] == frame[None, :])[None, None]  # (1, 1, L, L): only within the frame
            if temporal is False:
                pos = still
            else:  # per sample: videos see the whole clip, packed images their own frame
                pos = torch.where(temporal.view(-1, 1, 1), pos, still)  # (B, L, C)
                mask = mask | temporal.view(-1, 1, 1, 1)  # (B, 1, L, L)
        tokens = tokens + pos.to(tokens.dtype)  # (B, L, C)
        out = self.attn(tokens, mask=mask)  # (B, L, C)
        return x + rearrange(out, "b (t h w) c -> (b t) c h w", t=frames, h=h)  # (B·T, C, H, W)


class SpaceTimeBlock(nn.Module):
    """ResBlock, then optional spatial attention, then optional temporal attention (Ho et al. 2022, §3); or, with
    ``joint``, one :class:`JointSpaceTimeAttention` in place of both."""

    def __init__(self, c_in: int, c_out: int, cfg: VideoUNetConfig, emb_dim: int, spatial: bool, temporal: bool,
                 joint: bool = False):
        super().__init__()
        g = cfg.norm_groups
        self.res = ResBlock(c_in, c_out, emb_dim, cfg.dropout, g, cfg.blocks.temporal_conv, cfg.blocks.scale_shift)
        mod = emb_dim if cfg.blocks.attention_conditioning else None  # adaLN in the attention blocks too
        self.joint = JointSpaceTimeAttention(c_out, cfg.heads, g, mod) if joint else None
        self.spatial = SpatialAttention(c_out, cfg.heads, g, mod) if spatial and not joint else None
        self.temporal = (TemporalAttention(c_out, cfg.heads, g, cfg.frames, cfg.blocks.frame_positions, mod)
                         if temporal and not joint else None)

    def forward(self, x: torch.Tensor, emb: torch.Tensor, frames: int, temporal: bool | torch.Tensor) -> torch.Tensor:
        x = self.res(x, emb, frames, temporal)  # (B·T, C_out, H, W)
        if self.joint is not None:
            x = self.joint(x, frames, temporal, emb)  # (B·T, C_out, H, W)
        if self.spatial is not None:
            x = self.spatial(x, emb)  # (B·T, C_out, H, W)
        if self.temporal is not None:
            x = self.temporal(x, frames, temporal, emb)  # (B·T, C_out, H, W)
        return x


class VideoUNet(nn.Module):
    """The factorised space-time U-Net that predicts ε for a noisy video (Ho et al. 2022, §3).

    Inputs (forward):
        x: (B, C, T, H, W) noisy videos x_t; H and W divisible by 2^(len(channel_mults) - 1).
        t: (B,) timesteps (integers; fractional values also embed).
        cond: (B,) long labels in [0, num_classes], num_classes being the null label; None = all null.
        temporal_attention: True, False, or (B,) bool. Where False, each frame attends only to itself, so
            the frames of that sample are independent images (joint image + video training, Ho 2022 §3).
        context: (B, cond_dim) conditioning vector (e.g. a caption embedding), with ``cond_dim`` set; None = 0.
        concat: (B, cond_channels, T, H, W) conditioning frames concatenated with x along channels (e.g. a
            given first frame, masks), with ``cond_channels`` > 0; None = zeros.
    Returns:
        eps: (B, out_channels, T, H, W), in x's dtype.
    """

    def __init__(self, config: VideoUNetConfig):
        super().__init__()
        cfg = self.config = config
        ch, levels = cfg.base_channels, len(cfg.channel_mults)
        emb_dim = 4 * ch
        self.time_embed = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.label_embed = nn.Embedding(cfg.num_classes + 1, emb_dim) if cfg.num_classes else None
        self.context_embed = nn.Linear(cfg.cond_dim, emb_dim) if cfg.cond_dim else None
        # the 1×3×3 conv of Ho 2022, per frame; conditioning frames (and coordinates) enter here, with x
        self.input_conv = nn.Conv2d(cfg.in_channels + cfg.cond_channels + 3 * cfg.blocks.coordinates, ch, 3, padding=1)

        def block(c_in: int, c_out: int, side: int) -> SpaceTimeBlock:
            return SpaceTimeBlock(c_in, c_out, cfg, emb_dim, spatial=side in cfg.attention_resolutions,
                                  temporal=side in cfg.temporal_attention_resolutions,
                                  joint=side in cfg.blocks.joint_attention_resolutions)

        self.down, skips, c, side = nn.ModuleList(), [ch], ch, cfg.image_size
        for level, mult in enumerate(cfg.channel_mults):
            for _ in range(cfg.num_res_blocks):
                self.down.append(block(c, ch * mult, side))
                c = ch * mult
                skips.append(c)
            if level < levels - 1:
                self.down.append(nn.Conv2d(c, c, 3, stride=2, padding=1))  # H, W halve; T unchanged
                skips.append(c)
                side //= 2
        # the middle: ResBlock, attention, ResBlock (Ho et al. 2020); temporal attention by the levels' rule
        self.mid = nn.ModuleList([SpaceTimeBlock(c, c, cfg, emb_dim, spatial=True,
                                                 temporal=side in cfg.temporal_attention_resolutions,
                                                 joint=side in cfg.blocks.joint_attention_resolutions),
                                  SpaceTimeBlock(c, c, cfg, emb_dim, spatial=False, temporal=False)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mults))):
            for _ in range(cfg.num_res_blocks + 1):
                self.up.append(block(c + skips.pop(), ch * mult, side))
                c = ch * mult
            if level > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),  # H, W double
                                             nn.Conv2d(c, c, 3, padding=1)))
                side *= 2
        self.out = nn.Sequential(group_norm(c, cfg.norm_groups), nn.SiLU(),
                                 nn.Conv2d(c, cfg.out_channels or cfg.in_channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)  # the model starts by predicting ε = 0 (Ho et al. 2020's recipe)
        nn.init.zeros_(self.out[-1].bias)

    def _check_inputs(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None) -> None:
        cfg, factor = self.config, 2 ** (len(self.config.channel_mults) - 1)
        if not isinstance(x, torch.Tensor) or x.ndim != 5:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"expected x of shape (B, C, T, H, W), got {got}")
        if not x.is_floating_point():
            raise TypeError(f"expected x as a float tensor, got dtype {x.dtype}")
        b, c, _, h, w = x.shape
        if c != cfg.in_channels:
            raise ValueError(f"expected x with C={cfg.in_channels} channels in (B, C, T, H, W), got {tuple(x.shape)}")
        if h % factor or w % factor:
            raise ValueError(f"expected H and W divisible by {factor} ({len(cfg.channel_mults)} levels), "
                             f"got {tuple(x.shape)}")
        if not isinstance(t, torch.Tensor) or t.shape != (b,):
            got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
            raise ValueError(f"expected t of shape (B,) = ({b},), got {got}")
        if cond is not None:
            if self.label_embed is None:
                raise ValueError("got cond, but this VideoUNet has no label conditioning (num_classes=None)")
            if not isinstance(cond, torch.Tensor) or cond.shape != (b,) or cond.is_floating_point():
                got = f"{tuple(cond.shape)} {cond.dtype}" if isinstance(cond, torch.Tensor) else type(cond).__name__
                raise ValueError(f"expected cond as long labels of shape ({b},), got {got}")
            if cond.numel() and (cond.min() < 0 or cond.max() > cfg.num_classes):
                raise ValueError(f"expected labels in [0, {cfg.num_classes}] ({cfg.num_classes} = null), "
                                 f"got range [{cond.min().item()}, {cond.max().item()}]")

    def _check_extra(self, x: torch.Tensor, context: torch.Tensor | None, concat: torch.Tensor | None) -> None:
        cfg, b = self.config, x.shape[0]
        if context is not None:
            if self.context_embed is None:
                raise ValueError("got context, but this VideoUNet has no vector conditioning (cond_dim=None)")
            if not isinstance(context, torch.Tensor) or context.shape != (b, cfg.cond_dim):
                got = tuple(context.shape) if isinstance(context, torch.Tensor) else type(context).__name__
                raise ValueError(f"expected context of shape (B, cond_dim) = ({b}, {cfg.cond_dim}), got {got}")
        if concat is not None:
            want = (b, cfg.cond_channels, *x.shape[2:])
            if not isinstance(concat, torch.Tensor) or tuple(concat.shape) != want or not cfg.cond_channels:
                got = tuple(concat.shape) if isinstance(concat, torch.Tensor) else type(concat).__name__
                raise ValueError(f"expected concat of shape (B, cond_channels, T, H, W) = {want}, got {got}")

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor | None = None,
                temporal_attention: bool | torch.Tensor = True, context: torch.Tensor | None = None,
                concat: torch.Tensor | None = None) -> torch.Tensor:
        self._check_inputs(x, t, cond)
        self._check_extra(x, context, concat)
        b, _, frames, _, _ = x.shape
        temporal = temporal_attention
        if isinstance(temporal, torch.Tensor):
            if temporal.shape != (b,) or temporal.dtype != torch.bool:
                raise ValueError(f"expected temporal_attention as a bool or a bool tensor of shape ({b},), "
                                 f"got {tuple(temporal.shape)} {temporal.dtype}")
            temporal = temporal.to(x.device)  # (B,)
        elif not isinstance(temporal, bool):
            raise TypeError("expected temporal_attention as a bool or a (B,) bool tensor, "
                            f"got {type(temporal).__name__}")
        emb = self.time_embed(timestep_embedding(t, self.config.base_channels))  # (B, D)
        if self.label_embed is not None:
            null = self.config.num_classes
            labels = torch.full_like(t, null, dtype=torch.long) if cond is None else cond.long()  # (B,)
            if self.training and self.config.class_dropout > 0:  # CFG training: sometimes forget the label
                drop = torch.rand(b, device=x.device) < self.config.class_dropout
                labels = torch.where(drop, torch.full_like(labels, null), labels)
            emb = emb + self.label_embed(labels)  # (B, D)
        if self.context_embed is not None and context is not None:
            emb = emb + self.context_embed(context.to(emb.dtype))  # (B, D): the vector condition joins t
        emb = repeat(emb, "b d -> (b t) d", t=frames)  # (B·T, D): one copy per frame
        if self.config.cond_channels:
            if concat is None:
                concat = x.new_zeros(b, self.config.cond_channels, *x.shape[2:])  # (B, C_cond, T, H, W)
            x = torch.cat([x, concat.to(x.dtype)], dim=1)  # (B, C + C_cond, T, H, W)
        if self.config.blocks.coordinates:
            x = torch.cat([x, coordinate_channels(x.shape, x.device, x.dtype)], dim=1)  # (B, C_in + 3, T, H, W)
        h = self.input_conv(rearrange(x, "b c t h w -> (b t) c h w"))  # (B·T, C0, H, W)
        skips = [h]
        for layer in self.down:
            h = layer(h, emb, frames, temporal) if isinstance(layer, SpaceTimeBlock) else layer(h)  # (B·T, C, H', W')
            skips.append(h)
        for layer in self.mid:
            h = layer(h, emb, frames, temporal)  # (B·T, C, H/2^L, W/2^L)
        for layer in self.up:
            if isinstance(layer, SpaceTimeBlock):
                h = layer(torch.cat([h, skips.pop()], dim=1), emb, frames, temporal)  # (B·T, C, H', W')
            else:
                h = layer(h)  # (B·T, C, 2H', 2W')
        eps = self.out(h)  # (B·T, C_out, H, W)
        return rearrange(eps, "(b t) c h w -> b c t h w", b=b).to(x.dtype)  # (B, C_out, T, H, W)


def estimate_parameters(config: VideoUNetConfig) -> int:
    """The parameter count of ``VideoUNet(config)``, built on the meta device (no memory, no init time)."""
    with torch.device("meta"):
        return count_parameters(VideoUNet(config))
