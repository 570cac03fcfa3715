"""Training FLOPs and model FLOPs utilisation (MFU), measured rather than assumed.

FLOPs come from ``torch.utils.flop_counter.FlopCounterMode`` on one real training step (forward and
backward; it counts 2 FLOPs per multiply-add). MFU = achieved FLOP/s ÷ the device's peak dense FLOP/s at
the precision used, the definition of PaLM (Chowdhery et al. 2022, appendix B) that nanoGPT's
``estimate_mfu`` follows.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

# Dense peak FLOP/s from the vendors' datasheets (no sparsity). bf16 is used under autocast, tf32 for fp32 matmuls.
PEAK_FLOPS = {  # name fragment -> {precision: FLOP/s}
    "H200": {"bf16": 989e12, "tf32": 494e12},
    "H100 PCIe": {"bf16": 756e12, "tf32": 378e12},
    "H100": {"bf16": 989e12, "tf32": 494e12},  # SXM
    "A100": {"bf16": 312e12, "tf32": 156e12},
    "L40S": {"bf16": 362e12, "tf32": 183e12},
    "L4": {"bf16": 121e12, "tf32": 60e12},
    "A10": {"bf16": 125e12, "tf32": 62.5e12},
}


def peak_flops(device: torch.device, precision: str = "bf16") -> float | None:
    """Peak dense FLOP/s of ``device`` at ``precision`` ('bf16' or 'tf32'); None when unknown (e.g. CPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for fragment, peaks in PEAK_FLOPS.items():
        if fragment in name:
            return peaks[precision]
    return None


def count_flops(fn: Callable[[], object]) -> int:
    """Total FLOPs of everything ``fn`` runs (forward, backward, ...), counted by FlopCounterMode."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def mfu(flops_per_step: float, steps_per_second: float, device: torch.device, precision: str = "bf16") -> float | None:
    """Model FLOPs utilisation in [0, 1]; None where the peak is unknown."""
    peak = peak_flops(device, precision)
    return None if peak is None else flops_per_step * steps_per_second / peak
