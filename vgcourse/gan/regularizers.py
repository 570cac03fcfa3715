"""What keeps a discriminator from running away: R1, spectral normalisation and singular value clipping.

- :func:`r1_penalty`: γ/2 · E‖∇ₓD(x)‖² on *real* samples (Mescheder, Geiger & Nowozin 2018, eq. (9)): the
  discriminator is pushed to be flat on the data, which makes simultaneous gradient descent converge locally.
- :func:`r1_due`: whether a training step adds R1 when it is applied lazily, every k steps.
- :func:`apply_spectral_norm`: every convolution and linear layer's weight divided by its largest singular value,
  estimated by one power iteration per step (Miyato et al. 2018, eq. (8) and Algorithm 1): each layer is then
  1-Lipschitz, and so is the network if its activations are.
- :func:`clip_singular_values`: TGAN's singular value clipping (Saito, Matsumoto & Saito 2017, §4.2): after each
  critic update every weight, reshaped to a matrix (out, in · kernel), has its singular values above 1 set to 1,
  which keeps a WGAN critic 1-Lipschitz more faithfully than clipping each weight to [−c, c]. Batch-norm scales
  are clipped the same way (a diagonal matrix's singular values are |γ / σ|).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, nn.Linear)


def r1_penalty(discriminator: nn.Module, real: torch.Tensor, gamma: float, *args, **kwargs) -> torch.Tensor:
    """γ/2 · E_x ‖∇ₓ D(x)‖² over the real batch ``real`` (Mescheder et al. 2018, eq. (9)): real (B, ...) -> ().

    Extra arguments go to the discriminator. Its scores are summed before the gradient, so each sample's gradient
    is its own (the samples of a batch do not interact in D); its squared norm is summed over all dims but the first."""
    if not real.is_floating_point():
        raise TypeError(f"r1_penalty needs real samples as floats, got {real.dtype}")
    # differentiate with respect to a non-leaf copy: FlopCounterMode (the loop's counted first step) refuses a leaf
    real = real.detach().requires_grad_(True).clone()
    scores = discriminator(real, *args, **kwargs)
    (grad,) = torch.autograd.grad(scores.float().sum(), real, create_graph=True)
    return gamma / 2 * grad.float().pow(2).flatten(1).sum(1).mean()


def r1_due(trainer, gamma: float, every: int) -> bool:
    """Whether this step adds the (lazy) R1 penalty: every ``every`` steps (the penalty then scaled by ``every``, so
    that its average weight stays γ: Karras et al. 2020 (StyleGAN2), §3.1), never on the one step whose FLOPs the loop
    counts, so that the FLOPs (and MFU) are those of the plain step that most steps are."""
    if every < 1:
        raise ValueError(f"lazy R1 needs r1_every >= 1 steps between penalties, got {every}")
    counting = trainer.summary.flops_per_step is None and trainer.config.measure_flops
    return gamma > 0 and trainer.step % every == 0 and not counting


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalisation (torch's parametrisation) on every conv and linear layer of ``module``; in place
    (Miyato et al. 2018, eq. (8), Algorithm 1)."""
    layers = [m for m in module.modules() if isinstance(m, LAYERS)]
    if not layers:
        raise ValueError(f"{type(module).__name__} has no convolution or linear layer to normalise")
    for m in layers:
        if not hasattr(m, "parametrizations") or "weight" not in m.parametrizations:
            spectral_norm(m)
    return module


def _as_matrix(layer: nn.Module, weight: torch.Tensor) -> torch.Tensor:
    """The layer's weight as the matrix (out, in · kernel) that maps a flattened input patch to the outputs."""
    if isinstance(layer, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        return weight.transpose(0, 1).flatten(1)  # stored (in, out, k...)
    return weight.flatten(1)


@torch.no_grad()
def clip_singular_values(module: nn.Module, limit: float = 1.0) -> int:
    """TGAN's singular value clipping, in place: W ← U min(Σ, limit) Vᵀ for every conv/linear weight, and batch-norm
    scales |γ / √(running var + ε)| ≤ limit (Saito et al. 2017, §4.2). Returns the number of tensors it changed."""
    changed = 0
    for m in module.modules():
        if isinstance(m, LAYERS):
            w = m.weight
            matrix = _as_matrix(m, w).float()
            u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
            if s.max() > limit:
                clipped = (u * s.clamp(max=limit)) @ vh
                if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
                    clipped = clipped.reshape(w.shape[1], w.shape[0], *w.shape[2:]).transpose(0, 1)
                w.copy_(clipped.reshape(w.shape).to(w.dtype))
                changed += 1
        elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine and m.running_var is not None:
            bound = limit * (m.running_var + m.eps).sqrt()
            if (m.weight.abs() > bound).any():
                m.weight.copy_(m.weight.clamp(-bound, bound))
                changed += 1
    return changed


def largest_singular_value(layer: nn.Module) -> float:
    """σ_max of a conv/linear layer's weight as a matrix (out, in · kernel) (after any parametrisation)."""
    if not isinstance(layer, LAYERS):
        raise TypeError(f"expected a convolution or linear layer, got {type(layer).__name__}")
    return float(torch.linalg.matrix_norm(_as_matrix(layer, layer.weight.detach()).float(), ord=2))
