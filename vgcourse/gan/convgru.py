"""The convolutional GRU (Ballas, Yao, Pal & Courville 2016, "Delving Deeper into Convolutional Networks for
Learning Video Representations", eq. (3)): a GRU whose state is a feature map and whose products are
convolutions, so each pixel's state mixes with its neighbours' as it steps through time.

    r_t = σ(W_r * x_t + U_r * h_{t−1})                reset gate
    u_t = σ(W_u * x_t + U_u * h_{t−1})                update gate
    h̃_t = tanh(W * x_t + U * (r_t ⊙ h_{t−1}))         candidate
    h_t = (1 − u_t) ⊙ h_{t−1} + u_t ⊙ h̃_t

DVD-GAN's generator runs one at every resolution, unrolled once per frame (Clark et al. 2019, §3.2); the SAVP-style
predictor of :mod:`vgcourse.gan.video_prediction` keeps its memory of the past frames in one.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import nn


class ConvGRUCell(nn.Module):
    """One step: x (B, C_in, H, W) and h (B, C, H, W) -> the next state h (B, C, H, W) (Ballas et al. 2016, eq. (3)).

    The gates' two products W * x + U * h are one convolution of the concatenation [x, h] (the same map).
    ``update_bias`` starts the update gate at σ(bias): a negative bias makes the state change slowly, so that a GRU
    fed the same input at every frame (DVD-GAN's first level) still changes over many frames instead of settling
    on its fixed point within a few."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 3, update_bias: float = 0.0):
        super().__init__()
        self.channels = channels
        pad = kernel_size // 2
        self.gates = nn.Conv2d(in_channels + channels, 2 * channels, kernel_size, padding=pad)  # r and u
        self.candidate = nn.Conv2d(in_channels + channels, channels, kernel_size, padding=pad)
        with torch.no_grad():
            self.gates.bias[channels:] += update_bias

    def forward(self, x: torch.Tensor, h: torch.Tensor | None = None) -> torch.Tensor:
        if h is None:
            h = x.new_zeros(x.shape[0], self.channels, *x.shape[2:])
        r, u = torch.sigmoid(self.gates(torch.cat([x, h], 1))).chunk(2, dim=1)
        candidate = torch.tanh(self.candidate(torch.cat([x, r * h], 1)))
        return (1 - u) * h + u * candidate


class ConvGRU(nn.Module):
    """A ConvGRU unrolled over the frames of a clip: (B, C_in, T, H, W) -> the states h_1..h_T (B, C, T, H, W)."""

    def __init__(self, in_channels: int, channels: int, kernel_size: int = 3, update_bias: float = 0.0):
        super().__init__()
        self.cell = ConvGRUCell(in_channels, channels, kernel_size, update_bias)

    def forward(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> torch.Tensor:
        h, states = h0, []
        for t in range(x.shape[2]):
            h = self.cell(x[:, :, t], h)
            states.append(h)
        return torch.stack(states, dim=2)


def frames_to_batch(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) -> (B·T, C, H, W): every frame through a 2D layer on its own."""
    return rearrange(x, "b c t h w -> (b t) c h w")


def batch_to_frames(x: torch.Tensor, batch: int) -> torch.Tensor:
    """(B·T, C, H, W) -> (B, C, T, H, W)."""
    return rearrange(x, "(b t) c h w -> b c t h w", b=batch)
