"""VideoGPT's two stages joined (Yan et al. 2021, §3): a trained tokenizer's codes as the GPT prior's data, the prior's
training loss and sampling, and the class label of a moving-digits clip.

- :func:`load_tokenizer_if_shipped`: the course's trained tokenizer from ``data/weights`` (sha256-checked), or None
  when no file ships, so that a chapter trains its own.
- :func:`encode_dataset`: clips to code grids once, on the device; :class:`TokenBatches` then draws training batches
  of codes by step (the loop's ``batch_fn``), so the prior never runs the tokenizer while it trains.
- :func:`prior_loss`: the loop's ``loss_fn``, the next-code cross-entropy in nats (and bits) per code.
- :func:`sample_videos`: codes from the prior (KV cache), decoded by the tokenizer, timed per clip.
- :func:`pair_label` / :func:`pair_digits`: the class of a two-digit clip is its unordered pair of digit classes
  {a, b}, one of the 55 with a ≤ b (VideoGPT conditions on a class the same way, by a learned start token).
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vgcourse.autoregressive.gpt import GPT, NO_CLASS, GPTConfig
from vgcourse.checkpoint import load_shipped
from vgcourse.paths import data_dir
from vgcourse.tokenizers import VQVideoAutoencoder, load_tokenizer

TOKENIZER_NAME = "tokenizer_moving_digits_vq"
DIGIT_CLASSES = 10
NUM_PAIRS = DIGIT_CLASSES * (DIGIT_CLASSES + 1) // 2  # 55 unordered pairs {a, b}, a ≤ b


# ---- the class of a two-digit clip ---------------------------------------------------------------------------------
def pair_label(classes: torch.Tensor) -> torch.Tensor:
    """Digit classes (B, 2) -> the id (B,) of the unordered pair {a, b} in [0, 55): pairs ordered (0,0), (0,1), …,
    (0,9), (1,1), …, (9,9), i.e. id = 10a − a(a−1)/2 + (b − a) with a ≤ b."""
    if classes.ndim != 2 or classes.shape[1] != 2 or classes.is_floating_point():
        raise ValueError(f"expected digit classes of shape (B, 2) as integers, got {tuple(classes.shape)} "
                         f"{classes.dtype}")
    if classes.numel() and (classes.min() < 0 or classes.max() >= DIGIT_CLASSES):
        raise ValueError(f"expected digit classes in [0, {DIGIT_CLASSES}), got [{classes.min()}, {classes.max()}]")
    a, b = classes.min(1).values.long(), classes.max(1).values.long()
    return DIGIT_CLASSES * a - a * (a - 1) // 2 + (b - a)


def pair_digits(labels: torch.Tensor) -> torch.Tensor:
    """Pair ids (B,) in [0, 55) -> digit classes (B, 2), a ≤ b: the inverse of :func:`pair_label`."""
    if labels.ndim != 1 or labels.is_floating_point() or (labels.numel() and
                                                          (labels.min() < 0 or labels.max() >= NUM_PAIRS)):
        raise ValueError(f"expected pair ids of shape (B,) in [0, {NUM_PAIRS}), got {tuple(labels.shape)} "
                         f"{labels.dtype}")
    table = torch.tensor([(a, b) for a in range(DIGIT_CLASSES) for b in range(a, DIGIT_CLASSES)],
                         device=labels.device)  # (55, 2)
    return table[labels.long()]


# ---- the prior's size for moving digits ----------------------------------------------------------------------------
def videogpt_digits(**kw) -> GPTConfig:
    """The course's prior: VideoGPT's BAIR prior size (8 layers × 512, 8 heads, ≈ 26M parameters) over the 4 × 8 × 8
    grid of 512 codes that the course's 3D tokenizer makes of a 16 × 32 × 32 clip, conditioned on the digit pair."""
    return GPTConfig(**{**dict(vocab_size=512, grid=(4, 8, 8), n_layer=8, n_head=8, n_embd=512,
                               num_classes=NUM_PAIRS), **kw})


# ---- the tokenizer and its codes -------------------------------------------------------------------------------------
def load_tokenizer_if_shipped(name: str = TOKENIZER_NAME, device: torch.device | str = "cpu"
                              ) -> VQVideoAutoencoder | None:
    """The shipped tokenizer ``data/weights/<name>.pt`` in eval mode, its sha256 checked against SHA256SUMS; None when
    the file does not ship. A file that is there but unlisted or altered raises
    :class:`~vgcourse.train.CheckpointError` (never a silent fallback to training)."""
    path = Path(data_dir()) / "weights" / f"{name}.pt"
    if not path.is_file():
        return None
    return load_tokenizer(load_shipped(name)).to(device).eval()


@torch.no_grad()
def encode_dataset(tokenizer: VQVideoAutoencoder, dataset, n: int, chunk: int = 512, seed: int = 0,
                   split: str = "train", device: torch.device | str = "cpu"
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw n clips of ``dataset`` (chunk by chunk, seeds seed·10⁶ + i) and encode them once.

    Returns codes (n, t, h, w) as int16 (K ≤ 32,767) and pair labels (n,) long (:func:`pair_label`), on ``device``.
    Runs under bf16 autocast on CUDA; the quantizer's nearest-code search is in fp32 either way."""
    if tokenizer.cfg.codebook_size > torch.iinfo(torch.int16).max:
        raise ValueError(f"codes are stored as int16: expected at most 32,767 codes, got {tokenizer.cfg.codebook_size}")
    device = torch.device(device)
    tokenizer = tokenizer.eval()
    codes, labels = [], []
    for i, start in enumerate(range(0, n, chunk)):
        batch = dataset.batch(min(chunk, n - start), seed=seed * 1_000_000 + i, device=device, split=split)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            codes.append(tokenizer.encode(batch.video).to(torch.int16))  # (b, t, h, w)
        labels.append(pair_label(batch.labels["classes"].to(device)))
    return torch.cat(codes), torch.cat(labels)


class TokenBatches:
    """The loop's ``batch_fn``: batch i is ``batch_size`` random rows of an encoded set, drawn with a generator
    seeded by (seed, i), so a resumed run sees the same batches.

    Inputs: codes (N, t, h, w) integers, labels (N,) long; ``p_uncond``: the fraction of labels replaced by
    :data:`~vgcourse.autoregressive.gpt.NO_CLASS` (the label dropout of classifier-free guidance, Ho & Salimans
    2022, §3.2). Returns (codes (B, t, h, w) long, labels (B,) long).
    """

    def __init__(self, codes: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int = 0,
                 p_uncond: float = 0.0):
        if codes.ndim != 4 or codes.is_floating_point() or labels.shape != (codes.shape[0],):
            raise ValueError(f"expected codes (N, t, h, w) as integers and labels (N,), got {tuple(codes.shape)} "
                             f"{codes.dtype} and {tuple(labels.shape)}")
        if labels.device != codes.device:
            raise ValueError(f"codes and labels must live on one device (one index draws both), got codes on "
                             f"{codes.device} and labels on {labels.device}")
        if batch_size < 1:
            raise ValueError(f"expected a positive batch size, got {batch_size}")
        if not 0.0 <= p_uncond < 1.0:
            raise ValueError(f"expected a label dropout p_uncond in [0, 1), got {p_uncond}")
        self.codes, self.labels, self.batch_size, self.seed = codes, labels, batch_size, seed
        self.p_uncond = p_uncond

    def __call__(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        g = torch.Generator(device=self.codes.device).manual_seed(self.seed * 1_000_003 + step)
        idx = torch.randint(self.codes.shape[0], (self.batch_size,), generator=g, device=self.codes.device)
        labels = self.labels[idx].long()  # (B,)
        if self.p_uncond:
            drop = torch.rand(self.batch_size, generator=g, device=self.codes.device) < self.p_uncond
            labels = labels.masked_fill(drop, NO_CLASS)
        return self.codes[idx].long(), labels  # (B, t, h, w), (B,)


# ---- training and sampling -------------------------------------------------------------------------------------------
def prior_loss(model: GPT, batch: tuple[torch.Tensor, torch.Tensor | None]) -> dict[str, torch.Tensor]:
    """The loop's ``loss_fn``: ``loss`` = −(1/L) Σ_i log p(x_i | x_<i, y) in nats per code (VideoGPT §3.2), and the
    same in bits per code. batch: (codes (B, t, h, w), labels (B,) or None)."""
    codes, y = batch
    _, loss = model(codes, y if model.config.num_classes else None)
    return {"loss": loss, "bits_per_token": loss.detach() / math.log(2)}


@torch.no_grad()
def heldout_bits_per_clip(model: nn.Module, codes: torch.Tensor, labels: torch.Tensor | None,
                          batch: int = 256) -> torch.Tensor:
    """Each held-out clip's mean negative log-likelihood, −(1/L) Σᵢ log₂ p(xᵢ | x₍<ᵢ₎, y), in bits per code: (N,)
    on the CPU, so that two models read on the same clips can be compared clip by clip (``mean_se`` of the
    differences). ``model``: a :class:`GPT` or anything with its ``forward(codes, y) -> (logits, loss)`` and
    ``config.num_classes``; codes (N, t, h, w), labels (N,) or None."""
    model = model.eval()
    device_type = codes.device.type
    out = []
    for i in range(0, codes.shape[0], batch):
        chunk = codes[i:i + batch].long()
        y = None if labels is None or not model.config.num_classes else labels[i:i + batch]
        with torch.autocast(device_type, dtype=torch.bfloat16, enabled=device_type == "cuda"):
            logits, _ = model(chunk, y)  # (b, L, K)
        nll = F.cross_entropy(logits.float().flatten(0, 1), chunk.flatten(), reduction="none")  # (b·L,) nats
        out.append(nll.view(chunk.shape[0], -1).mean(1).cpu() / math.log(2))
    return torch.cat(out)


@torch.no_grad()
def heldout_bits(model: nn.Module, codes: torch.Tensor, labels: torch.Tensor | None, batch: int = 256) -> float:
    """The prior's mean negative log-likelihood of held-out codes (N, t, h, w), in bits per code: the mean of
    :func:`heldout_bits_per_clip` (every clip has the same L codes)."""
    return heldout_bits_per_clip(model, codes, labels, batch).mean().item()


@torch.no_grad()
def sample_videos(model: GPT, tokenizer: VQVideoAutoencoder, n: int | None = None, y: torch.Tensor | None = None,
                  prefix: torch.Tensor | None = None, batch: int = 512, temperature: float = 1.0,
                  top_k: int | None = None, seed: int = 0, use_cache: bool = True, guidance: float = 1.0
                  ) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Draw clips: codes from the prior (:meth:`GPT.generate`, ``batch`` clips at a time), decoded by the tokenizer.

    Inputs: n clips, or labels y (N,), or a prefix (N, P) of given codes (e.g. the first latent frame's h·w codes);
    ``guidance`` s ≠ 1: classifier-free guidance towards the labels (:meth:`GPT.generate`).
    Returns videos (N, C, T, H, W) in [-1, 1] (fp32), codes (N, t, h, w), and the seconds per clip of drawing the
    codes (the decoder's time left out), synchronised on CUDA. bf16 autocast on CUDA.
    """
    model = model.eval()
    tokenizer = tokenizer.eval()
    device = model.head.weight.device
    total = [z.shape[0] for z in (y, prefix) if z is not None] or [n]
    if total[0] is None or total[0] < 1:
        raise ValueError(f"give a positive number of clips n, labels y or a prefix, got n={n}")
    count = total[0]
    g = torch.Generator(device=device).manual_seed(seed)
    videos, codes, seconds = [], [], 0.0
    for start in range(0, count, batch):
        sl = slice(start, min(count, start + batch))
        kw = dict(n=sl.stop - sl.start if y is None and prefix is None else None,
                  y=None if y is None else y[sl].to(device), prefix=None if prefix is None else prefix[sl].to(device))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            started = time.perf_counter()
            c = model.generate(**kw, temperature=temperature, top_k=top_k, generator=g, use_cache=use_cache,
                               guidance=guidance)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds += time.perf_counter() - started
            videos.append(tokenizer.decode_indices(c).float().clamp(-1, 1))
        codes.append(c)
    return torch.cat(videos), torch.cat(codes), seconds / count
