"""Run profiles: ``smoke`` (CI, seconds), ``cpu`` (a laptop, minutes), ``gpu`` (one H100, minutes).

The profile comes from the environment variable ``VGCOURSE_PROFILE``; unset, it is ``gpu`` on a CUDA
machine and ``cpu`` otherwise. The same code path runs in all three: only sizes and step counts change,
and a notebook chooses them in plain view with :func:`pick`::

    steps = pick(smoke=2, cpu=300, gpu=6000)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch

PROFILES = ("smoke", "cpu", "gpu")
ENV_VAR = "VGCOURSE_PROFILE"
T = TypeVar("T")


def current_profile() -> str:
    """The active profile name: ``$VGCOURSE_PROFILE`` or, unset, ``gpu`` with CUDA else ``cpu``."""
    name = os.environ.get(ENV_VAR, "").strip().lower()
    if not name:
        return "gpu" if torch.cuda.is_available() else "cpu"
    if name not in PROFILES:
        raise ValueError(f"{ENV_VAR}={name!r} is not a profile; choose one of {', '.join(PROFILES)}")
    return name


def pick(*, smoke: T, cpu: T, gpu: T, profile: str | None = None) -> T:
    """Return the value for the active profile (or ``profile`` if given).

    >>> pick(smoke=2, cpu=300, gpu=6000, profile="cpu")
    300
    """
    name = profile if profile is not None else current_profile()
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}")
    return {"smoke": smoke, "cpu": cpu, "gpu": gpu}[name]


def default_device() -> torch.device:
    """CUDA when present, else the CPU. A ``gpu`` profile without CUDA is an error, not a slow surprise."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if current_profile() == "gpu":
        raise RuntimeError(
            f"{ENV_VAR}=gpu but torch sees no CUDA device (torch {torch.__version__}); "
            "use VGCOURSE_PROFILE=cpu on this machine, or install a CUDA build of torch"
        )
    return torch.device("cpu")


def cpu_threads() -> int:
    """The cores this process may use (cgroup/affinity aware), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Setup:
    """What :func:`setup` chose for this process."""

    profile: str
    device: torch.device
    amp_dtype: torch.dtype | None  # bf16 autocast on CUDA, None (fp32) on the CPU
    compile: bool  # torch.compile pays on CUDA for long runs; on the CPU it only costs time
    threads: int

    @property
    def device_name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"CPU ({self.threads} threads)"

    def __str__(self) -> str:
        amp = "bf16 autocast" if self.amp_dtype is not None else "fp32"
        return (f"profile={self.profile} device={self.device_name} {amp} "
                f"compile={self.compile} torch={torch.__version__}")


# The backend switches that trade exactness for speed on a GPU: (module, attribute, fast value, exact value).
NUMERIC_MODES = ((torch.backends.cuda.matmul, "allow_tf32", True, False),   # TF32 matrix products
                 (torch.backends.cudnn, "allow_tf32", True, False),         # TF32 convolutions
                 (torch.backends.cudnn, "benchmark", True, False),          # autotuned convolution algorithms
                 (torch.backends.cudnn, "deterministic", False, True))      # reproducible convolution algorithms


def set_numeric_modes(fast: bool) -> None:
    """Every switch of :data:`NUMERIC_MODES` to its fast (``setup`` on a GPU) or its exact value."""
    for module, name, fast_value, exact_value in NUMERIC_MODES:
        setattr(module, name, fast_value if fast else exact_value)


def setup(seed: int | None = 0, verbose: bool = True) -> Setup:
    """Choose device, precision and threads for the active profile; seed torch; print a device check."""
    profile = current_profile()
    device = default_device()
    threads = cpu_threads()
    torch.set_num_threads(threads)
    if device.type == "cuda":
        set_numeric_modes(fast=True)
    if seed is not None:
        torch.manual_seed(seed)
    cuda = device.type == "cuda"
    result = Setup(profile=profile, device=device, amp_dtype=torch.bfloat16 if cuda else None,
                   compile=cuda and profile == "gpu", threads=threads)
    if verbose:
        print(result)
    return result


@contextmanager
def exact_fp32() -> Iterator[None]:
    """Full fp32 on a GPU for the block inside: TF32 off for matmuls and convolutions, cuDNN deterministic.

    :func:`setup` turns TF32 and cuDNN autotuning on for speed; a check that compares a hand-written
    function with the package's at a tight tolerance runs inside this block instead, so that a 10-bit TF32
    mantissa or a different convolution algorithm is not read as a disagreement. The previous settings come
    back on exit, also when the block raises. On a CPU the flags have no effect.
    """
    saved = [getattr(module, name) for module, name, _, _ in NUMERIC_MODES]
    set_numeric_modes(fast=False)
    try:
        yield
    finally:
        for (module, name, _, _), value in zip(NUMERIC_MODES, saved):
            setattr(module, name, value)
