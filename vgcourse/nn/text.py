"""A small caption encoder: the text side of every text-conditioned model in the course (chapter 07's Phenaki
MaskGIT, chapter 10's conditional denoiser, chapter 12's text DiT)."""

from __future__ import annotations

import torch
from einops import repeat
from torch import nn

from vgcourse.data.shapes import VOCAB
from vgcourse.nn.transformer import Block


class CaptionEncoder(nn.Module):
    """A small text encoder: word embeddings, ``layers`` pre-LN transformer blocks (:class:`vgcourse.nn.Block`;
    0: a bag of words) in which words attend to words only, then a masked mean pool.

    Inputs: tokens (B, L) long over :data:`vgcourse.data.VOCAB`, 0 = padding. Returns (B, dim).
    """

    def __init__(self, dim: int = 128, layers: int = 1, heads: int = 4, vocab_size: int = len(VOCAB),
                 max_len: int = 16):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, dim, padding_idx=0)
        self.position = nn.Parameter(torch.zeros(max_len, dim))
        self.layers = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        nn.init.normal_(self.position, std=0.02)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 2 or tokens.is_floating_point() or tokens.shape[1] > self.position.shape[0]:
            raise ValueError(f"expected tokens (B, L ≤ {self.position.shape[0]}) as integers, "
                             f"got {tuple(tokens.shape)} {tokens.dtype}")
        words = tokens != 0  # (B, L)
        x = self.embed(tokens) + self.position[:tokens.shape[1]]  # (B, L, D)
        if self.layers:
            mask = repeat(words, "b l -> b 1 q l", q=tokens.shape[1])  # (B, 1, L, L): attend to words only
            for layer in self.layers:
                x = layer(x, mask=mask)  # (B, L, D)
        w = words.to(x.dtype)[..., None]  # (B, L, 1)
        pooled = (x * w).sum(1) / w.sum(1).clamp(min=1)  # (B, D): the mean over the caption's words
        return self.out(pooled)  # (B, D)
