"""The VQ-VAE moved to :mod:`vgcourse.tokenizers.vq` (the tokenizers family); this name stays until the notebooks
and tests that import it from here are re-executed and updated, then it goes."""

from vgcourse.tokenizers.quantizer import VectorQuantizer, VQOutput
from vgcourse.tokenizers.vq import (
    AttentionResBlock,
    AxialAttention,
    VQVideoAutoencoder,
    VQVideoAutoencoderConfig,
    videogpt_bair,
    vq_small,
    vq_tiny,
)

__all__ = ["VectorQuantizer", "VQOutput", "AxialAttention", "AttentionResBlock", "VQVideoAutoencoderConfig",
           "VQVideoAutoencoder", "vq_tiny", "vq_small", "videogpt_bair"]
