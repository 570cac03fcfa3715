"""Stochastic adversarial video prediction, SAVP-style: a VAE and a GAN on one predictor (Lee et al. 2018).

Given the first ``context_frames`` frames x_0..x_{c−1}, predict the rest. The future is uncertain, so the predictor
takes a latent z_{t−1} at every step:  x̂_t = G(x̂_{t−1}, z_{t−1}, memory), fed its own predictions after the context.

- **VAE** (§3.2): a learned posterior q(z_{t−1} | x_{t−1}, x_t) = E(x_{t−1}, x_t), an encoder of consecutive frame
  pairs, gives latents that explain the true next frame; the predictor reconstructs the clip from them, an L1 loss
  on pixels, and a KL term pulls q towards the unit Gaussian prior p(z) = N(0, I) from which test-time latents are
  drawn:  L_1 = ‖x_{c:T} − G(x_{0:c}, z ~ q)‖₁,  L_KL = Σ_t KL(q(z_{t−1} | x_{t−1:t}) ‖ N(0, I)).
- **GAN** (eq. (5)): clips predicted from prior latents z ~ N(0, I) must fool a video discriminator D, so they
  look real however far they drift from the particular true future.
- **VAE-GAN** (eq. (6)): clips reconstructed from posterior latents must fool a second discriminator D^VAE.

SAVP (eq. (7)) minimises λ₁ L_1 + λ_KL L_KL + L_GAN + L_GAN^VAE: the VAE terms make every latent explain a real
future (coverage), the GAN terms make every sample sharp. Its ablations drop one side: **VAE-only** (L_1 + KL) and
**GAN-only** (no encoder: the L1 and GAN losses on prior samples, as in the authors' ``ours_gan`` configuration).

The predictor follows SAVP's generator at 32×32 in miniature: a convolutional encoder-decoder with a ConvGRU memory
at 8×8 and 16×16 (SAVP: ConvLSTM), z tiled into its input and its bottleneck, and CDNA outputs (Finn et al. 2016):
K normalised kernels predicted from the bottleneck move the previous frame's pixels, and per-pixel masks mix the
K moved copies with a generated image. In training it reads the true previous frame (teacher forcing): SAVP's
scheduled sampling starts there and moves to the model's own predictions over 100,000 steps, so runs of a few
thousand steps never leave its start. Sampling always feeds the predictions back.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import nn

from vgcourse.gan.convgru import ConvGRUCell
from vgcourse.gan.dvdgan import TemporalDiscriminator
from vgcourse.gan.losses import adversarial_losses


@dataclass(frozen=True)
class PredictorConfig:
    """Sizes of the predictor, its posterior encoder and its discriminators."""

    image_size: int = 32
    frames: int = 12  # clip length in training: context + predicted (SAVP on BAIR: 2 + 10)
    context_frames: int = 2
    channels: int = 1
    latent_dim: int = 8  # nz: one latent of this size per step (SAVP: 8)
    width: int = 32  # ngf: the predictor's channels at 16×16 (2·width at 8×8)
    encoder_width: int = 32  # nef: the posterior encoder's
    transforms: int = 4  # K CDNA kernels
    kernel_size: int = 5  # of each CDNA kernel: moves pixels by up to kernel_size // 2 per step
    disc_width: int = 32

    def __post_init__(self):
        if self.image_size % 4:
            raise ValueError(f"the predictor halves the frame twice: image_size must be a multiple of 4, "
                             f"got {self.image_size}")
        if not 1 <= self.context_frames < self.frames:
            raise ValueError(f"context_frames must be in [1, frames), got {self.context_frames} of {self.frames}")
        if self.kernel_size % 2 == 0:
            raise ValueError(f"CDNA kernels need an odd size (a centre pixel), got {self.kernel_size}")


# ---- networks --------------------------------------------------------------------------------------------
def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    """conv 3×3 (stride 1 or 2), group norm, LeakyReLU 0.2."""
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(min(8, cout // 4) or 1, cout),
                         nn.LeakyReLU(0.2))


class PosteriorEncoder(nn.Module):
    """E: a pair of consecutive frames (N, 2C, H, W) -> the mean and log-variance (N, nz) of q(z | x_{t−1}, x_t)."""

    def __init__(self, config: PredictorConfig):
        super().__init__()
        w = config.encoder_width
        self.net = nn.Sequential(conv_block(2 * config.channels, w, 2), conv_block(w, 2 * w, 2),  # H => H/4
                                 conv_block(2 * w, 4 * w, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten())  # => H/8, pool
        self.mean = nn.Linear(4 * w, config.latent_dim)
        self.log_var = nn.Linear(4 * w, config.latent_dim)

    def forward(self, video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """video (B, C, T, H, W) -> mean, log-variance (B, T − 1, nz) for the steps t−1 -> t, t = 1..T−1."""
        b = video.shape[0]
        pairs = torch.cat([video[:, :, :-1], video[:, :, 1:]], dim=1)  # (B, 2C, T−1, H, W): (x_{t−1}, x_t)
        h = self.net(rearrange(pairs, "b c t h w -> (b t) c h w"))
        mean, log_var = self.mean(h), self.log_var(h).clamp(-10, 10)  # SAVP clips the log-variance too
        return (rearrange(mean, "(b t) d -> b t d", b=b), rearrange(log_var, "(b t) d -> b t d", b=b))


def apply_cdna(image: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """Move an image's pixels with per-sample kernels (Finn et al. 2016, CDNA): image (B, C, H, W), kernels
    (B, K, k, k) -> K moved copies (B, K, C, H, W); the edges are padded by replication."""
    b, c, h, w = image.shape
    k, size = kernels.shape[1], kernels.shape[-1]
    padded = F.pad(image, (size // 2,) * 4, mode="replicate").reshape(1, b * c, h + size - 1, w + size - 1)
    weight = repeat(kernels, "b k p q -> (b c k) 1 p q", c=c)  # each (sample, channel) group gets its K kernels
    moved = F.conv2d(padded, weight, groups=b * c)  # (1, B·C·K, H, W)
    return rearrange(moved, "1 (b c k) h w -> b k c h w", b=b, c=c, k=k)


class FramePredictor(nn.Module):
    """G, one step: the previous frame (B, C, H, W), a latent (B, nz) and the memory -> the next frame and memory.

    Encoder 32 -> 16 -> 8, a ConvGRU at 8×8 and one at 16×16 (the memory), a decoder back to 32; from the 8×8
    features, K CDNA kernels (softmax-normalised); from the last features, a generated image (tanh) and K + 1 masks
    (softmax over the K moved copies of the previous frame and the generated image)."""

    def __init__(self, config: PredictorConfig):
        super().__init__()
        c, w, nz = config, config.width, config.latent_dim
        self.config = c
        self.enc1 = conv_block(c.channels + nz, w, 2)  # H => H/2
        self.enc2 = conv_block(w, 2 * w, 2)  # => H/4
        self.gru_low = ConvGRUCell(2 * w + nz, 2 * w)  # memory at H/4, z added again
        self.dec1 = conv_block(2 * w, w)  # after upsampling to H/2
        self.gru_high = ConvGRUCell(2 * w, w)  # memory at H/2, with the encoder's skip
        self.dec2 = conv_block(2 * w, w)  # after upsampling to H, with the input's skip
        low = c.image_size // 4
        self.kernels = nn.Linear(2 * w * low * low, c.transforms * c.kernel_size ** 2)
        self.scratch = nn.Conv2d(w, c.channels, 3, padding=1)
        self.masks = nn.Conv2d(w, c.transforms + 1, 3, padding=1)
        self.skip_in = nn.Conv2d(c.channels, w, 3, padding=1)
        self.start_by_copying()

    @torch.no_grad()
    def start_by_copying(self, centre: float = 5.0, scratch: float = -2.0) -> None:
        """Start as the "copy the last frame" predictor: every CDNA kernel peaked at its centre (a logit bias of
        ``centre``), the generated image's mask held back (a bias of ``scratch``); training then learns to move."""
        k = self.config.kernel_size
        bias = torch.zeros(self.config.transforms, k * k)
        bias[:, (k * k) // 2] = centre
        self.kernels.bias.copy_(bias.flatten())
        self.kernels.weight.mul_(0.1)
        self.masks.bias.zero_()
        self.masks.bias[-1] = scratch

    def forward(self, frame: torch.Tensor, z: torch.Tensor,
                memory: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        c = self.config
        h_low, h_high = memory if memory is not None else (None, None)
        tile = lambda x: z[:, :, None, None].expand(-1, -1, *x.shape[2:])  # noqa: E731 - z at every pixel
        e1 = self.enc1(torch.cat([frame, tile(frame)], 1))  # (B, w, H/2, W/2)
        e2 = self.enc2(e1)  # (B, 2w, H/4, W/4)
        h_low = self.gru_low(torch.cat([e2, tile(e2)], 1), h_low)  # (B, 2w, H/4, W/4)
        d1 = self.dec1(F.interpolate(h_low, scale_factor=2, mode="nearest"))  # (B, w, H/2, W/2)
        h_high = self.gru_high(torch.cat([d1, e1], 1), h_high)  # (B, w, H/2, W/2)
        d2 = self.dec2(torch.cat([F.interpolate(h_high, scale_factor=2, mode="nearest"), self.skip_in(frame)], 1))
        kernels = self.kernels(h_low.flatten(1)).view(-1, c.transforms, c.kernel_size ** 2).softmax(-1)
        moved = apply_cdna(frame, kernels.view(-1, c.transforms, c.kernel_size, c.kernel_size))  # (B, K, C, H, W)
        candidates = torch.cat([moved, torch.tanh(self.scratch(d2))[:, None]], 1)  # (B, K + 1, C, H, W)
        masks = self.masks(d2).softmax(1)[:, :, None]  # (B, K + 1, 1, H, W): sums to 1 at every pixel
        return (masks * candidates).sum(1), (h_low, h_high)


class VideoPredictor(nn.Module):
    """The predictor unrolled: the context frames and latents z_0..z_{T−2} -> predicted frames x̂_c..x̂_{T−1}."""

    def __init__(self, config: PredictorConfig):
        super().__init__()
        self.config = config
        self.step = FramePredictor(config)

    def forward(self, context: torch.Tensor, z: torch.Tensor, teacher: torch.Tensor | None = None) -> torch.Tensor:
        """context (B, C, c, H, W), z (B, T − 1, nz) -> the predicted future (B, C, T − c, H, W).

        Step t reads x_{t−1} (a real frame while t − 1 < c, then its own prediction) and z_{t−1}; the outputs of
        the steps inside the context only warm up the memory. With ``teacher`` (the true clip (B, C, T, H, W)) every
        step reads the true previous frame instead (teacher forcing)."""
        c, total = context.shape[2], z.shape[1] + 1
        memory, frame, future = None, context[:, :, 0], []
        for t in range(1, total):
            pred, memory = self.step(frame, z[:, t - 1], memory)
            if t >= c:
                future.append(pred)
            frame = context[:, :, t] if t < c else (teacher[:, :, t] if teacher is not None else pred)
        return torch.stack(future, dim=2)

    def prior_latents(self, n: int, frames: int | None = None, generator: torch.Generator | None = None,
                      device: torch.device | str | None = None) -> torch.Tensor:
        """z ~ N(0, I): (n, T − 1, nz)."""
        device = device if device is not None else next(self.parameters()).device
        t = frames or self.config.frames
        return torch.randn(n, t - 1, self.config.latent_dim, generator=generator, device=device)

    def predict(self, context: torch.Tensor, frames: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """A sample of the future from prior latents, as a whole clip (context + prediction) (B, C, T, H, W)."""
        z = self.prior_latents(context.shape[0], frames, generator, context.device)
        return torch.cat([context, self(context, z)], dim=2)


# ---- losses and the step -------------------------------------------------------------------------------------
def kl_to_unit_gaussian(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ (μ² + σ² − 1 − log σ²), summed over the latent, averaged over clips and steps
    (Kingma & Welling 2014, App. B)."""
    return 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(-1).mean()


def reparameterise(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """z = μ + σ ε, ε ~ N(0, I): a posterior sample that gradients flow through (Kingma & Welling 2014, §2.4)."""
    return mean + (0.5 * log_var).exp() * torch.randn_like(mean)


@dataclass(frozen=True)
class PredictionRecipe:
    """The losses of one variant (SAVP's BAIR settings: λ₁ = 100, λ_KL = 0.1, both GAN weights 1).

    ``posterior``: whether latents come from the encoder E in training (the VAE and the hybrid); without it, the L1
    loss falls on the prior samples (SAVP's GAN-only ablation)."""

    posterior: bool = True
    teacher_forcing: bool = True  # training steps read the true previous frame (SAVP's scheduled sampling at its start)
    l1_weight: float = 100.0
    kl_weight: float = 0.1
    gan_weight: float = 1.0  # L_GAN on prior samples (0: no D)
    vae_gan_weight: float = 1.0  # L_GAN^VAE on posterior samples (0: no D_vae)
    loss: str = "nonsaturating"

    def __post_init__(self):
        if not self.posterior and (self.kl_weight or self.vae_gan_weight):
            raise ValueError("without a posterior there is no KL term and no VAE-GAN term: set kl_weight and "
                             "vae_gan_weight to 0")

    @property
    def networks(self) -> set[str]:
        """The networks this recipe trains."""
        return ({"G"} | ({"E"} if self.posterior else set()) | ({"D"} if self.gan_weight > 0 else set())
                | ({"D_vae"} if self.vae_gan_weight > 0 else set()))


MODES = {  # SAVP (hybrid) and its two ablations on the same network
    "hybrid": PredictionRecipe(),
    "vae": PredictionRecipe(gan_weight=0.0, vae_gan_weight=0.0),
    "gan": PredictionRecipe(posterior=False, kl_weight=0.0, vae_gan_weight=0.0),  # SAVP's ours_gan: L1 + GAN, prior
}


def build_predictor(config: PredictorConfig, recipe: PredictionRecipe | str = "hybrid") -> nn.ModuleDict:
    """The networks a recipe trains (a name of :data:`MODES` or a recipe): "G" always, "E" with a posterior, "D"
    with a GAN term on prior samples, "D_vae" with the VAE-GAN term. The discriminators are 3D ResNet discriminators
    on whole clips, context and prediction (SAVP: a spectrally normalised 3D convolutional one)."""
    if isinstance(recipe, str):
        if recipe not in MODES:
            raise ValueError(f"mode must be one of {sorted(MODES)}, got {recipe!r}")
        recipe = MODES[recipe]
    c = config
    nets: dict[str, nn.Module] = {"G": VideoPredictor(c)}
    if recipe.posterior:
        nets["E"] = PosteriorEncoder(c)
    for name in ("D", "D_vae"):
        if name in recipe.networks:
            nets[name] = TemporalDiscriminator(c.channels, c.disc_width, downsample=1)
    return nn.ModuleDict(nets)


def prediction_step(trainer, batch, recipe: PredictionRecipe) -> dict[str, torch.Tensor]:
    """One step of a variant: the discriminators (if any) on real clips against predicted ones, then the predictor
    (and the posterior encoder) on λ₁ L_1 + λ_KL L_KL + the GAN terms (Lee et al. 2018, eq. (7)). Optimizers: "gen"
    (G and E), "disc".

    Inputs: ``batch``, a video (B, C, T, H, W) in [-1, 1] (or a batch with ``.video``), T >= ``config.frames`` (cut
    to its first ``frames``), H = W = ``config.image_size``. Returns a dict of () tensors: l1, kl (only with a
    posterior), d (with a discriminator) and g_D, g_D_vae (one per discriminator in use)."""
    m = trainer.forward_model
    G = m["G"]
    cfg = G.config
    d_loss_fn, g_loss_fn = adversarial_losses(recipe.loss)
    real = batch.video if hasattr(batch, "video") else batch  # (B, C, T, H, W)
    real = real[:, :, :cfg.frames]
    context, future = real[:, :, :cfg.context_frames], real[:, :, cfg.context_frames:]
    teacher = real if recipe.teacher_forcing else None
    logs: dict[str, torch.Tensor] = {}
    clips: dict[str, torch.Tensor] = {}  # whole predicted clips (context + prediction) for the discriminators

    g_loss = torch.zeros((), device=real.device)
    if recipe.posterior:  # VAE: reconstruct the true future from posterior latents
        mean, log_var = m["E"](real)  # (B, T − 1, nz)
        recon = G(context, reparameterise(mean, log_var), teacher)  # (B, C, T − c, H, W)
        kl = kl_to_unit_gaussian(mean, log_var)
        l1 = (recon - future).abs().mean()
        g_loss = g_loss + recipe.l1_weight * l1 + recipe.kl_weight * kl
        logs |= {"l1": l1.detach(), "kl": kl.detach()}
        clips["D_vae"] = torch.cat([context, recon], 2)
    if recipe.gan_weight > 0:  # GAN: samples from the prior
        sample = G(context, G.prior_latents(real.shape[0], cfg.frames, device=real.device), teacher)
        clips["D"] = torch.cat([context, sample], 2)
        if not recipe.posterior:  # GAN-only: the L1 loss falls on the prior samples
            l1 = (sample - future).abs().mean()
            g_loss = g_loss + recipe.l1_weight * l1
            logs["l1"] = l1.detach()
    weights = {"D": recipe.gan_weight, "D_vae": recipe.vae_gan_weight}
    judged = [name for name in clips if weights[name] > 0]

    if judged:
        d_loss = sum(d_loss_fn(m[name](real), m[name](clips[name].detach())) for name in judged)
        logs["d"] = d_loss.detach()
        trainer.optimize(d_loss, "disc")
        for name in judged:
            m[name].requires_grad_(False)
        for name in judged:
            g_gan = g_loss_fn(m[name](clips[name]))
            g_loss = g_loss + weights[name] * g_gan
            logs[f"g_{name}"] = g_gan.detach()
    trainer.optimize(g_loss, "gen")
    for name in judged:
        m[name].requires_grad_(True)
    return logs
