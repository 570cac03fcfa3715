"""The course's datasets, generated batch by batch from a seed (nothing is downloaded).

- :class:`MovingDigits`: the Moving MNIST recipe on real handwriting (scikit-learn's digits, shipped);
  :class:`CroppedDigits` the same on a canvas of any aspect ratio.
- :class:`BouncingBalls`: discs with elastic wall bounces; labels are positions and velocities.
- :class:`CaptionedShapes`: coloured shapes moving in stated directions, with captions.
- :func:`load_moving_mnist`: the standard Moving MNIST file, for those who have it.
- :func:`bucket_stream`: training batches of several shapes, one shape per batch; :func:`foreground`: which pixels
  of a clip are objects.
"""

from vgcourse.data.balls import BouncingBalls
from vgcourse.data.base import HELDOUT_SEED, VideoBatch, VideoDataset, bucket_stream, foreground
from vgcourse.data.digits import CroppedDigits, MovingDigits, load_digit_images
from vgcourse.data.files import load_moving_mnist
from vgcourse.data.shapes import COLOUR_NAMES, DIRECTION_NAMES, PANS, SHAPES, VOCAB, CaptionedShapes, caption, tokenize

DATASETS = {cls.name: cls for cls in (MovingDigits, BouncingBalls, CaptionedShapes)}

__all__ = ["VideoBatch", "VideoDataset", "MovingDigits", "BouncingBalls", "CaptionedShapes", "load_moving_mnist",
           "load_digit_images", "caption", "tokenize", "COLOUR_NAMES", "SHAPES", "DIRECTION_NAMES", "PANS", "VOCAB",
           "DATASETS", "HELDOUT_SEED", "CroppedDigits", "bucket_stream", "foreground"]
