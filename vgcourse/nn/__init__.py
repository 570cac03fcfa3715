"""Shared neural-network pieces: attention (chunked SDPA) and its spacetime layouts, the transformer's blocks,
fixed sin-cos positions, the caption encoder, small blocks used by several families, and the parameter counter."""

from vgcourse.nn.attention import MAX_SDPA_BATCH, attention
from vgcourse.nn.layouts import (
    LAYOUTS,
    attend,
    attention_flops,
    full_attention,
    layout_step,
    spatial_attention,
    temporal_attention,
    window_attention,
)
from vgcourse.nn.local_attention import grid_coordinates, nearby_mask, nearby_pairs, pair_flops
from vgcourse.nn.parameters import count_parameters, randomised
from vgcourse.nn.positions import sincos_1d, sincos_2d, sincos_3d
from vgcourse.nn.text import CaptionEncoder
from vgcourse.nn.transformer import MLP, AdaLNBlock, Attention, Block, KVCache, causal_mask, modulate

SelfAttention = Attention  # the old name, kept for old imports

__all__ = ["attention", "MAX_SDPA_BATCH", "sincos_1d", "sincos_2d", "sincos_3d",
           "LAYOUTS", "attend", "attention_flops", "full_attention", "layout_step", "spatial_attention",
           "temporal_attention", "window_attention",
           "Attention", "MLP", "Block", "AdaLNBlock", "KVCache", "causal_mask", "modulate", "SelfAttention",
           "nearby_mask", "nearby_pairs", "pair_flops", "grid_coordinates", "CaptionEncoder", "count_parameters",
           "randomised"]
