"""Video tokenizers: a clip becomes a grid of discrete codes that a transformer can model.

- :mod:`~vgcourse.tokenizers.quantizer`: the vector-quantized bottleneck (EMA codebook, dead-code restarts,
  commitment loss, usage and perplexity) and the objective every tokenizer trains with.
- :mod:`~vgcourse.tokenizers.vq`: VideoGPT's VQ-VAE (3D convs, axial attention), with 3D or per-frame 2D tokens;
  a trained one travels as :func:`~vgcourse.tokenizers.vq.shippable_state` and comes back with
  :func:`~vgcourse.tokenizers.vq.load_tokenizer`.
- :mod:`~vgcourse.tokenizers.cvivit`: Phenaki's causal C-ViViT (the first frame alone, then tubelets; a spatial
  then a causal temporal transformer).
"""

from vgcourse.tokenizers.cvivit import CViViT, CViViTConfig, cvivit_digits, cvivit_tiny
from vgcourse.tokenizers.quantizer import (
    VectorQuantizer,
    VQOutput,
    check_indices,
    code_counts,
    usage_and_perplexity,
    vq_loss,
)
from vgcourse.tokenizers.vq import (
    AttentionResBlock,
    AxialAttention,
    VQVideoAutoencoder,
    VQVideoAutoencoderConfig,
    load_tokenizer,
    shippable_state,
    videogpt_bair,
    vq_digits,
    vq_digits_per_frame,
    vq_small,
    vq_tiny,
)

__all__ = [
    "VectorQuantizer", "VQOutput", "vq_loss", "code_counts", "usage_and_perplexity", "check_indices",
    "VQVideoAutoencoderConfig", "VQVideoAutoencoder", "AxialAttention", "AttentionResBlock", "vq_tiny", "vq_small",
    "vq_digits", "vq_digits_per_frame", "videogpt_bair", "shippable_state", "load_tokenizer",
    "CViViTConfig", "CViViT", "cvivit_tiny", "cvivit_digits",
]
