"""The VQ-VAE tokenizer of VideoGPT (Yan et al. 2021, §3.1): 3D convs, axial attention, an EMA codebook.

A video (B, C, T, H, W) is encoded by strided 3D convolutions to a grid (B, D, t, h, w) (e.g. t = T/2,
h = H/4, w = W/4 at the default downsample (2, 4, 4)), each grid vector is replaced by its nearest codebook vector
(:mod:`vgcourse.tokenizers.quantizer`: straight-through gradients, an EMA codebook, dead-code restarts, the
commitment loss), and a mirrored decoder maps the quantized grid back to pixels. The grid of code indices
(B, t, h, w) is what the GPT prior of VideoGPT models.

The objective is VideoGPT's: ‖x − x̂‖² / 0.06 + β‖z − sg[e]‖² (:func:`vq_loss`; the codebook follows by EMA).

Two kinds of tokens at the same token count, chosen by ``per_frame``:

- 3D tokens (VideoGPT): each code covers a (dt, dh, dw) tube of space and time; 3×3×3 convs and attention along
  T, H and W mix frames, so a code can hold what does not change between frames once.
- Per-frame 2D tokens (NÜWA, Wu et al. 2022, §3.1, tokenizes each frame with an image VQ-GAN): the same network
  with 1×k×k kernels and attention along H and W only, run on every frame on its own (frames folded into the
  batch, so even the GroupNorm statistics are per frame). To match a 3D tokenizer's count, each frame must be
  downsampled more in space: 16×32×32 clips give 4×8×8 = 256 3D tokens at (4, 4, 4) and 16×4×4 = 256 per-frame
  tokens at (1, 8, 8).

Differences from VideoGPT's public code: GroupNorm instead of BatchNorm (small batches), and attention through
:class:`vgcourse.nn.transformer.Attention`, whose q, k, v projections carry biases unless ``qkv_bias=False`` (as
in :func:`videogpt_bair`, which then has the authors' parameter count). As there, the axial attention carries no
position embedding: the 3×3×3 convs around it give each position its neighbourhood.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from einops import rearrange
from torch import nn

from vgcourse.nn.blocks import group_norm
from vgcourse.nn.transformer import Attention
from vgcourse.tokenizers.quantizer import VectorQuantizer, VQOutput, check_indices, check_input_video, vq_loss


@dataclass
class VQVideoAutoencoderConfig:
    """Sizes of a :class:`VQVideoAutoencoder`; ``downsample`` = (T, H, W) factors, each a power of 2."""

    in_channels: int = 1
    hidden_channels: int = 64
    num_res_blocks: int = 2  # attention residual blocks in the encoder and in the decoder
    downsample: tuple[int, int, int] = (2, 4, 4)
    codebook_size: int = 512
    embedding_dim: int = 64
    heads: int = 2
    ema: bool = True
    decay: float = 0.99
    commitment: float = 0.25
    dead_code_threshold: float = 1.0
    norm_groups: int = 8
    recon_scale: float = 0.06  # VideoGPT divides the MSE by 0.06 (about the data variance)
    per_frame: bool = False  # True: a 2D image tokenizer run on every frame (NÜWA's tokens); downsample[0] = 1
    qkv_bias: bool = True  # biases in the attention's q, k, v projections (VideoGPT's code has none)

    def __post_init__(self):
        self.downsample = tuple(self.downsample)
        if self.per_frame and self.downsample[0] != 1:
            raise ValueError(f"a per-frame tokenizer keeps every frame: expected downsample (1, dh, dw), got "
                             f"{self.downsample}")


def vq_tiny(**kw) -> VQVideoAutoencoderConfig:  # tests
    return VQVideoAutoencoderConfig(**{**dict(hidden_channels=16, num_res_blocks=1, codebook_size=32,
                                              embedding_dim=8, norm_groups=4), **kw})


def vq_small(**kw) -> VQVideoAutoencoderConfig:  # 16×64×64 -> 8×16×16 codes
    return VQVideoAutoencoderConfig(**kw)


def vq_digits(**kw) -> VQVideoAutoencoderConfig:
    """The course's tokenizer of 16×32×32 moving digits: 4×8×8 = 256 3D codes of a 512-code EMA codebook.

    1.1M parameters, so that its weights ship in about 2 MB of bf16 (chapter 06's GPT prior models its codes)."""
    return VQVideoAutoencoderConfig(**{**dict(hidden_channels=64, num_res_blocks=2, downsample=(4, 4, 4),
                                              codebook_size=512, embedding_dim=64, heads=4, norm_groups=16), **kw})


def vq_digits_per_frame(**kw) -> VQVideoAutoencoderConfig:
    """The per-frame 2D counterpart of :func:`vq_digits` at the same token count: 16×4×4 = 256 codes a clip."""
    return vq_digits(**{**dict(downsample=(1, 8, 8), per_frame=True), **kw})


def videogpt_bair(**kw) -> VQVideoAutoencoderConfig:
    """The defaults of VideoGPT's public code (``VQVAE.add_model_specific_args``): 16×64×64 RGB -> 4×16×16 codes of a
    2048-code book of 256-d vectors, 240 hidden channels, 4 attention residual blocks of 2 heads, no q/k/v biases.

    21,141,619 parameters, as its ``VQVAE`` with those arguments counts them (BatchNorm there, GroupNorm here: the
    same two vectors per norm); the codebook is a buffer in both."""
    return VQVideoAutoencoderConfig(**{**dict(in_channels=3, hidden_channels=240, num_res_blocks=4,
                                              downsample=(4, 4, 4), codebook_size=2048, embedding_dim=256,
                                              heads=2, qkv_bias=False), **kw})


AXES = ("t", "h", "w")


class AxialAttention(nn.Module):
    """Self-attention along T, along H and along W of a grid, summed (VideoGPT's AxialBlock).

    Inputs: x (B, C, t, h, w). Returns (B, C, t, h, w). ``axes`` picks the axes (("h", "w") for a per-frame model).
    """

    def __init__(self, dim: int, heads: int, axes: tuple[str, ...] = AXES, qkv_bias: bool = True):
        super().__init__()
        if not axes or any(a not in AXES for a in axes):
            raise ValueError(f"expected attention axes among {AXES}, got {axes}")
        self.axes = tuple(axes)
        for a in self.axes:
            setattr(self, f"attn_{a}", Attention(dim, heads, qkv_bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        terms = []
        if "t" in self.axes:
            along_t = self.attn_t(rearrange(x, "b c t h w -> (b h w) t c"))  # (B·h·w, t, C)
            terms.append(rearrange(along_t, "(b h w) t c -> b c t h w", b=b, h=h))
        if "h" in self.axes:
            along_h = self.attn_h(rearrange(x, "b c t h w -> (b t w) h c"))  # (B·t·w, h, C)
            terms.append(rearrange(along_h, "(b t w) h c -> b c t h w", b=b, t=t))
        if "w" in self.axes:
            along_w = self.attn_w(rearrange(x, "b c t h w -> (b t h) w c"))  # (B·t·h, w, C)
            terms.append(rearrange(along_w, "(b t h) w c -> b c t h w", b=b, t=t))
        out = terms[0]
        for term in terms[1:]:
            out = out + term
        return out  # (B, C, t, h, w)


class AttentionResBlock(nn.Module):
    """x + [norm, ReLU, 3×3×3 conv to C/2, norm, ReLU, 1×1×1 conv to C, norm, ReLU, axial attention](x).

    Inputs: x (B, C, t, h, w). ``per_frame``: a 1×3×3 conv and attention along H and W only.
    """

    def __init__(self, channels: int, heads: int, groups: int, per_frame: bool = False, qkv_bias: bool = True):
        super().__init__()
        kernel, pad = ((1, 3, 3), (0, 1, 1)) if per_frame else (3, 1)
        self.block = nn.Sequential(
            group_norm(channels, groups), nn.ReLU(),
            nn.Conv3d(channels, channels // 2, kernel, padding=pad, bias=False),
            group_norm(channels // 2, groups), nn.ReLU(), nn.Conv3d(channels // 2, channels, 1, bias=False),
            group_norm(channels, groups), nn.ReLU(),
            AxialAttention(channels, heads, ("h", "w") if per_frame else AXES, qkv_bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)  # (B, C, t, h, w)


def _halvings(downsample: tuple[int, int, int]) -> list[int]:
    out = []
    for d in downsample:
        k = int(round(math.log2(d))) if d >= 1 else -1
        if k < 0 or 2**k != d:
            raise ValueError(f"downsample factors must be powers of 2, got {tuple(downsample)}")
        out.append(k)
    return out


class VQVideoAutoencoder(nn.Module):
    """VideoGPT's VQ-VAE: (B, C, T, H, W) -> codes (B, T/dt, H/dh, W/dw) -> (B, C, T, H, W).

    Inputs: videos x (B, C, T, H, W) in [-1, 1], with T, H, W divisible by ``cfg.downsample``.
    forward(x) returns (x̂ (B, C, T, H, W), :class:`VQOutput`); :func:`vq_loss` is the training objective.
    """

    def __init__(self, cfg: VQVideoAutoencoderConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or VQVideoAutoencoderConfig()
        c, halvings = cfg.hidden_channels, _halvings(cfg.downsample)
        down, up = [], []
        for i in range(max(halvings)):  # stride 2 (kernel 4) on the axes that still need halving, else 1 (kernel 3)
            stride = tuple(2 if k > i else 1 for k in halvings)
            kernel = tuple(4 if s == 2 else 3 for s in stride)
            pad = (1, 1, 1)
            if cfg.per_frame:  # no mixing of frames: kernel 1 along T
                kernel, pad = (1,) + kernel[1:], (0, 1, 1)
            down += [nn.Conv3d(cfg.in_channels if i == 0 else c, c, kernel, stride, padding=pad), nn.ReLU()]
            last = i == 0
            up = [nn.ConvTranspose3d(c, cfg.in_channels if last else c, kernel, stride, padding=pad)] + \
                 ([] if last else [nn.ReLU()]) + up
        kernel, pad = ((1, 3, 3), (0, 1, 1)) if cfg.per_frame else (3, 1)
        res = lambda: [AttentionResBlock(c, cfg.heads, cfg.norm_groups, cfg.per_frame, cfg.qkv_bias)  # noqa: E731
                       for _ in range(cfg.num_res_blocks)]
        self.encoder = nn.Sequential(*down, nn.Conv3d(c, c, kernel, padding=pad), *res(),
                                     group_norm(c, cfg.norm_groups), nn.ReLU(),
                                     nn.Conv3d(c, cfg.embedding_dim, 1))  # ends with VideoGPT's pre_vq_conv
        self.decoder = nn.Sequential(nn.Conv3d(cfg.embedding_dim, c, 1), *res(), group_norm(c, cfg.norm_groups),
                                     nn.ReLU(), *up)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.embedding_dim, ema=cfg.ema, decay=cfg.decay,
                                         commitment=cfg.commitment, dead_code_threshold=cfg.dead_code_threshold)

    def latent_shape(self, t: int, h: int, w: int) -> tuple[int, int, int]:
        """The code grid (t', h', w') for clips of T = t frames of H × W = h × w."""
        return t // self.cfg.downsample[0], h // self.cfg.downsample[1], w // self.cfg.downsample[2]

    def tokens_per_clip(self, t: int, h: int, w: int) -> int:
        """How many codes a clip of t frames of h × w pixels becomes: t'·h'·w'."""
        return math.prod(self.latent_shape(t, h, w))

    def _check_input(self, x: torch.Tensor) -> None:
        check_input_video(x, self.cfg.in_channels)
        if any(s % d for s, d in zip(x.shape[2:], self.cfg.downsample)):
            raise ValueError(f"expected T, H, W divisible by the downsampling factors (T, H, W) = "
                             f"{tuple(self.cfg.downsample)}, got (B, C, T, H, W) = {tuple(x.shape)}")

    def quantize(self, x: torch.Tensor) -> VQOutput:
        """x (B, C, T, H, W) -> VQOutput with quantized (B, t, h, w, D) and indices (B, t, h, w)."""
        self._check_input(x)
        if self.cfg.per_frame:  # every frame on its own: frames join the batch
            z = rearrange(self.encoder(rearrange(x, "b c t h w -> (b t) c 1 h w")), "(b t) d 1 h w -> b t h w d",
                          b=x.shape[0])  # (B, T, h, w, D)
        else:
            z = rearrange(self.encoder(x), "b d t h w -> b t h w d")  # (B, t, h, w, D)
        return self.quantizer(z)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, T, H, W) -> code indices (B, t, h, w)."""
        return self.quantize(x).indices

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices (B, t, h, w) -> x̂ (B, C, T, H, W)."""
        check_indices(indices, self.cfg.codebook_size)
        return self.decode(self.quantizer.lookup(indices.long()))

    def decode(self, quantized: torch.Tensor) -> torch.Tensor:
        """Quantized vectors (B, t, h, w, D) -> x̂ (B, C, T, H, W)."""
        if self.cfg.per_frame:
            out = self.decoder(rearrange(quantized, "b t h w d -> (b t) d 1 h w"))  # (B·T, C, 1, H, W)
            return rearrange(out, "(b t) c 1 h w -> b c t h w", b=quantized.shape[0])  # (B, C, T, H, W)
        return self.decoder(rearrange(quantized, "b t h w d -> b d t h w"))  # (B, C, T, H, W)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, VQOutput]:
        vq = self.quantize(x)
        return self.decode(vq.quantized), vq  # (B, C, T, H, W), VQOutput

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """:func:`vq_loss` of this model on x: x (B, C, T, H, W) in [-1, 1] (T, H, W divisible by ``cfg.downsample``)
        -> dict of () tensors."""
        return vq_loss(self, x)



def shippable_state(model: VQVideoAutoencoder, dtype: torch.dtype = torch.bfloat16) -> dict:
    """What a trained tokenizer needs to be rebuilt elsewhere: its config and its weights in ``dtype`` (bf16 halves
    the file). The EMA statistics (cluster sizes, sums) are left out: they only matter to further training.

    Returns {"config": plain values, "model": {name: tensor}}, loadable with ``torch.load(weights_only=True)``.
    """
    skip = ("quantizer.cluster_size", "quantizer.embed_sum")
    weights = {k: (v.to(dtype) if v.is_floating_point() else v).detach().cpu().clone()
               for k, v in model.state_dict().items() if k not in skip}
    return {"config": asdict(model.cfg), "model": weights}


def load_tokenizer(state: dict) -> VQVideoAutoencoder:
    """A :class:`VQVideoAutoencoder` in fp32 and eval mode from :func:`shippable_state`'s dict (e.g. read with
    :func:`vgcourse.train.load_shipped`)."""
    if set(state) != {"config", "model"}:
        raise ValueError(f"expected a tokenizer state with 'config' and 'model' (shippable_state), got {sorted(state)}")
    model = VQVideoAutoencoder(VQVideoAutoencoderConfig(**state["config"]))
    own = model.state_dict()
    missing = sorted(set(own) - set(state["model"]) - {"quantizer.cluster_size", "quantizer.embed_sum"})
    unexpected = sorted(set(state["model"]) - set(own))
    if missing or unexpected:
        raise ValueError(f"the tokenizer state does not fit its config: missing {missing[:5]}, unexpected "
                         f"{unexpected[:5]}")
    model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state["model"].items()},
                          strict=False)
    return model.eval()
