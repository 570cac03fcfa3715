"""Vector quantization: the discrete bottleneck every tokenizer of the course shares (VQ-VAE, C-ViViT).

Each vector z of an encoder's output is replaced by its nearest codebook vector e_k, k = argmin_j ‖z − e_j‖²
(van den Oord et al. 2017, "Neural Discrete Representation Learning", eq. (1)–(2)); the code index k is the token.

- Gradients pass the non-differentiable argmin with the straight-through estimator: the forward value is e_k,
  the backward is the identity to z (van den Oord 2017, §3.2).
- The loss of van den Oord 2017, eq. (3), is ‖sg[z] − e‖² (the codebook term) + β‖z − sg[e]‖² (the commitment
  term). With ``ema=True`` the codebook is not learned by gradient but follows exponential moving averages of the
  encoder outputs assigned to each code (App. A.1, eqs. (6)–(8); Razavi et al. 2019, VQ-VAE-2), so only the
  commitment term remains in the loss.
- Codes that fall out of use ("dead codes": an EMA count N_k under ``dead_code_threshold``) are restarted on
  random encoder outputs of the current batch, as VideoGPT's code does (Dhariwal et al. 2020, Jukebox, call
  it random restarts). The restart is written without a host sync (a ``torch.where`` over the whole codebook), so
  that ``torch.compile`` traces a training step as one graph.

Every forward also reports the batch's codebook ``usage`` (the fraction of codes used) and ``perplexity``
exp(H(p)) of the code histogram p (van den Oord 2017 report it; K when every code is used equally, 1 when one code
takes everything), and how many codes were ``restarted``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from vgcourse.video import check_video


class VQOutput(NamedTuple):
    """What :class:`VectorQuantizer` returns: straight-through quantized vectors, code indices, and losses/stats."""

    quantized: torch.Tensor  # (..., D), forward value = codebook vectors, gradient = identity to the input
    indices: torch.Tensor  # (...,) long
    losses: dict[str, torch.Tensor]  # loss, commitment, codebook, perplexity, usage, restarted


def code_counts(indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """How often each code occurs: indices (...,) -> counts (K,) float, a fixed shape (``torch.compile`` friendly)."""
    flat = indices.reshape(-1).long()
    return torch.zeros(codebook_size, device=flat.device).index_add_(0, flat, torch.ones_like(flat, dtype=torch.float))


def check_input_video(x: torch.Tensor, channels: int) -> None:
    """Raise unless x is a video (B, C, T, H, W) with ``channels`` channels in [-1, 1]. Under ``torch.compile`` only
    the shape is checked: reading the values back would stop the graph (a host sync)."""
    if torch.compiler.is_compiling():
        if x.ndim != 5 or x.shape[1] != channels:
            raise ValueError(f"expected x of shape (B, C={channels}, T, H, W), got {tuple(x.shape)}")
        return
    check_video(x, "x", channels=channels)


def check_indices(indices: torch.Tensor, codebook_size: int) -> None:
    """Raise unless ``indices`` is an integer grid (B, t, h, w) of codes in [0, codebook_size)."""
    if indices.ndim != 4 or indices.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"expected integer code indices of shape (B, t, h, w), got {tuple(indices.shape)} "
                         f"of dtype {indices.dtype}")
    if indices.numel() and (indices.min() < 0 or indices.max() >= codebook_size):
        raise ValueError(f"code indices must lie in [0, {codebook_size}), got "
                         f"[{int(indices.min())}, {int(indices.max())}]")


def usage_and_perplexity(counts: torch.Tensor) -> dict[str, torch.Tensor]:
    """Codebook usage (fraction of codes with a count) and perplexity exp(−Σ p log p) of the histogram ``counts``.

    counts (K,) -> dict(usage, perplexity) of () tensors.
    """
    p = counts / counts.sum().clamp(min=1)
    entropy = -(p * torch.log(p.clamp(min=1e-12))).sum()
    return {"usage": (counts > 0).float().mean(), "perplexity": entropy.exp()}


class VectorQuantizer(nn.Module):
    """Nearest-neighbour quantization of vectors (..., dim) against a codebook of ``codebook_size`` vectors.

    Inputs: z (..., dim), channels last (rearrange a conv grid (B, D, t, h, w) to (B, t, h, w, D) first).
    With ``ema=True`` the codebook is updated in training-mode forwards by EMA (decay ``decay``) and dead codes are
    restarted; with ``ema=False`` it is learned by the codebook term ‖sg[z] − e‖² of van den Oord 2017, eq. (3).
    Returns a :class:`VQOutput`.
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
            counts = code_counts(idx, self.codebook_size)  # (K,)
            restarted = flat.new_zeros(())
            if self.training and self.ema:
                restarted = self._ema_update(flat.detach(), idx, counts)
            commit = F.mse_loss(flat, quantized.detach())  # ‖z − sg[e]‖², van den Oord 2017, eq. (3), third term
            codebook = F.mse_loss(quantized, flat.detach()) if not self.ema else flat.new_zeros(())  # second term
            quantized = flat + (quantized - flat).detach()  # straight-through: forward e, backward identity
        losses = {"loss": self.commitment * commit + codebook, "commitment": commit.detach(),
                  "codebook": codebook.detach(), **usage_and_perplexity(counts), "restarted": restarted}
        quantized = quantized.view(z.shape).to(z.dtype)  # (..., D)
        return VQOutput(quantized, idx.view(z.shape[:-1]), losses)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, idx: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        """EMA codebook update (van den Oord 2017, App. A.1, eqs. (6)–(8)) and dead-code restarts.

        Inputs: flat (N, D) encoder outputs, idx (N,) their codes, counts (K,) codes' counts in this batch.
        Returns the number of codes restarted (a 0-d tensor).
        """
        sum_k = torch.zeros_like(self.embed_sum).index_add_(0, idx, flat)  # (K, D)  Σ_j z_{i,j}^(t)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)  # eq. (6)  N_i
        self.embed_sum.mul_(self.decay).add_(sum_k, alpha=1 - self.decay)  # eq. (7)  m_i
        total = self.cluster_size.sum()
        # Laplace smoothing keeps e_k finite for codes with N_k ≈ 0 (Sonnet's VectorQuantizerEMA)
        smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total  # (K,)
        self.embedding.copy_(self.embed_sum / smoothed[:, None])  # eq. (8)  e_i = m_i / N_i
        # restarts: every dead code jumps onto a random encoder output of this batch (no host sync)
        dead = self.cluster_size < self.dead_code_threshold  # (K,)
        candidates = flat[torch.randint(flat.shape[0], (self.codebook_size,), device=flat.device)]  # (K, D)
        self.embedding.copy_(torch.where(dead[:, None], candidates, self.embedding))
        self.embed_sum.copy_(torch.where(dead[:, None], candidates * self.dead_code_threshold, self.embed_sum))
        self.cluster_size.copy_(torch.where(dead, torch.full_like(self.cluster_size, self.dead_code_threshold),
                                            self.cluster_size))
        return dead.sum().float()

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code indices (...,) -> codebook vectors (..., D)."""
        return F.embedding(indices, self.embedding)


def vq_loss(model: nn.Module, x: torch.Tensor, recon_scale: float | None = None) -> dict[str, torch.Tensor]:
    """VideoGPT's objective: ‖x − x̂‖² / recon_scale + ‖sg[z] − e‖² + β‖z − sg[e]‖² (van den Oord et al. 2017, eq. (3)).

    The codebook term ‖sg[z] − e‖² enters only with ``ema=False``; with EMA it is 0 and the codebook moves by its
    running averages instead.

    Inputs: a tokenizer whose forward returns (x̂, :class:`VQOutput`) and whose ``cfg`` holds ``recon_scale``
    (:class:`~vgcourse.tokenizers.vq.VQVideoAutoencoder`, :class:`~vgcourse.tokenizers.cvivit.CViViT`, or their
    ``torch.compile`` wrappers: the loss calls the forward, so the compiled graph runs), and videos
    x (B, C, T, H, W) in [-1, 1]. Returns a dict of () tensors: loss, recon (the plain per-pixel MSE), psnr (of the
    batch, dB), commitment, codebook, perplexity, usage, restarted: every number a training log needs.
    """
    recon, vq = model(x)
    scale = recon_scale if recon_scale is not None else model.cfg.recon_scale
    mse = F.mse_loss(recon.float(), x.float())
    psnr = 10 * torch.log10(4.0 / mse.detach().clamp(min=1e-12))  # data range 2: [-1, 1]
    return {**vq.losses, "loss": mse / scale + vq.losses["loss"], "recon": mse.detach(), "psnr": psnr}
