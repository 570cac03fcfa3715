"""DCGAN (Radford, Metz & Chintala 2016): the convolutional GAN of frames, and the training step every GAN here uses.

The paper's architecture guidelines (§3), each visible below:

1. no pooling: strided convolutions in the discriminator, fractionally-strided (transposed) ones in the generator;
2. batch normalisation in both networks, except the generator's output layer and the discriminator's input layer;
3. no fully connected hidden layers: z is *projected and reshaped* to a 4×4 stack of feature maps (one matrix
   multiply), and the discriminator's last feature maps are flattened into one logit;
4. ReLU in the generator, Tanh at its output;
5. LeakyReLU (slope 0.2) in the discriminator.

Figure 1 of the paper: z (100, uniform) → 4×4×1024 → 8×8×512 → 16×16×256 → 32×32×128 → 64×64×3; §4: weights from
N(0, 0.02), Adam with lr 2·10⁻⁴ and β₁ = 0.5, mini-batches of 128. :func:`dcgan_paper` is that network;
:func:`dcgan_small` the course's 32×32×1 one (widths 512 → 256 → 128 → 1).

:func:`gan_step` is one alternating update (Goodfellow et al. 2014, Algorithm 1 with k = 1): the discriminator on
a real and a generated batch, then the generator through the updated discriminator; TGAN (:mod:`.tgan`) uses it too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from vgcourse.gan.losses import adversarial_losses
from vgcourse.gan.regularizers import apply_spectral_norm, clip_singular_values, r1_penalty

NORMS = ("batch", "spectral", "none")


@dataclass
class DCGANConfig:
    """Sizes of a DCGAN: ``gen_channels`` feature maps at 4×4, halved at every doubling; the discriminator starts
    with ``disc_channels`` and doubles them at every halving. ``disc_norm``: "batch" (the paper), "spectral"
    (spectral normalisation on every layer and no batch norm, Miyato et al. 2018) or "none" (for a gradient
    penalty such as R1 instead)."""

    channels: int = 1
    size: int = 32  # a power of two, at least 8
    z_dim: int = 100
    gen_channels: int = 512
    disc_channels: int = 128
    disc_norm: str = "batch"

    def __post_init__(self):
        if self.size < 8 or self.size & (self.size - 1):
            raise ValueError(f"DCGANConfig.size must be a power of two >= 8, got {self.size}")
        if self.disc_norm not in NORMS:
            raise ValueError(f"DCGANConfig.disc_norm must be one of {NORMS}, got {self.disc_norm!r}")

    @property
    def levels(self) -> int:
        """Doublings from 4×4 to ``size`` (transposed convolutions in G, strided convolutions in D)."""
        return int(math.log2(self.size // 4))


def dcgan_paper(**kw) -> DCGANConfig:
    """Figure 1 of Radford et al. 2016: 64×64×3 images from 100-d z, 4×4×1024 at the bottom."""
    return DCGANConfig(**{**dict(channels=3, size=64, z_dim=100, gen_channels=1024, disc_channels=128), **kw})


def dcgan_small(**kw) -> DCGANConfig:
    """The course's frames: 32×32×1, G 512 → 256 → 128 → 1, D 1 → 128 → 256 → 512 → logit."""
    return DCGANConfig(**kw)


def dcgan_tiny(**kw) -> DCGANConfig:
    """Tests and the smoke profile: 16×16×1, G 32 → 16 → 1, D 1 → 16 → 32 → logit."""
    return DCGANConfig(**{**dict(size=16, z_dim=16, gen_channels=32, disc_channels=16), **kw})


def init_dcgan_weights(module: nn.Module) -> nn.Module:
    """Every conv, transposed conv and linear weight from N(0, 0.02) and biases at 0 (Radford et al. 2016, §4);
    batch-norm scales 1 and shifts 0. In place; returns the module."""
    for m in module.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                          nn.ConvTranspose3d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module


def sample_z(n: int, dim: int, device: torch.device | str | None = None,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """z ~ U(−1, 1)^dim, the uniform prior of DCGAN and TGAN: (n, dim)."""
    return torch.rand(n, dim, generator=generator, device=device) * 2 - 1


class DCGANGenerator(nn.Module):
    """z (N, z_dim) -> frames (N, C, size, size) in [-1, 1]: project and reshape, then transposed convolutions."""

    def __init__(self, cfg: DCGANConfig):
        super().__init__()
        self.cfg = cfg
        c = cfg.gen_channels
        self.project = nn.Linear(cfg.z_dim, c * 16, bias=False)  # "project and reshape": z -> (c, 4, 4)
        self.project_norm = nn.BatchNorm2d(c)
        layers: list[nn.Module] = []
        for i in range(cfg.levels):  # 4 -> 8 -> ... -> size
            last = i == cfg.levels - 1
            c_out = cfg.channels if last else c // 2
            layers.append(nn.ConvTranspose2d(c, c_out, 4, 2, 1, bias=last))  # doubles H and W
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(c_out), nn.ReLU()]  # rules 2 and 4
            c = c_out
        self.net = nn.Sequential(*layers)
        init_dcgan_weights(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.ndim != 2 or z.shape[1] != self.cfg.z_dim:
            raise ValueError(f"expected z of shape (N, {self.cfg.z_dim}), got {tuple(z.shape)}")
        h = rearrange(self.project(z), "n (c h w) -> n c h w", h=4, w=4)  # (N, gen_channels, 4, 4)
        return self.net(torch.relu(self.project_norm(h)))  # (N, C, size, size)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n frames from z ~ U(−1, 1), in the module's current mode (eval mode after :func:`standing_statistics`):
        -> (n, C, size, size) in [-1, 1]."""
        return self(sample_z(n, self.cfg.z_dim, self.project.weight.device, generator))


class DCGANDiscriminator(nn.Module):
    """frames (N, C, size, size) -> logits (N,): strided convolutions, LeakyReLU(0.2), one linear logit."""

    def __init__(self, cfg: DCGANConfig):
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        c = cfg.channels
        for i in range(cfg.levels):  # size -> size/2 -> ... -> 4
            c_out = cfg.disc_channels * 2 ** i
            layers.append(nn.Conv2d(c, c_out, 4, 2, 1, bias=i == 0 or cfg.disc_norm != "batch"))
            if i > 0 and cfg.disc_norm == "batch":  # rule 2: no batch norm on the input layer
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2))
            c = c_out
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * 16, 1))  # rule 3: flatten into one logit
        init_dcgan_weights(self)
        if cfg.disc_norm == "spectral":
            apply_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.cfg.channels, self.cfg.size, self.cfg.size):
            raise ValueError(f"expected frames of shape (N, {self.cfg.channels}, {self.cfg.size}, {self.cfg.size}), "
                             f"got {tuple(x.shape)}")
        return self.net(x)[:, 0]  # (N,)


@torch.no_grad()
def standing_statistics(generator: nn.Module, batches: int = 8, batch_size: int = 256,
                        rng: torch.Generator | None = None) -> nn.Module:
    """Set every batch-norm layer's running mean and variance to their average over ``batches`` batches of random z
    ("standing statistics", Brock, Donahue & Simonyan 2019, App. C.1), then switch to eval mode; returns the module.

    An EMA copy of a generator averages its weights but not its batch-norm statistics, and a small or correlated
    batch (an interpolation) normalised by its own statistics looks nothing like training: with standing statistics
    every frame is normalised the same way, whatever else is in its batch. ``generator.cfg.z_dim`` is its input."""
    norms = [m for m in generator.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches below
    generator.train()
    device = next(generator.parameters()).device
    for _ in range(batches):
        generator(sample_z(batch_size, generator.cfg.z_dim, device, rng))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return generator.eval()


def dcgan(cfg: DCGANConfig) -> nn.ModuleDict:
    """The pair the training loop trains: ``{"G": generator, "D": discriminator}``."""
    return nn.ModuleDict({"G": DCGANGenerator(cfg), "D": DCGANDiscriminator(cfg)})


def gan_step(trainer, real: torch.Tensor, z: torch.Tensor, loss: str = "nonsaturating", r1_gamma: float = 0.0,
             clip_every: int = 0) -> dict[str, torch.Tensor]:
    """One GAN update on the trainer's networks ``trainer.forward_model["G"]`` and ``["D"]`` (optimizers "disc" and
    "gen"); returns the losses as tensors (no host sync).

    1. discriminator: ``loss``'s D loss on D(real) and D(G(z)) (G's output detached), plus the R1 penalty
       γ/2 · E‖∇D(real)‖² when ``r1_gamma`` > 0 (Mescheder et al. 2018, eq. (9)); one optimizer step;
    2. every ``clip_every``-th step (counted by ``trainer.step``), singular value clipping of the discriminator's
       weights (TGAN, Saito et al. 2017, §4.2);
    3. generator: ``loss``'s G loss on D(G(z)) through the updated discriminator; one optimizer step.

    ``real`` and G(z) may be frames (B, C, H, W) or clips (B, C, T, H, W) in [-1, 1]: D decides. ``z`` is whatever G
    takes, e.g. (N, z_dim) (its batch need not match). Returns a dict of () tensors: loss_d (D's adversarial loss,
    without R1), r1 (only when ``r1_gamma`` > 0) and loss_g."""
    nets = trainer.forward_model
    d_loss_fn, g_loss_fn = adversarial_losses(loss)
    fake = nets["G"](z)
    loss_d = d_loss_fn(nets["D"](real), nets["D"](fake.detach()))
    logs = {"loss_d": loss_d}
    if r1_gamma > 0:
        r1 = r1_penalty(nets["D"], real, r1_gamma)
        logs["r1"] = r1
        loss_d = loss_d + r1
    trainer.optimize(loss_d, "disc")
    if clip_every and (trainer.step + 1) % clip_every == 0:
        clip_singular_values(trainer.model["D"])  # the uncompiled module: the same parameters
    loss_g = g_loss_fn(nets["D"](fake))
    trainer.optimize(loss_g, "gen")
    return logs | {"loss_g": loss_g}

