"""Display for the course: embedded videos, frame and diffusion-step scrubbers, and plots.

- :mod:`vgcourse.display.video`: ``show_video``, ``side_by_side``, ``save_video``, ``read_video``.
- :mod:`vgcourse.display.widgets`: ``frame_image`` and the ``VideoScrubber`` widget.
- :mod:`vgcourse.display.plots`: ``plot_curves``, ``plot_metric_bars``, ``plot_xy``.

``video_grid`` (tile a batch into one clip) lives in :mod:`vgcourse.video` and is re-exported here.
"""

from vgcourse.display.plots import ema, filmstrip, plot_curves, plot_metric_bars, plot_xy
from vgcourse.display.video import encode_video, read_video, save_video, show_video, side_by_side
from vgcourse.display.widgets import VideoScrubber, frame_image
from vgcourse.video import video_grid

__all__ = [
    "VideoScrubber", "ema", "encode_video", "filmstrip", "frame_image", "plot_curves", "plot_metric_bars", "plot_xy",
    "read_video", "save_video", "show_video", "side_by_side", "video_grid",
]
