"""The conditional denoiser of chapter 10: a video U-Net or a DiT conditioned on a caption, a camera move and frames.

The conditions themselves (:class:`vgcourse.diffusion.conditioning.Conditions`, dropping them, the concatenated
channels) are the diffusion family's; the denoiser lives here, with the later of the two backbones it builds on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from vgcourse.data.shapes import PANS
from vgcourse.diffusion.conditioning import Conditions, concat_channels, condition_channels
from vgcourse.diffusion.unet import VideoUNet, VideoUNetConfig
from vgcourse.dit.model import DiT, DiTConfig
from vgcourse.nn.text import CaptionEncoder


@dataclass
class ConditionalDenoiserConfig:
    """Sizes of a :class:`ConditionalDenoiser`: its backbone, a U-Net or a DiT (in_channels = the video's; give
    exactly one), and its caption encoder.

    ``frozen_text`` keeps the caption encoder at its (random) initialisation, untrained, as Gen-1 keeps CLIP and
    Imagen keeps T5 frozen (pretrained there). Trained jointly, the encoder can learn to shrink the words the U-Net
    does not use (chapter 10 measures it for the direction word); frozen, it keeps every word apart.
    """

    unet: VideoUNetConfig | None = None
    text_dim: int = 128
    text_layers: int = 1
    text_heads: int = 4
    frozen_text: bool = False
    dit: DiTConfig | None = None  # a DiT backbone instead (chapter 11); num_classes and cond_channels are set here

    def __post_init__(self):
        if (self.unet is None) == (self.dit is None):
            raise ValueError("give exactly one backbone: unet=VideoUNetConfig(...) or dit=DiTConfig(...)")

    @property
    def channels(self) -> int:
        """The video's channels C."""
        return self.unet.in_channels if self.unet is not None else self.dit.in_channels


class ConditionalDenoiser(nn.Module):
    """A video U-Net (or DiT) conditioned on a caption and a camera move (vectors) and on concatenated frames (first
    frame, structure, motion brush), each optional per clip.

    The vector condition joins the timestep embedding: the U-Net's ResBlocks scale and shift by it; the DiT's adaLN
    scales, shifts and gates every attention and MLP input by it (Peebles & Xie 2023, §3.2). The frames enter
    with x: the U-Net's first convolution, the DiT's patch embedding.

    Inputs (forward): x (B, C, T, H, W) noisy videos; t (B,) timesteps; cond: :class:`Conditions` or None
    (None: nothing given, the unconditional model). Returns eps (B, C, T, H, W).
    """

    def __init__(self, config: ConditionalDenoiserConfig):
        super().__init__()
        self.config = config
        c = config.channels
        self.unet = self.dit = self.context_proj = None
        if config.unet is not None:
            self.unet = VideoUNet(replace(config.unet, cond_dim=config.text_dim, cond_channels=concat_channels(c),
                                          num_classes=None))
        else:
            self.dit = DiT(replace(config.dit, num_classes=0, cond_channels=concat_channels(c)))
            self.context_proj = nn.Linear(config.text_dim, config.dit.hidden_size)  # caption + camera -> adaLN
        self.text = CaptionEncoder(config.text_dim, config.text_layers, config.text_heads)
        if config.frozen_text:
            self.text.requires_grad_(False)  # a fixed map from words to a vector; the null caption still learns
        self.null_caption = nn.Parameter(torch.zeros(config.text_dim))  # learned: "no caption"
        self.camera = nn.Embedding(len(PANS) + 1, config.text_dim)  # index len(PANS): "no camera given"
        nn.init.normal_(self.null_caption, std=0.02)

    def context(self, cond: Conditions | None, batch: int, device: torch.device) -> torch.Tensor:
        """The vector condition (B, D): caption embedding (or the null one) + camera embedding (or the null one)."""
        null_cam = torch.full((batch,), len(PANS), device=device, dtype=torch.long)
        if cond is None:
            return self.null_caption.expand(batch, -1) + self.camera(null_cam)  # (B, D)
        if cond.caption is not None:
            text = torch.where(cond.is_given("caption")[:, None], self.text(cond.caption),
                               self.null_caption.expand(batch, -1))  # (B, D)
        else:
            text = self.null_caption.expand(batch, -1)
        cam = null_cam if cond.camera is None else torch.where(cond.is_given("camera"), cond.camera.long(), null_cam)
        return text + self.camera(cam)  # (B, D)

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: Conditions | None = None) -> torch.Tensor:
        if cond is not None and not isinstance(cond, Conditions):
            raise TypeError(f"expected cond as a Conditions (or None), got {type(cond).__name__}")
        context = self.context(cond, x.shape[0], x.device)  # (B, D)
        concat = condition_channels(cond, tuple(x.shape), x.device)  # (B, C + 4, T, H, W)
        if self.dit is not None:
            return self.dit(x, t, concat=concat, context=self.context_proj(context))  # (B, C, T, H, W)
        return self.unet(x, t, context=context, concat=concat)  # (B, C, T, H, W)
