"""Generation with a video DiT beyond one fixed clip: text and continuation.

- :class:`TextDiT`: a DiT steered through adaLN by a pooled caption embedding (plus the timestep), with caption
  dropout so that one network is also the unconditional model classifier-free guidance needs.
- :class:`MaskedDiT` and :func:`random_context`: a DiT trained to *continue* given frames (Open-Sora 1.1's masked
  DiT): the given frames enter x_t clean, a mask channel says which they are, and the loss skips them
  (:mod:`vgcourse.diffusion.clean_context`); :func:`vgcourse.diffusion.extend` with ``clean_context=True``
  continues with it. A :class:`TextDiT` with ``cond_channels=1`` does the same under a caption: its condition is a
  :class:`vgcourse.diffusion.Continuation` (caption tokens and frame mask), whose unconditional half keeps the frames.

Sampling from any state, editing and extension (:mod:`vgcourse.diffusion.editing`) take any model, these included;
the data of many shapes is :class:`vgcourse.data.CroppedDigits` with :func:`vgcourse.data.bucket_stream`.
"""
from __future__ import annotations

import torch
from torch import nn

from vgcourse.diffusion.clean_context import Continuation, check_frame_mask
from vgcourse.dit.model import DiT, DiTConfig
from vgcourse.nn.text import CaptionEncoder


# ---- text conditioning through adaLN ------------------------------------------------------------------------
class TextDiT(nn.Module):
    """A DiT whose adaLN conditioning is the timestep embedding plus a projected, pooled caption embedding.

    Inputs (forward): x (B, C, T, H, W); t (B,) long; cond: caption tokens (B, L) long, None (the learned null
    caption, the unconditional model), or, for a model built with ``config.cond_channels == 1``, a
    :class:`Continuation` (tokens or None, and a frame mask (B, 1, T, 1, 1) that enters as an input channel, as
    in :class:`MaskedDiT`). Captions are replaced by the null one with probability ``caption_dropout`` in training
    (Ho & Salimans 2022, §3.2); the frame mask is never dropped. Returns eps (B, C, T, H, W).
    """

    def __init__(self, config: DiTConfig, text_dim: int = 128, text_layers: int = 1, caption_dropout: float = 0.1):
        super().__init__()
        if config.num_classes != 0:
            raise ValueError(f"TextDiT conditions on captions, not labels: expected num_classes=0, "
                             f"got {config.num_classes}")
        if config.cond_channels not in (0, 1):
            raise ValueError(f"a TextDiT takes no input channel or one frame mask: expected cond_channels 0 or 1, "
                             f"got {config.cond_channels}")
        self.dit, self.caption_dropout = DiT(config), caption_dropout
        self.config = config
        self.text = CaptionEncoder(text_dim, text_layers)
        self.text_proj = nn.Linear(text_dim, config.hidden_size)
        self.null_caption = nn.Parameter(torch.randn(text_dim) * 0.02)  # learned "no caption"

    def context(self, tokens: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor:
        """The caption vector (B, hidden_size): projected caption embedding, the null one where dropped."""
        null = self.null_caption.expand(batch, -1)  # (B, text_dim)
        if tokens is None:
            return self.text_proj(null)  # (B, D)
        if tokens.shape[0] != batch:
            raise ValueError(f"expected caption tokens (B={batch}, L), got {tuple(tokens.shape)}")
        text = self.text(tokens.to(device))  # (B, text_dim)
        if self.training and self.caption_dropout > 0:
            drop = torch.rand(batch, device=device) < self.caption_dropout  # (B,)
            text = torch.where(drop[:, None], null, text)
        return self.text_proj(text)  # (B, D)

    def forward(self, x: torch.Tensor, t: torch.Tensor,
                cond: torch.Tensor | Continuation | None = None) -> torch.Tensor:
        tokens, mask = (cond.tokens, cond.mask) if isinstance(cond, Continuation) else (cond, None)
        if mask is not None and self.config.cond_channels != 1:
            raise ValueError("this TextDiT has no frame-mask channel (cond_channels=0): build it with "
                             "cond_channels=1 to continue given frames")
        concat = None if mask is None else mask_channel(mask, x)  # None: the DiT fills the channel with zeros
        return self.dit(x, t, concat=concat, context=self.context(tokens, x.shape[0], x.device))


# ---- continuation: a DiT that sees which frames are given clean ------------------------------------------------
def mask_channel(mask: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The frame mask (B, 1, T, 1, 1) as an input channel beside x (B, C, T, H, W): (B, 1, T, H, W)."""
    check_frame_mask(mask, tuple(x.shape))
    b, _, frames, h, w = x.shape
    return mask.to(x.dtype).expand(b, 1, frames, h, w)


class MaskedDiT(nn.Module):
    """A DiT with one extra input channel, the frame mask: 1 on frames given clean (context), 0 on frames to draw.

    Open-Sora 1.1 ("Masked DiT as Image/Video-to-Video Model") gives such frames timestep 0; here the mask rides
    along as an input channel (the DiT's ``cond_channels``), as chapter 10's U-Net marks its given first frame.
    Inputs (forward): x (B, C, T, H, W); t (B,); mask (B, 1, T, 1, 1), a :class:`Continuation` without a caption
    (what :func:`vgcourse.diffusion.extend` passes), or None (no frame given: unconditional generation). Returns the
    DiT's output for the C video channels.
    """

    def __init__(self, config: DiTConfig):
        super().__init__()
        if config.cond_channels != 1:
            raise ValueError(f"a MaskedDiT takes one mask channel: expected cond_channels=1, "
                             f"got {config.cond_channels}")
        self.dit, self.config = DiT(config), config

    def forward(self, x: torch.Tensor, t: torch.Tensor,
                mask: torch.Tensor | Continuation | None = None) -> torch.Tensor:
        if isinstance(mask, Continuation):
            if mask.tokens is not None:
                raise ValueError("a MaskedDiT reads no caption: use a TextDiT with cond_channels=1")
            mask = mask.mask
        if mask is None:
            return self.dit(x, t)  # the mask channel is zeros: nothing given
        return self.dit(x, t, concat=mask_channel(mask, x))  # (B, C, T, H, W)


def random_context(batch: int, frames: int, max_context: int, p_context: float = 0.5,
                   generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """Training masks for continuation: per clip, with probability ``p_context`` its first k frames are given,
    k uniform in 1..max_context; else none. Returns (B, 1, T, 1, 1) in {0, 1}, for ``diffusion_loss(context=)``
    and as the :class:`MaskedDiT`'s mask. ``generator`` lives on the CPU."""
    if not 0 < max_context < frames or not 0.0 <= p_context <= 1.0:
        raise ValueError(f"expected 0 < max_context < frames={frames} and p_context in [0, 1], "
                         f"got max_context={max_context}, p_context={p_context}")
    given = torch.rand(batch, generator=generator) < p_context  # (B,)
    k = torch.randint(1, max_context + 1, (batch,), generator=generator) * given  # (B,): 0 = none given
    mask = (torch.arange(frames)[None] < k[:, None]).float()  # (B, T)
    return mask.view(batch, 1, frames, 1, 1).to(device)
