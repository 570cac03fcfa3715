"""What two tokenizer tests share: a tiny set of moving squares and a few Adam steps on it (imported by the tests)."""

import torch
import torch.nn.functional as F

from vgcourse.tokenizers import vq_loss


def moving_squares(frames: int, seed: int, wrap: bool) -> torch.Tensor:
    """Four clips (4, 1, frames, 16, 16) in {-1, 1}: a 5×5 square at a random place, one pixel right a frame; with
    ``wrap`` it re-enters on the left (columns mod 11), without it it leaves the frame."""
    g = torch.Generator().manual_seed(seed)
    x = -torch.ones(4, 1, frames, 16, 16)
    for i in range(4):
        r, c = torch.randint(0, 10, (2,), generator=g).tolist()
        for t in range(frames):
            if wrap:
                x[i, :, t, r:r + 5, (c + t) % 11:(c + t) % 11 + 5] = 1.0
            elif c + t + 5 <= 16:
                x[i, :, t, r:r + 5, c + t:c + t + 5] = 1.0
    return x


def overfit(model: torch.nn.Module, x: torch.Tensor, lr: float, steps: int) -> tuple[float, float]:
    """``steps`` Adam steps of ``vq_loss`` on x; (the first step's reconstruction loss, the MSE after, in eval)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    first = None
    for _ in range(steps):
        out = vq_loss(model, x)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        first = first if first is not None else out["recon"].item()
    recon, _ = model.eval()(x)
    return first, F.mse_loss(recon, x).item()
