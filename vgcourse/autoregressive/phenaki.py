"""Phenaki (Villegas et al. 2023): text-to-video with a masked transformer over causal C-ViViT codes, and videos of
any length by extension.

- **Text conditioning (§2.2).** A caption encoder (Phenaki: a frozen T5-XXL; here any module mapping word tokens
  (B, L) to a vector (B, text_dim), e.g. :class:`vgcourse.nn.CaptionEncoder`) gives a vector
  that a linear map turns into one token placed before the codes; MaskGIT's bidirectional transformer
  (:class:`~vgcourse.autoregressive.maskgit.MaskGIT`) reads it with every code.
- **Classifier-free guidance (Ho & Salimans 2022).** In training the caption is replaced by a learned null token in
  ``p_uncond`` of the clips (Phenaki and MaskGIT-style models drop it 10% of the time); in decoding the logits are
  ℓ̃ = ℓ(∅) + s (ℓ(c) − ℓ(∅)), the guided logits of :meth:`TextMaskGIT.guided_logits`.
- **Extension (§2.3, Fig. 3).** Because the tokenizer is causal in time, the last 1 + k·pt frames of a clip can be
  encoded again on their own (the first of them as a first frame): their k + 1 steps of codes are given, the rest of
  the grid is masked and decoded under the next caption, and the new frames are appended. A sequence of captions,
  one per chunk, is Phenaki's "story" (a prompt sequence).
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from vgcourse.autoregressive.maskgit import MaskGIT, MaskGITConfig


class TextMaskGIT(MaskGIT):
    """MaskGIT whose condition y is a caption's word tokens (B, L) (None: no caption), with a learned null token.

    Inputs: config (``num_classes`` must be 0), text_encoder: a module (B, L) long -> (B, text_dim), trained with
    the rest; p_uncond: the fraction of training clips whose caption is dropped (replaced by the null token).
    """

    def __init__(self, config: MaskGITConfig, text_encoder: nn.Module, text_dim: int, p_uncond: float = 0.1):
        if config.num_classes:
            raise ValueError(f"a TextMaskGIT is conditioned on captions, not classes: got num_classes="
                             f"{config.num_classes}, expected 0")
        if not 0.0 <= p_uncond < 1.0:
            raise ValueError(f"expected p_uncond in [0, 1), got {p_uncond}")
        super().__init__(config)
        self.text = text_encoder
        self.text_proj = nn.Linear(text_dim, config.n_embd)  # the caption vector -> one token
        self.null = nn.Parameter(torch.zeros(config.n_embd))  # the token of "no caption"
        self.p_uncond = p_uncond
        nn.init.trunc_normal_(self.text_proj.weight, std=0.02, a=-0.04, b=0.04)
        nn.init.zeros_(self.text_proj.bias)

    def prefix(self, ids: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """The caption token (B, 1, D): the projected caption vector, or the null token for y=None; in training the
        caption of each clip is dropped with probability ``p_uncond``."""
        b = ids.shape[0]
        null = self.null.expand(b, 1, -1)  # (B, 1, D)
        if y is None:
            return null
        if y.ndim != 2 or y.shape[0] != b or y.is_floating_point():
            raise ValueError(f"expected caption tokens y of shape (B={b}, L) as integers, got {tuple(y.shape)} "
                             f"{y.dtype}")
        token = self.text_proj(self.text(y))[:, None]  # (B, 1, D)
        if self.training and self.p_uncond > 0:
            drop = torch.rand(b, 1, 1, device=ids.device) < self.p_uncond  # (B, 1, 1)
            token = torch.where(drop, null.to(token.dtype), token)
        return token

    def guided_logits(self, ids: torch.Tensor, y: torch.Tensor, guidance: float) -> torch.Tensor:
        """ℓ(∅) + s (ℓ(c) − ℓ(∅)) (Ho & Salimans 2022, eq. (6), on logits), both halves in one batch: (B, N, K)."""
        if y is None:
            raise ValueError("classifier-free guidance needs captions y (B, L); with y=None use guidance=1.0")
        b = ids.shape[0]
        prefix = torch.cat([self.prefix(ids, y), self.prefix(ids, None)])  # (2B, 1, D)
        cond, uncond = self.transformer(torch.cat([ids, ids]), prefix).float().split(b)  # (B, N, K) each
        return uncond + guidance * (cond - uncond)


@torch.no_grad()
def text_to_video(model: MaskGIT, tokenizer: nn.Module, captions: torch.Tensor, steps: int = 12,
                  guidance: float = 1.0, temperature: float = 1.0, choice_temperature: float = 4.5,
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """Captions (B, L) -> clips (B, C, 1 + (T − 1)·pt, H, W) in [-1, 1]: ``steps`` decoding steps, then the
    tokenizer's decoder."""
    codes = model.generate(y=captions, steps=steps, guidance=guidance, temperature=temperature,
                           choice_temperature=choice_temperature, generator=generator)  # (B, T, h, w)
    return tokenizer.decode_indices(codes).clamp(-1, 1)  # the decoder's linear output, clipped to pixel range


@torch.no_grad()
def extend(model: MaskGIT, tokenizer: nn.Module, video: torch.Tensor, captions: torch.Tensor | Sequence[torch.Tensor],
           frames: int, context: int, steps: int = 12, guidance: float = 1.0, temperature: float = 1.0,
           choice_temperature: float = 4.5, generator: torch.Generator | None = None) -> tuple[torch.Tensor, list[int]]:
    """Phenaki's extension (§2.3): continue clips (B, C, T0, H, W) to ``frames`` frames, chunk by chunk.

    Each chunk: the last ``context`` = 1 + k·pt frames are encoded again on their own (causal C-ViViT: the first of
    them becomes a first frame), their k + 1 steps of codes are fixed, the other steps of the model's grid are
    decoded under the chunk's caption, and the decoded frames after the context are appended.

    Inputs: captions: tokens (B, L) for every chunk, or a sequence of them, one per chunk (a prompt sequence; the
    last one serves any further chunk). Returns (video (B, C, frames, H, W), seams: the index of each chunk's first
    new frame).
    """
    pt, grid = tokenizer.cfg.temporal_patch, model.config.grid
    window = tokenizer.frames_for(grid[0])  # frames of one grid of codes
    if video.ndim != 5:
        raise ValueError(f"expected clips of shape (B, C, T, H, W), got {tuple(video.shape)}")
    if (context - 1) % pt or not 1 <= context < window or context > video.shape[2]:
        raise ValueError(f"expected context = 1 + k·{pt} frames, fewer than the window of {window} and at most the "
                         f"clip's {video.shape[2]}, got context={context}")
    chunks = [captions] if isinstance(captions, torch.Tensor) else list(captions)
    if not chunks:
        raise ValueError("expected caption tokens (B, L) or a non-empty sequence of them")
    known_steps = 1 + (context - 1) // pt
    b, device = video.shape[0], video.device
    known = torch.zeros(b, *grid, dtype=torch.bool, device=device)
    known[:, :known_steps] = True  # (B, T, h, w): the context's codes
    out, seams, i = video, [], 0
    while out.shape[2] < frames:
        given = torch.zeros(b, *grid, dtype=torch.long, device=device)
        given[:, :known_steps] = tokenizer.encode(out[:, :, -context:])  # (B, k + 1, h, w), encoded again
        y = chunks[min(i, len(chunks) - 1)]
        codes = model.generate(y=y, given=given, known=known, steps=steps, guidance=guidance, temperature=temperature,
                               choice_temperature=choice_temperature, generator=generator)
        new = tokenizer.decode_indices(codes)[:, :, context:].clamp(-1, 1)  # (B, C, window − context, H, W)
        seams.append(out.shape[2])
        out, i = torch.cat([out, new.to(out.dtype)], dim=2), i + 1
    return out[:, :, :frames], seams
