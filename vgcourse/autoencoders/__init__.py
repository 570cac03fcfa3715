"""Video autoencoders: the KL first stage of latent diffusion (LDM, Gen-1).

VideoGPT's VQ-VAE tokenizer lives in :mod:`vgcourse.tokenizers`; its names are still importable from here (through
:mod:`vgcourse.autoencoders.vq`) until the code that imports them from this package is updated.
"""

from vgcourse.autoencoders.kl import (
    DiagonalGaussian,
    VideoAutoencoder,
    VideoAutoencoderConfig,
    kl_f4_base,
    kl_f4_small,
    kl_f4_tiny,
    kl_f8_base,
    train_autoencoder,
)
from vgcourse.autoencoders.vae import (
    FrameVAE,
    FrameVAEConfig,
    frame_vae_small,
    frame_vae_tiny,
    gaussian_nll,
    negative_elbo,
    vae_loss,
    vae_terms,
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
    "kl_f8_base", "train_autoencoder",
    "VectorQuantizer", "VQOutput", "AxialAttention", "VQVideoAutoencoderConfig",
    "VQVideoAutoencoder", "vq_tiny", "vq_small", "videogpt_bair",
]
__all__ += ["FrameVAEConfig", "FrameVAE", "frame_vae_tiny", "frame_vae_small", "gaussian_nll", "vae_terms", "vae_loss",
            "negative_elbo"]
