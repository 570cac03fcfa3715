"""Diffusion Transformers (Peebles & Xie 2023) on spacetime patches, with the attention layouts of WALT and Latte."""

from vgcourse.dit.attention_layouts import SpacetimeAttention  # old name of nn.transformer.Attention
from vgcourse.dit.model import (
                                DIT_CONFIGS,
                                PAPER_GFLOPS,
                                PAPER_IMAGENET_256,
                                PAPER_PARAMS_M,
                                DiT,
                                DiT_B_2,
                                DiT_B_4,
                                DiT_B_8,
                                DiT_L_2,
                                DiT_L_4,
                                DiT_L_8,
                                DiT_Mini,
                                DiT_S_2,
                                DiT_S_4,
                                DiT_S_8,
                                DiT_Tiny,
                                DiT_XL_2,
                                DiT_XL_4,
                                DiT_XL_8,
                                DiTBlock,
                                DiTConfig,
                                FinalLayer,
                                LabelEmbedder,
                                PatchEmbed3D,
                                TimestepEmbedder,
                                flops_per_forward,
                                measured_flops_per_forward,
                                modulate,
                                num_parameters,
                                patchify,
                                unpatchify,
)
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
from vgcourse.nn.positions import sincos_1d, sincos_2d, sincos_3d

__all__ = [
    "DiTConfig", "DiT", "DiTBlock", "FinalLayer", "LabelEmbedder", "PatchEmbed3D", "TimestepEmbedder",
    "modulate", "patchify", "unpatchify", "num_parameters", "flops_per_forward", "measured_flops_per_forward",
    "DiT_XL_2", "DiT_XL_4", "DiT_XL_8", "DiT_L_2", "DiT_L_4", "DiT_L_8", "DiT_B_2", "DiT_B_4", "DiT_B_8",
    "DiT_S_2", "DiT_S_4", "DiT_S_8", "DiT_Tiny", "DiT_Mini", "DIT_CONFIGS", "PAPER_IMAGENET_256", "PAPER_GFLOPS",
    "PAPER_PARAMS_M",
    "LAYOUTS", "SpacetimeAttention", "attend", "attention_flops", "full_attention", "layout_step",
    "spatial_attention", "temporal_attention", "window_attention",
    "sincos_1d", "sincos_2d", "sincos_3d",
]
