"""Generative adversarial networks for video: losses, regularisers, and the era's generators and discriminators.

- :mod:`.losses`: non-saturating, hinge and Wasserstein losses (discriminator, generator) pairs.
- :mod:`.regularizers`: the R1 penalty (and when a lazy one is due), spectral normalisation, TGAN's singular
  value clipping.

An EMA of the generator for sampling is :class:`vgcourse.train.EMA` (``Trainer(..., ema_of=generator)``); GAN
training steps call ``trainer.optimize(loss, "disc")`` and ``trainer.optimize(loss, "gen")``, on the trainer that
:func:`~vgcourse.gan.trainer.make_gan_trainer` sets up.
"""

from vgcourse.gan.dcgan import (
    DCGANConfig,
    DCGANDiscriminator,
    DCGANGenerator,
    dcgan,
    dcgan_paper,
    dcgan_small,
    dcgan_tiny,
    gan_step,
    init_dcgan_weights,
    sample_z,
    standing_statistics,
)
from vgcourse.gan.dvdgan import DVDGANConfig, DVDGANRecipe, build_dvdgan, dvdgan_paper, dvdgan_step
from vgcourse.gan.losses import (
    ADVERSARIAL_LOSSES,
    adversarial_losses,
    d_hinge,
    d_nonsaturating,
    d_wasserstein,
    g_hinge,
    g_nonsaturating,
    g_wasserstein,
)
from vgcourse.gan.mocogan import MoCoGANConfig, MoCoGANRecipe, build_mocogan, mocogan_paper, mocogan_step
from vgcourse.gan.regularizers import (
    apply_spectral_norm,
    clip_singular_values,
    largest_singular_value,
    r1_due,
    r1_penalty,
)
from vgcourse.gan.tgan import (
    ImageGenerator,
    TemporalGenerator,
    TGANConfig,
    TGANGenerator,
    VideoDiscriminator,
    tgan,
    tgan_paper,
    tgan_small,
    tgan_step,
    tgan_tiny,
)
from vgcourse.gan.trainer import gan_optimizers, make_gan_trainer
from vgcourse.gan.video_prediction import MODES, PredictionRecipe, PredictorConfig, build_predictor, prediction_step

__all__ = ["ADVERSARIAL_LOSSES", "adversarial_losses", "d_nonsaturating", "g_nonsaturating", "d_hinge", "g_hinge",
           "d_wasserstein", "g_wasserstein", "r1_penalty", "r1_due", "apply_spectral_norm", "clip_singular_values",
           "largest_singular_value"]
__all__ += ["DCGANConfig", "DCGANGenerator", "DCGANDiscriminator", "dcgan", "dcgan_paper", "dcgan_small", "dcgan_tiny",
            "gan_step", "init_dcgan_weights", "sample_z", "standing_statistics", "TGANConfig", "TemporalGenerator",
            "ImageGenerator", "TGANGenerator", "VideoDiscriminator", "tgan", "tgan_paper", "tgan_small", "tgan_tiny",
            "tgan_step"]
__all__ += ["MoCoGANConfig", "MoCoGANRecipe", "build_mocogan", "mocogan_paper", "mocogan_step", "DVDGANConfig",
            "DVDGANRecipe", "build_dvdgan", "dvdgan_paper", "dvdgan_step", "MODES", "PredictionRecipe",
            "PredictorConfig", "build_predictor", "prediction_step", "gan_optimizers", "make_gan_trainer"]
