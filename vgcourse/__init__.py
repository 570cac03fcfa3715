"""vgcourse: the companion package of the course "Video generation from scratch".

The package is organised by concept, mirroring the course's eras:

- shared pieces: :mod:`vgcourse.profiles` (smoke / cpu / gpu), :mod:`vgcourse.video` (the tensor layout),
  :mod:`vgcourse.data` (generated datasets), :mod:`vgcourse.display` (videos, widgets, plots),
  :mod:`vgcourse.metrics` (probe-based metrics and their calibration), :mod:`vgcourse.train` (one training
  loop, EMA, FLOPs/MFU), :mod:`vgcourse.checkpoint` (saved and shipped weights), :mod:`vgcourse.nn` (attention,
  blocks, the caption encoder, the parameter counter), :mod:`vgcourse.results`, :mod:`vgcourse.exercises`;
- one subpackage per model family (GANs, tokenizers, transformers, diffusion, DiT);
- :mod:`vgcourse.scripts`: the commands that drive them (probe retraining, DiT training under torchrun).

Importing ``vgcourse`` itself is cheap (no torch import) so that ``python -m vgcourse`` can set up a
fresh machine before torch exists.
"""

__version__ = "0.1.0"
