"""The causal C-ViViT tokenizer of Phenaki (Villegas et al. 2023, §2.1 and Fig. 2).

A clip of 1 + n·pt frames becomes a grid of (1 + n) × H/p × W/p codes:

- **Patches.** The first frame is cut into p × p patches on its own; the remaining frames into tubelets of
  pt × p × p (ViViT's tubelet embedding, Arnab et al. 2021, §3.2). Each has its own linear embedding, so an image
  (a one-frame clip) is tokenized by the first embedding alone, and images and videos share one tokenizer.
- **Spatial transformer.** Each time step's H/p · W/p tokens attend to each other (the 'spatial' step of
  :mod:`vgcourse.nn.layouts`), nothing across time.
- **Causal temporal transformer.** Each spatial position attends to its own and earlier time steps only (the
  causal 'temporal' step). So the tokens of the first k time steps depend on the first 1 + (k − 1)·pt frames and
  on nothing later: a clip can be tokenized, and extended, step by step (Phenaki's variable-length videos).
- **VQ.** A linear map to the code dimension and :class:`~vgcourse.tokenizers.quantizer.VectorQuantizer` (EMA,
  dead-code restarts, commitment loss), one code per token.
- **Decoder**, mirrored: a linear map back, the causal temporal transformer, the spatial transformer, and a
  linear projection to pixels (without an activation, as in the paper) for the first frame and for the tubelets.

Positions: a learned vector per spatial position (H/p · W/p of them) plus a fixed sine-cosine embedding of the time
step, so the temporal transformer takes clips of any length. Every block is the shared pre-LN
:class:`~vgcourse.nn.transformer.Block`. Phenaki's full objective (§2.1) adds image and video (I3D) perceptual
losses and a GAN loss to the L2 and VQ terms; here :func:`~vgcourse.tokenizers.quantizer.vq_loss` (L2 + commitment)
trains it as it trains the VQ-VAE.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from vgcourse.nn.positions import sincos_1d
from vgcourse.nn.transformer import Block
from vgcourse.tokenizers.quantizer import VectorQuantizer, VQOutput, check_indices, check_input_video, vq_loss


@dataclass
class CViViTConfig:
    """Sizes of a :class:`CViViT`: pixels, patches, the two transformers and the codebook."""

    in_channels: int = 1
    image_size: int = 32  # H = W of the frames (the learned spatial positions need it)
    patch_size: int = 4  # p: tokens are p × p pixels (the first frame) or pt × p × p (tubelets)
    temporal_patch: int = 5  # pt: frames per tubelet after the first frame
    dim: int = 256
    heads: int = 4
    spatial_depth: int = 2  # blocks of the spatial transformer, in the encoder and again in the decoder
    temporal_depth: int = 2  # blocks of the causal temporal transformer, likewise
    mlp_ratio: float = 4.0
    codebook_size: int = 512
    embedding_dim: int = 32  # code dimension
    ema: bool = True
    decay: float = 0.99
    commitment: float = 0.25
    dead_code_threshold: float = 1.0
    recon_scale: float = 0.06

    def __post_init__(self):
        if self.image_size % self.patch_size:
            raise ValueError(f"expected image_size divisible by patch_size, got {self.image_size} and "
                             f"{self.patch_size}")
        if self.dim % self.heads or self.dim % 2:
            raise ValueError(f"expected an even dim divisible by heads, got dim={self.dim}, heads={self.heads}")
        if self.temporal_patch < 1:
            raise ValueError(f"expected temporal_patch >= 1, got {self.temporal_patch}")


def cvivit_tiny(**kw) -> CViViTConfig:  # tests: 16×16 frames, 1 + 2k frames
    return CViViTConfig(**{**dict(image_size=16, patch_size=4, temporal_patch=2, dim=32, heads=2, spatial_depth=1,
                                  temporal_depth=1, codebook_size=32, embedding_dim=8), **kw})


def cvivit_digits(**kw) -> CViViTConfig:
    """16-frame 32×32 moving digits: 1 + 3 tubelets of 5 frames, 8×8 patches of 4×4: 4×8×8 = 256 codes, as many as
    the 3D VQ-VAE :func:`~vgcourse.tokenizers.vq.vq_digits`."""
    return CViViTConfig(**kw)


class CViViT(nn.Module):
    """Phenaki's C-ViViT: (B, C, 1 + n·pt, H, W) -> codes (B, 1 + n, H/p, W/p) -> (B, C, 1 + n·pt, H, W).

    Inputs: videos x (B, C, T, H, W) in [-1, 1], H = W = ``cfg.image_size``, T − 1 divisible by ``temporal_patch``.
    forward(x) returns (x̂ (B, C, T, H, W), :class:`VQOutput`), as :class:`~vgcourse.tokenizers.vq.VQVideoAutoencoder`.
    """

    def __init__(self, cfg: CViViTConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or CViViTConfig()
        c, p, pt, d = cfg.in_channels, cfg.patch_size, cfg.temporal_patch, cfg.dim
        side = cfg.image_size // p
        self.embed_first = nn.Linear(c * p * p, d)  # the first frame's p × p patches
        self.embed_rest = nn.Linear(c * pt * p * p, d)  # tubelets of pt × p × p
        self.enc_positions = nn.Parameter(torch.randn(side * side, d) * 0.02)  # (h·w, D), learned
        self.enc_spatial = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio, step="spatial")
                                         for _ in range(cfg.spatial_depth))
        self.enc_temporal = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio, causal=True, step="temporal")
                                          for _ in range(cfg.temporal_depth))
        self.enc_norm = nn.LayerNorm(d)
        self.to_codes = nn.Linear(d, cfg.embedding_dim)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.embedding_dim, ema=cfg.ema, decay=cfg.decay,
                                         commitment=cfg.commitment, dead_code_threshold=cfg.dead_code_threshold)
        self.from_codes = nn.Linear(cfg.embedding_dim, d)
        self.dec_positions = nn.Parameter(torch.randn(side * side, d) * 0.02)
        self.dec_temporal = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio, causal=True, step="temporal")
                                          for _ in range(cfg.temporal_depth))
        self.dec_spatial = nn.ModuleList(Block(d, cfg.heads, cfg.mlp_ratio, step="spatial")
                                         for _ in range(cfg.spatial_depth))
        self.dec_norm = nn.LayerNorm(d)
        self.to_first = nn.Linear(d, c * p * p)  # a linear projection to pixels, no activation (Phenaki, §2.1)
        self.to_rest = nn.Linear(d, c * pt * p * p)

    # ---- shapes ---------------------------------------------------------------------------------------------
    def latent_shape(self, t: int, h: int, w: int) -> tuple[int, int, int]:
        """The code grid (1 + (t − 1)/pt, h/p, w/p) for clips of t frames of h × w."""
        p = self.cfg.patch_size
        return 1 + (t - 1) // self.cfg.temporal_patch, h // p, w // p

    def tokens_per_clip(self, t: int, h: int, w: int) -> int:
        return math.prod(self.latent_shape(t, h, w))

    def frames_for(self, steps: int) -> int:
        """The frames that ``steps`` time steps of codes cover: 1 + (steps − 1)·pt."""
        return 1 + (steps - 1) * self.cfg.temporal_patch

    def _check_input(self, x: torch.Tensor) -> None:
        check_input_video(x, self.cfg.in_channels)
        t, h, w = x.shape[2:]
        if h != self.cfg.image_size or w != self.cfg.image_size or (t - 1) % self.cfg.temporal_patch:
            raise ValueError(f"expected clips of 1 + n·{self.cfg.temporal_patch} frames of {self.cfg.image_size}×"
                             f"{self.cfg.image_size}, got (B, C, T, H, W) = {tuple(x.shape)}")

    def _positions(self, table: torch.Tensor, t: int) -> torch.Tensor:
        """Learned spatial + sine-cosine temporal positions of a (t, h·w) grid: (t·h·w, D), row-major."""
        time = sincos_1d(self.cfg.dim, torch.arange(t, device=table.device)).to(table.dtype)  # (t, D)
        return rearrange(time[:, None] + table[None], "t s d -> (t s) d")

    # ---- encoder ---------------------------------------------------------------------------------------------
    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, 1 + n·pt, H, W) -> tokens (B, 1 + n, H/p, W/p, D): the first frame alone, then tubelets."""
        p, pt = self.cfg.patch_size, self.cfg.temporal_patch
        first = self.embed_first(rearrange(x[:, :, :1], "b c 1 (h p) (w q) -> b 1 h w (c p q)", p=p, q=p))
        rest = self.embed_rest(rearrange(x[:, :, 1:], "b c (t r) (h p) (w q) -> b t h w (c r p q)",
                                         r=pt, p=p, q=p))  # (B, n, h, w, D)
        return torch.cat([first, rest], dim=1)  # (B, 1 + n, h, w, D)

    def quantize(self, x: torch.Tensor) -> VQOutput:
        """x (B, C, T, H, W) -> VQOutput with quantized (B, t, h, w, E) and indices (B, t, h, w)."""
        self._check_input(x)
        tokens = self.patchify(x)  # (B, t, h, w, D)
        b, t, h, w, _ = tokens.shape
        grid = (t, h, w)
        z = rearrange(tokens, "b t h w d -> b (t h w) d") + self._positions(self.enc_positions, t)  # (B, L, D)
        for block in self.enc_spatial:  # each time step on its own
            z = block(z, grid)
        for block in self.enc_temporal:  # each position sees its own and earlier time steps
            z = block(z, grid)
        z = self.to_codes(self.enc_norm(z))  # (B, L, E)
        return self.quantizer(rearrange(z, "b (t h w) e -> b t h w e", t=t, h=h))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, T, H, W) -> code indices (B, t, h, w)."""
        return self.quantize(x).indices

    # ---- decoder ---------------------------------------------------------------------------------------------
    def decode(self, quantized: torch.Tensor) -> torch.Tensor:
        """Quantized vectors (B, t, h, w, E) -> x̂ (B, C, 1 + (t − 1)·pt, H, W)."""
        b, t, h, w, _ = quantized.shape
        grid, p, pt = (t, h, w), self.cfg.patch_size, self.cfg.temporal_patch
        z = self.from_codes(rearrange(quantized, "b t h w e -> b (t h w) e")) \
            + self._positions(self.dec_positions, t)  # (B, L, D)
        for block in self.dec_temporal:
            z = block(z, grid)
        for block in self.dec_spatial:
            z = block(z, grid)
        z = rearrange(self.dec_norm(z), "b (t h w) d -> b t h w d", t=t, h=h)  # (B, t, h, w, D)
        first = rearrange(self.to_first(z[:, :1]), "b 1 h w (c p q) -> b c 1 (h p) (w q)", p=p, q=p)
        rest = rearrange(self.to_rest(z[:, 1:]), "b t h w (c r p q) -> b c (t r) (h p) (w q)", r=pt, p=p, q=p)
        return torch.cat([first, rest], dim=2)  # (B, C, T, H, W)

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices (B, t, h, w) -> x̂ (B, C, 1 + (t − 1)·pt, H, W)."""
        check_indices(indices, self.cfg.codebook_size)
        return self.decode(self.quantizer.lookup(indices.long()))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, VQOutput]:
        vq = self.quantize(x)
        return self.decode(vq.quantized), vq  # (B, C, T, H, W), VQOutput

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """:func:`~vgcourse.tokenizers.quantizer.vq_loss` of this model on x: x (B, C, T, H, W) in [-1, 1]
        (T = 1 + n·pt, H = W = ``cfg.image_size``) -> dict of () tensors."""
        return vq_loss(self, x)
