"""The VQ-VAE tokenizer of VideoGPT (Yan et al. 2021, §3.1): 3D convs, axial attention, an EMA codebook.

A video (B, C, T, H, W) is encoded by strided 3D convolutions to a grid (B, D, t, h, w) (e.g. t = T/2,
h = H/4, w = W/4), each grid vector is replaced by its nearest codebook vector (van den Oord et al. 2017,
"Neural Discrete Representation Learning"), and a mirrored decoder maps the quantized grid back to pixels.
The grid of code indices (B, t, h, w) is what the GPT prior of VideoGPT models.

- Gradients pass the non-differentiable argmin with the straight-through estimator (van den Oord 2017, §3.2).
- The codebook is not learned by gradient but by exponential moving averages of the encoder outputs assigned
  to each code (van den Oord 2017, App. A.1; Razavi et al. 2019, VQ-VAE-2), so the loss keeps only the
  commitment term β‖z − sg[e]‖² of eq. (3).
- Codes that fall out of use ("dead codes", EMA cluster size under a threshold) are restarted on random
  encoder outputs of the current batch, as in the VideoGPT code.

Differences from VideoGPT's public code: GroupNorm instead of BatchNorm (small batches), and attention through
:func:`vgcourse.nn.attention.attention`. As there, the axial attention carries no position embedding: the
3×3×3 convs around it give each position its neighbourhood.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vgcourse.metrics.reconstruction import codebook_stats
from vgcourse.nn.attention import SelfAttention
from vgcourse.nn.blocks import group_norm
from vgcourse.video import check_video


class VQOutput(NamedTuple):
    """What :class:`VectorQuantizer` returns: straight-through quantized vectors, code indices, and losses/stats."""

    quantized: torch.Tensor  # (..., D), forward value = codebook vectors, gradient = identity to the input
    indices: torch.Tensor  # (...,) long
    losses: dict[str, torch.Tensor]  # loss, commitment, codebook, perplexity, usage



class VectorQuantizer(nn.Module):
    """Nearest-neighbour quantization of vectors (..., dim) against a codebook of ``codebook_size`` vectors.

    Inputs: z (..., dim), channels last (rearrange a conv grid (B, D, t, h, w) to (B, t, h, w, D) first).
    With ``ema=True`` the codebook is updated in training-mode forwards by EMA (decay ``decay``); with
    ``ema=False`` it is learned by the codebook term ‖sg[z] − e‖² of van den Oord 2017, eq. (3).
    """

    def __init__(self, codebook_size: int, dim: int, ema: bool = True, decay: float = 0.99,
                 commitment: float = 0.25, dead_code_threshold: float = 1.0, eps: float = 1e-5):
        super().__init__()
        self.codebook_size, self.dim, self.ema = codebook_size, dim, ema
        self.decay, self.commitment, self.dead_code_threshold, self.eps = decay, commitment, dead_code_threshold, eps
        embedding = torch.randn(codebook_size, dim)
        if ema:
            self.register_buffer("embedding", embedding)  # (K, D)
            # N_k starts at 1 so that e_k = m_k / N_k holds; unused codes decay under the threshold and are
            # restarted on data at the first training step (what VideoGPT's data initialisation achieves)
            self.register_buffer("cluster_size", torch.ones(codebook_size))  # (K,)  N_k
            self.register_buffer("embed_sum", embedding.clone())  # (K, D)  m_k
        else:
            self.embedding = nn.Parameter(embedding)

    def forward(self, z: torch.Tensor) -> VQOutput:
        if z.shape[-1] != self.dim:
            raise ValueError(f"expected vectors (..., dim={self.dim}) with channels last, got {tuple(z.shape)}")
        with torch.autocast(z.device.type, enabled=False):  # distances and EMA in fp32 even under bf16
            flat = rearrange(z.float(), "... d -> (...) d")  # (N, D)
            e = self.embedding.float()  # (K, D)
            dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ e.t() + e.pow(2).sum(1)[None]  # (N, K) ‖z − e‖²
            idx = dist.argmin(1)  # (N,)
            quantized = F.embedding(idx, e)  # (N, D)
            if self.training and self.ema:
                self._ema_update(flat.detach(), idx)
            commit = F.mse_loss(flat, quantized.detach())  # ‖z − sg[e]‖², van den Oord 2017, eq. (3), third term
            codebook = F.mse_loss(quantized, flat.detach()) if not self.ema else flat.new_zeros(())  # second term
            quantized = flat + (quantized - flat).detach()  # straight-through: forward e, backward identity
        stats = codebook_stats(idx, self.codebook_size)
        losses = {"loss": self.commitment * commit + codebook, "commitment": commit.detach(),
                  "codebook": codebook.detach(), **stats}
        quantized = quantized.view(z.shape).to(z.dtype)  # (..., D)
        return VQOutput(quantized, idx.view(z.shape[:-1]), losses)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor) -> None:
        """EMA codebook update (van den Oord 2017, App. A.1, eqs. (6)–(8)) and dead-code restarts.

        Inputs: flat (N, D) encoder outputs, idx (N,) their codes.
        """
        onehot = F.one_hot(idx, self.codebook_size).float()  # (N, K)
        n_k = onehot.sum(0)  # (K,)  n_i^(t)
        sum_k = onehot.t() @ flat  # (K, D)  Σ_j z_{i,j}^(t)
        self.cluster_size.mul_(self.decay).add_(n_k, alpha=1 - self.decay)  # eq. (6)
        self.embed_sum.mul_(self.decay).add_(sum_k, alpha=1 - self.decay)  # eq. (7)
        total = self.cluster_size.sum()
        # Laplace smoothing keeps e_k finite for codes with N_k ≈ 0 (Sonnet's VectorQuantizerEMA)
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total  # (K,)
        self.embedding.copy_(self.embed_sum / smoothed[:, None])  # eq. (8)  e_k = m_k / N_k
        dead = self.cluster_size < self.dead_code_threshold  # (K,)
        n_dead = int(dead.sum())
        if n_dead:  # restart dead codes on random encoder outputs of this batch
            pick = torch.randint(flat.shape[0], (n_dead,), device=flat.device)
            self.embedding[dead] = flat[pick]
            self.cluster_size[dead] = self.dead_code_threshold
            self.embed_sum[dead] = flat[pick] * self.dead_code_threshold

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices (...,) -> codebook vectors (..., D)."""
        return F.embedding(indices, self.embedding)


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


def vq_tiny(**kw) -> VQVideoAutoencoderConfig:  # tests
    return VQVideoAutoencoderConfig(**{**dict(hidden_channels=16, num_res_blocks=1, codebook_size=32,
                                              embedding_dim=8, norm_groups=4), **kw})


def vq_small(**kw) -> VQVideoAutoencoderConfig:  # cpu/gpu course runs: 16×64×64 -> 8×16×16 codes
    return VQVideoAutoencoderConfig(**kw)


def videogpt_bair(**kw) -> VQVideoAutoencoderConfig:  # defaults of VideoGPT's public code: 16×64×64 -> 4×16×16
    return VQVideoAutoencoderConfig(**{**dict(in_channels=3, hidden_channels=240, num_res_blocks=4,
                                              downsample=(4, 4, 4), codebook_size=2048, embedding_dim=256), **kw})


class AxialAttention(nn.Module):
    """Self-attention along T, along H and along W of a grid, summed (VideoGPT's AxialBlock).

    Inputs: x (B, C, t, h, w). Returns (B, C, t, h, w).
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.attn_t, self.attn_h, self.attn_w = (SelfAttention(dim, heads) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, t, h, w = x.shape
        along_t = self.attn_t(rearrange(x, "b c t h w -> (b h w) t c"))  # (B·h·w, t, C)
        along_h = self.attn_h(rearrange(x, "b c t h w -> (b t w) h c"))  # (B·t·w, h, C)
        along_w = self.attn_w(rearrange(x, "b c t h w -> (b t h) w c"))  # (B·t·h, w, C)
        return (rearrange(along_t, "(b h w) t c -> b c t h w", b=b, h=h)
                + rearrange(along_h, "(b t w) h c -> b c t h w", b=b, t=t)
                + rearrange(along_w, "(b t h) w c -> b c t h w", b=b, t=t))  # (B, C, t, h, w)



class AttentionResBlock(nn.Module):
    """x + [norm, ReLU, 3×3×3 conv to C/2, norm, ReLU, 1×1×1 conv to C, norm, ReLU, axial attention](x).

    Inputs: x (B, C, t, h, w).
    """

    def __init__(self, channels: int, heads: int, groups: int):
        super().__init__()
        self.block = nn.Sequential(
            group_norm(channels, groups), nn.ReLU(), nn.Conv3d(channels, channels // 2, 3, padding=1, bias=False),
            group_norm(channels // 2, groups), nn.ReLU(), nn.Conv3d(channels // 2, channels, 1, bias=False),
            group_norm(channels, groups), nn.ReLU(), AxialAttention(channels, heads))

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
    """

    def __init__(self, cfg: VQVideoAutoencoderConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or VQVideoAutoencoderConfig()
        c, halvings = cfg.hidden_channels, _halvings(cfg.downsample)
        down, up = [], []
        for i in range(max(halvings)):  # stride 2 (kernel 4) on the axes that still need halving, else 1 (kernel 3)
            stride = tuple(2 if k > i else 1 for k in halvings)
            kernel = tuple(4 if s == 2 else 3 for s in stride)
            down += [nn.Conv3d(cfg.in_channels if i == 0 else c, c, kernel, stride, padding=1), nn.ReLU()]
            last = i == 0
            up = [nn.ConvTranspose3d(c, cfg.in_channels if last else c, kernel, stride, padding=1)] + \
                 ([] if last else [nn.ReLU()]) + up
        res = lambda: [AttentionResBlock(c, cfg.heads, cfg.norm_groups) for _ in range(cfg.num_res_blocks)]  # noqa: E731
        self.encoder = nn.Sequential(*down, nn.Conv3d(c, c, 3, padding=1), *res(), group_norm(c, cfg.norm_groups),
                                     nn.ReLU(), nn.Conv3d(c, cfg.embedding_dim, 1))  # ends with VideoGPT's pre_vq_conv
        self.decoder = nn.Sequential(nn.Conv3d(cfg.embedding_dim, c, 1), *res(), group_norm(c, cfg.norm_groups),
                                     nn.ReLU(), *up)
        self.quantizer = VectorQuantizer(cfg.codebook_size, cfg.embedding_dim, ema=cfg.ema, decay=cfg.decay,
                                         commitment=cfg.commitment, dead_code_threshold=cfg.dead_code_threshold)

    def latent_shape(self, t: int, h: int, w: int) -> tuple[int, int, int]:
        """The code grid (t', h', w') for clips of T = t frames of H × W = h × w."""
        return t // self.cfg.downsample[0], h // self.cfg.downsample[1], w // self.cfg.downsample[2]

    def _check_input(self, x: torch.Tensor) -> None:
        check_video(x, "x", channels=self.cfg.in_channels)
        if any(s % d for s, d in zip(x.shape[2:], self.cfg.downsample)):
            raise ValueError(f"expected T, H, W divisible by the downsampling factors (T, H, W) = "
                             f"{tuple(self.cfg.downsample)}, got (B, C, T, H, W) = {tuple(x.shape)}")

    def quantize(self, x: torch.Tensor) -> VQOutput:
        """x (B, C, T, H, W) -> VQOutput with quantized (B, t, h, w, D) and indices (B, t, h, w)."""
        self._check_input(x)
        z = rearrange(self.encoder(x), "b d t h w -> b t h w d")  # (B, t, h, w, D)
        return self.quantizer(z)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, T, H, W) -> code indices (B, t, h, w)."""
        return self.quantize(x).indices

    def decode_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices (B, t, h, w) -> x̂ (B, C, T, H, W)."""
        if indices.ndim != 4 or indices.dtype not in (torch.int64, torch.int32):
            raise ValueError(f"expected integer code indices of shape (B, t, h, w), got {tuple(indices.shape)} "
                             f"of dtype {indices.dtype}")
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.cfg.codebook_size):
            raise ValueError(f"code indices must lie in [0, {self.cfg.codebook_size}), got "
                             f"[{int(indices.min())}, {int(indices.max())}]")
        return self._decode(self.quantizer.lookup(indices.long()))

    def _decode(self, quantized: torch.Tensor) -> torch.Tensor:
        return self.decoder(rearrange(quantized, "b t h w d -> b d t h w"))  # (B, C, T, H, W)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, VQOutput]:
        vq = self.quantize(x)
        return self._decode(vq.quantized), vq  # (B, C, T, H, W), VQOutput

    def loss(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """VideoGPT's objective: MSE / recon_scale + β · commitment (the codebook follows by EMA).

        Returns dict(loss, recon (plain per-pixel MSE), commitment, codebook, perplexity, usage).
        """
        recon, vq = self(x)
        mse = F.mse_loss(recon.float(), x.float())
        return {**vq.losses, "loss": mse / self.cfg.recon_scale + vq.losses["loss"], "recon": mse.detach()}
