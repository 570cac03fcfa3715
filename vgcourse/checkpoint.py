"""Checkpoints: save and load weights (and a training run's state), and load the course's shipped weights by name
with a sha256 check.

A checkpoint is a plain dict of tensors and Python values, loaded with ``torch.load(weights_only=True)`` so
that a file can never run code. Shipped weights live in ``data/weights/<name>.pt`` and their hashes in
``data/weights/SHA256SUMS`` (the format ``sha256sum`` writes and checks).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vgcourse.paths import data_dir

WEIGHTS = "weights"
SUMS = "SHA256SUMS"


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, corrupt, or does not fit the model."""


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_checkpoint(path: str | Path, **state: Any) -> Path:
    """Write ``state`` (state dicts, step, config as plain values) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a missing or unreadable file is a :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated, not a torch file, or holding objects weights_only refuses
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(err).__name__}: {err}); "
                              "delete it and train again, or restore the shipped file") from err


def shipped_hashes() -> dict[str, str]:
    """name -> sha256 of every shipped weight file, from ``data/weights/SHA256SUMS``."""
    sums = data_dir() / WEIGHTS / SUMS
    if not sums.is_file():
        return {}
    out = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, filename = line.split(maxsplit=1)
            out[Path(filename.lstrip("*")).stem] = digest
    return out


def register_shipped(name: str) -> str:
    """Record the hash of ``data/weights/<name>.pt`` in SHA256SUMS (used by the scripts that retrain weights)."""
    path = data_dir() / WEIGHTS / f"{name}.pt"
    hashes = shipped_hashes()
    hashes[name] = sha256(path)
    lines = [f"{digest}  {n}.pt" for n, digest in sorted(hashes.items())]
    (data_dir() / WEIGHTS / SUMS).write_text("\n".join(lines) + "\n")
    return hashes[name]


def load_shipped(name: str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load shipped weights ``data/weights/<name>.pt`` after checking their sha256."""
    path = data_dir() / WEIGHTS / f"{name}.pt"
    expected = shipped_hashes().get(name)
    if expected is None:
        raise CheckpointError(f"{name!r} is not listed in data/weights/{SUMS}; shipped weights are "
                              f"{sorted(shipped_hashes())}")
    if not path.is_file():
        raise CheckpointError(f"shipped weights {path} are missing: restore them with "
                              f"`git checkout -- data/{WEIGHTS}/{name}.pt` or retrain them (see the README)")
    actual = sha256(path)
    if actual != expected:
        raise CheckpointError(f"shipped weights {path} are corrupt: sha256 {actual[:12]}… != expected "
                              f"{expected[:12]}…; restore them with `git checkout -- data/{WEIGHTS}/{name}.pt`")
    return load_checkpoint(path, map_location)


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor], source: str = "checkpoint") -> nn.Module:
    """``model.load_state_dict(state)`` with an error that names the mismatching keys and shapes."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: missing {missing[:5]}, "
                              f"unexpected {unexpected[:5]}, shape mismatches {shapes[:5]}")
    model.load_state_dict(state)
    return model
