"""Captioned shapes: coloured shapes moving in a stated direction, each clip with a caption.

"a red square moves left" — and, with ``camera_pan=True``, "..., the camera pans up" over a textured
background that slides the other way. Structured labels (colour, shape, direction, pan, positions) serve the
text-, class-, motion- and camera-conditioned chapters, and :mod:`vgcourse.metrics.attributes` reads them
back from pixels with analytic detectors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vgcourse.data.base import VideoDataset, positive_int

COLOURS = {  # saturated, so that a grey background never looks like an object
    "red": (1.0, 0.1, 0.1), "green": (0.1, 0.9, 0.1), "blue": (0.15, 0.3, 1.0),
    "yellow": (1.0, 0.9, 0.1), "magenta": (1.0, 0.1, 1.0), "cyan": (0.1, 0.9, 1.0),
}
SHAPES = ("square", "circle", "triangle")
DIRECTIONS = {"left": (0.0, -1.0), "right": (0.0, 1.0), "up": (-1.0, 0.0), "down": (1.0, 0.0)}
PANS = ("none",) + tuple(DIRECTIONS)

COLOUR_NAMES, DIRECTION_NAMES = tuple(COLOURS), tuple(DIRECTIONS)
COLOUR_RGB = torch.tensor(list(COLOURS.values()))  # (6, 3)
DIRECTION_VECTORS = torch.tensor(list(DIRECTIONS.values()))  # (4, 2) as (dy, dx)

VOCAB = ("<pad>", "a", "moves", "the", "camera", "pans", "and") + COLOUR_NAMES + SHAPES + DIRECTION_NAMES


def caption(colour: int, shape: int, direction: int, pan: int = 0) -> str:
    """The caption of one object: ``caption(0, 0, 0) == 'a red square moves left'``.

    Inputs: indices into :data:`COLOUR_NAMES`, :data:`SHAPES`, :data:`DIRECTION_NAMES` and :data:`PANS` (0: none).
    """
    for what, index, names in (("colour", colour, COLOUR_NAMES), ("shape", shape, SHAPES),
                               ("direction", direction, DIRECTION_NAMES), ("pan", pan, PANS)):
        if isinstance(index, torch.Tensor) and index.numel() == 1:
            index = int(index)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(names):
            raise ValueError(f"expected {what} as an index in 0..{len(names) - 1} ({', '.join(names)}), "
                             f"got {index!r}")
    colour, shape, direction, pan = (int(i) for i in (colour, shape, direction, pan))
    text = f"a {COLOUR_NAMES[colour]} {SHAPES[shape]} moves {DIRECTION_NAMES[direction]}"
    return text + (f" and the camera pans {PANS[pan]}" if pan else "")


def tokenize(captions: list[str], length: int = 12) -> torch.Tensor:
    """Word tokens (B, length) over :data:`VOCAB`, padded with 0; an unknown word is an error."""
    index = {w: i for i, w in enumerate(VOCAB)}
    out = torch.zeros(len(captions), length, dtype=torch.long)
    for row, text in enumerate(captions):
        words = text.lower().split()
        if len(words) > length:
            raise ValueError(f"caption {text!r} has {len(words)} words, more than length={length}")
        for col, word in enumerate(words):
            if word not in index:
                raise ValueError(f"unknown word {word!r} in caption {text!r}; the vocabulary is {VOCAB}")
            out[row, col] = index[word]
    return out


class CaptionedShapes(VideoDataset):
    """One or more coloured shapes moving at constant speed in a stated direction, (B, 3, T, size, size).

    Labels: ``colour``, ``shape``, ``direction`` (B, K) indices into :data:`COLOUR_NAMES`, :data:`SHAPES`,
    :data:`DIRECTION_NAMES`; ``pan`` (B,) into :data:`PANS` (0 = none); ``centers`` (B, T, K, 2) (y, x).
    The whole path stays inside the frame.
    """

    name = "captioned_shapes"
    channels = 3

    def __init__(self, size: int = 32, frames: int = 16, objects: int = 1, object_size: float | None = None,
                 speed: float | None = None, camera_pan: bool = False, colours: tuple[str, ...] | None = None):
        super().__init__(size, frames)
        self.objects = positive_int(objects, "objects")
        self.half = float(object_size) / 2 if object_size is not None else size * 0.12
        self.speed = float(speed) if speed is not None else size / 32
        self.camera_pan = camera_pan
        unknown = [c for c in (colours or ()) if c not in COLOURS]
        if unknown:
            raise ValueError(f"unknown colour(s) {unknown}; choose from {COLOUR_NAMES}")
        self.colours = tuple(COLOUR_NAMES.index(c) for c in colours) if colours else tuple(range(len(COLOURS)))
        travel = self.speed * (frames - 1)
        if 2 * self.half + travel > size - 2:
            raise ValueError(f"a shape of size {2 * self.half:g} moving {travel:g} px over {frames} frames "
                             f"does not fit a {size}×{size} frame: use a smaller speed/object or more pixels")

    def _draw(self, n: int, g: torch.Generator, split: str) -> dict[str, torch.Tensor]:
        k = self.objects
        colour = torch.tensor(self.colours)[torch.randint(len(self.colours), (n, k), generator=g)]
        shape = torch.randint(len(SHAPES), (n, k), generator=g)
        direction = torch.randint(len(DIRECTIONS), (n, k), generator=g)
        pan = torch.randint(1, len(PANS), (n,), generator=g) if self.camera_pan else torch.zeros(n, dtype=torch.long)
        step = DIRECTION_VECTORS[direction] * self.speed  # (n, K, 2)
        travel = step * (self.frames - 1)
        lo = self.half + 1 - travel.clamp(max=0)  # start so that the whole path stays in frame
        hi = self.size - 2 - self.half - travel.clamp(min=0)
        start = lo + torch.rand(n, k, 2, generator=g) * (hi - lo)
        t = torch.arange(self.frames, dtype=torch.float32).view(1, -1, 1, 1)
        centers = start[:, None] + t * step[:, None]  # (n, T, K, 2)
        texture = torch.rand(n, 1, self.size // 4, self.size // 4, generator=g)
        return {"colour": colour, "shape": shape, "direction": direction, "pan": pan, "centers": centers,
                "_texture": texture}

    def _captions(self, params: dict[str, torch.Tensor]) -> list[str]:
        out = []
        for i in range(params["colour"].shape[0]):
            parts = [caption(c, s, d) for c, s, d in zip(params["colour"][i].tolist(), params["shape"][i].tolist(),
                                                          params["direction"][i].tolist())]
            text = " and ".join(parts)
            pan = int(params["pan"][i])
            out.append(text + (f" and the camera pans {PANS[pan]}" if pan else ""))
        return out

    def _render(self, params: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
        centers = params["centers"].to(device)  # (B, T, K, 2)
        b, t = centers.shape[:2]
        grid = torch.arange(self.size, device=device, dtype=torch.float32)
        dy = grid.view(1, 1, 1, -1, 1) - centers[..., 0, None, None]  # (B, T, K, S, 1)
        dx = grid.view(1, 1, 1, 1, -1) - centers[..., 1, None, None]  # (B, T, K, 1, S)
        h = self.half
        square = (dy.abs() <= h) & (dx.abs() <= h)
        circle = dy**2 + dx**2 <= h**2
        triangle = (dy <= h) & (2 * dx.abs() <= dy + h)  # apex up, base at dy = +h
        masks = torch.stack([square.expand_as(circle), circle, triangle.expand_as(circle)], 0)  # (3, B, T, K, S, S)
        shape = params["shape"].to(device)  # (B, K)
        mask = torch.gather(masks, 0, shape.view(1, b, 1, -1, 1, 1).expand(1, b, t, -1, self.size, self.size))[0]
        rgb = COLOUR_RGB.to(device)[params["colour"].to(device)]  # (B, K, 3)
        frame = self._background(params, device)  # (B, 3, T, S, S) in [0, 1]
        for k in range(mask.shape[2]):  # later objects drawn on top
            m = mask[:, None, :, k].float()  # (B, 1, T, S, S)
            frame = frame * (1 - m) + rgb[:, k, :, None, None, None] * m
        return frame * 2 - 1

    def _background(self, params: dict[str, torch.Tensor], device: torch.device) -> torch.Tensor:
        b, s, t = params["pan"].shape[0], self.size, self.frames
        if not self.camera_pan:
            return torch.zeros(b, 3, t, s, s, device=device)
        tex = F.interpolate(params["_texture"].to(device), size=(s, s), mode="bilinear", align_corners=False)
        tex = (0.1 + 0.3 * tex).expand(b, 3, s, s)  # dim grey, low saturation
        vec = torch.cat([torch.zeros(1, 2), DIRECTION_VECTORS])[params["pan"]]  # (B, 2), on the CPU
        # the camera moves by `speed` px a frame, so the scene slides the other way: a periodic shift (torch.roll)
        steps = torch.arange(t, dtype=torch.float32).view(1, t, 1)
        shift = (-vec[:, None, :] * self.speed * steps).round().long().to(device)  # (B, T, 2)
        grid = torch.arange(s, device=device).view(1, 1, s)
        rows = (grid - shift[..., 0:1]) % s  # (B, T, S): source row of each output row
        cols = (grid - shift[..., 1:2]) % s  # (B, T, S)
        bi = torch.arange(b, device=device).view(b, 1, 1, 1)
        frames = tex[bi, :, rows[..., :, None], cols[..., None, :]]  # (B, T, S, S, 3)
        return frames.permute(0, 4, 1, 2, 3)  # (B, 3, T, S, S)
