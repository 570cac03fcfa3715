"""The course's metrics, with no downloaded weights (see :mod:`vgcourse.metrics.suite` for what each means).

- :func:`evaluate` / :class:`Evaluator`: every metric for a batch of generated videos, in one call.
- :mod:`.protocol`: the course's one evaluation protocol (:data:`PROTOCOL`, 384 clips against 512 held-out), its
  reference rows (:func:`reference_rows`), fd with its standard error (:func:`score`) and bars (:func:`verdict`).
- probes (:mod:`.probes`, with their held-out accuracy :func:`probe_accuracy`), Fréchet distance and its jackknife
  error (:mod:`.frechet`), tracking and motion (:mod:`.tracking`, with :func:`seam_jumps` at the seams of extended
  clips), diversity within a condition (:mod:`.diversity`), attribute detectors (:mod:`.attributes`),
  reconstruction (:mod:`.reconstruction`), calibration corruptions (:mod:`.corruptions`) and the calibration
  table (:mod:`.calibration`).
"""

from vgcourse.metrics.attributes import attribute_accuracy, attribute_consistency, detect_attributes, fill_ratio
from vgcourse.metrics.calibration import calibration_table
from vgcourse.metrics.corruptions import CORRUPTIONS, add_noise, blur, freeze_frames, shuffle_frames
from vgcourse.metrics.disentanglement import content_agreement, real_pairs, trajectory_correlation
from vgcourse.metrics.diversity import group_diversity
from vgcourse.metrics.frames import FrameEvaluator, format_frame_rows, frame_reference_rows, frames_of, sharpness
from vgcourse.metrics.frechet import (
    frechet_distance,
    frechet_distance_features,
    gaussian_stats,
    jackknife_fd,
    jackknife_std,
)
from vgcourse.metrics.probes import probe_accuracy
from vgcourse.metrics.protocol import (
    PROTOCOL,
    Protocol,
    bar,
    claim_from,
    floor_fd,
    mean_se,
    past_the_floor,
    reference_rows,
    score,
    show_bars,
    verdict,
)
from vgcourse.metrics.reconstruction import bits_per_dim, codebook_stats, codebook_usage, mask_iou, psnr, ssim
from vgcourse.metrics.suite import Evaluator, evaluate
from vgcourse.metrics.tracking import (
    count_objects,
    largest_component,
    motion_stats,
    seam_jumps,
    track_centroids,
)

__all__ = ["evaluate", "Evaluator", "calibration_table", "frechet_distance", "frechet_distance_features",
           "gaussian_stats", "jackknife_fd", "jackknife_std", "psnr", "ssim", "codebook_usage", "codebook_stats",
           "mask_iou", "bits_per_dim", "track_centroids", "motion_stats", "count_objects", "seam_jumps",
           "group_diversity", "detect_attributes", "fill_ratio", "largest_component", "attribute_accuracy",
           "attribute_consistency", "shuffle_frames", "freeze_frames",
           "blur", "add_noise", "CORRUPTIONS", "PROTOCOL", "Protocol", "reference_rows", "score", "verdict",
           "bar", "claim_from", "mean_se", "show_bars", "floor_fd", "past_the_floor"]
__all__ += ["FrameEvaluator", "frame_reference_rows", "format_frame_rows", "frames_of", "sharpness"]
__all__ += ["content_agreement", "trajectory_correlation", "real_pairs", "probe_accuracy"]
