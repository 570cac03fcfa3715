"""Helpers shared by several test files."""

import torch


def randomised(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give zero-initialised tensors (output convs, residual branches, position tables) random values, so that
    every input matters to the output; returns the model in eval mode."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    return model.eval()
