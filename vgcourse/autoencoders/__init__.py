"""Video autoencoders: the KL first stage of latent diffusion (LDM, Gen-1) and VideoGPT's VQ-VAE tokenizer."""

from vgcourse.autoencoders.kl import (
    DiagonalGaussian,
    VideoAutoencoder,
    VideoAutoencoderConfig,
    kl_f4_base,
    kl_f4_small,
    kl_f4_tiny,
    kl_f8_base,
)
from vgcourse.autoencoders.vq import (
    AxialAttention,
    VectorQuantizer,
    VQOutput,
    VQVideoAutoencoder,
    VQVideoAutoencoderConfig,
    videogpt_bair,
    vq_small,
    vq_tiny,
)

__all__ = [
    "VideoAutoencoderConfig", "VideoAutoencoder", "DiagonalGaussian", "kl_f4_tiny", "kl_f4_small", "kl_f4_base",
    "kl_f8_base",
    "VectorQuantizer", "VQOutput", "AxialAttention", "VQVideoAutoencoderConfig",
    "VQVideoAutoencoder", "vq_tiny", "vq_small", "videogpt_bair",
]
