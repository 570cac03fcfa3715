"""MoCoGAN: a video as one content code and a path of motion codes (Tulyakov, Liu, Yang & Kautz 2018).

A clip of T frames is drawn from a latent path [z_C, z_M(1)], ..., [z_C, z_M(T)] (§3.1):

- the **content code** z_C ~ N(0, I_{d_C}) is drawn once per clip and held for all its frames;
- the **motion codes** come from a recurrent network R_M, a one-layer GRU: h_0 ~ N(0, I) and, at each step,
  a fresh ε_t ~ N(0, I); z_M(t) = h_t = GRU(ε_t, h_{t-1}) (§3.1, Fig. 2);
- an **image generator** G_I maps each [z_C, z_M(t)] to frame t, independently of the other frames
  (the paper's G_I is a DCGAN generator of transposed convolutions).

Two discriminators train it (eq. (2)): D_I judges single frames (is this a real frame?) and D_V judges whole
clips (is this real motion?), each with its own adversarial loss, and G minimises both. Because z_C is shared
and z_M varies, the model is pushed to put *what* is in the clip into z_C and *how it moves* into z_M: clips
with one content code and different motion codes should show the same objects moving differently, and a GRU
unrolled for more steps than it was trained on gives longer clips.

Sizes: :func:`mocogan_paper` is the configuration of the authors' code (d_C = 50, d_M = 10, 64 filters,
64×64 frames, batch norm); :class:`MoCoGANConfig`'s defaults are the course's 32×32 greyscale model.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from einops import rearrange, repeat
from torch import nn

from vgcourse.gan.losses import adversarial_losses
from vgcourse.gan.regularizers import r1_due, r1_penalty

NORMS = ("batch", "group", "none")


@dataclass(frozen=True)
class MoCoGANConfig:
    """Sizes of a MoCoGAN (generator and both discriminators)."""

    image_size: int = 32
    frames: int = 16  # T of the clips it trains on (the GRU can be unrolled for more)
    channels: int = 1
    content_dim: int = 50  # d_C
    motion_dim: int = 10  # d_M: the GRU's hidden size
    noise_dim: int = 10  # d_ε: the GRU's input size (the paper's code uses d_M)
    gen_width: int = 64  # ngf: channels of G_I at its last hidden layer, doubled at each lower resolution
    gen_norm: str = "batch"  # normalisation in G_I: 'batch' (paper), 'group' or 'none'
    gen_refine: bool = False  # add a 3×3 convolution after each transposed convolution of G_I
    disc_width: int = 64  # ndf of both discriminators
    disc_norm: str = "batch"  # normalisation in D_I and D_V: 'batch' (paper) or 'none' (with R1 / SN)

    def __post_init__(self):
        if self.image_size < 16 or self.image_size & (self.image_size - 1):
            raise ValueError(f"image_size must be a power of two >= 16, got {self.image_size}")
        if self.frames < 13:
            raise ValueError(f"D_V's four temporal convolutions of kernel 4 need at least 13 frames, got {self.frames}")
        for name in ("gen_norm", "disc_norm"):
            if getattr(self, name) not in NORMS:
                raise ValueError(f"{name} must be one of {NORMS}, got {getattr(self, name)!r}")
        for name in ("channels", "content_dim", "motion_dim", "noise_dim", "gen_width", "disc_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


def mocogan_paper(image_size: int = 64, channels: int = 3, frames: int = 16) -> MoCoGANConfig:
    """The sizes of the authors' code (``sergeytulyakov/mocogan``, models.py and train.py): d_C = 50, d_M = d_ε = 10,
    ngf = ndf = 64, batch norm in G_I and both discriminators, 64×64 RGB frames, 16-frame clips."""
    return MoCoGANConfig(image_size=image_size, frames=frames, channels=channels, content_dim=50, motion_dim=10,
                         noise_dim=10, gen_width=64, gen_norm="batch", disc_width=64, disc_norm="batch")


def _norm2d(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(32, channels // 4) or 1, channels)
    return nn.Identity()


# ---- the generator ----------------------------------------------------------------------------------------
class MotionRNN(nn.Module):
    """R_M: a one-layer GRU that turns noise ε_1..ε_T into motion codes z_M(1..T), starting from h_0 (§3.1).

    Inputs: h0 (B, d_M), noise (B, T, d_ε). Returns z_M (B, T, d_M): the hidden states h_1..h_T.
    """

    def __init__(self, motion_dim: int, noise_dim: int):
        super().__init__()
        self.gru = nn.GRU(noise_dim, motion_dim, batch_first=True)

    def forward(self, h0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        out, _ = self.gru(noise.contiguous(), h0[None].contiguous())  # (B, T, d_M); cuDNN wants contiguous
        return out


class ImageGenerator(nn.Module):
    """G_I, a DCGAN generator (Radford et al. 2016): a code (N, d) -> an image (N, C, H, W) in [-1, 1].

    A 4×4 transposed convolution makes a 4×4 map from the code, then each stride-2 transposed convolution (kernel
    4) doubles the resolution and halves the channels, the last one to C channels and tanh. Channels at
    resolution r: ngf · H / (2r), so 8·ngf at 4×4 for 64×64 frames as in the paper."""

    def __init__(self, code_dim: int, image_size: int, channels: int, width: int, norm: str = "batch",
                 refine: bool = False):
        super().__init__()
        ch = lambda r: width * image_size // (2 * r)  # noqa: E731 - channels at resolution r
        layers: list[nn.Module] = [nn.ConvTranspose2d(code_dim, ch(4), 4, 1, 0, bias=False),  # 1×1 => 4×4
                                   _norm2d(norm, ch(4)), nn.ReLU()]
        r = 4
        while 2 * r < image_size:
            layers += [nn.ConvTranspose2d(ch(r), ch(2 * r), 4, 2, 1, bias=False),  # r×r => 2r×2r
                       _norm2d(norm, ch(2 * r)), nn.ReLU()]
            if refine:
                layers += [nn.Conv2d(ch(2 * r), ch(2 * r), 3, 1, 1, bias=False), _norm2d(norm, ch(2 * r)), nn.ReLU()]
            r *= 2
        layers += [nn.ConvTranspose2d(ch(r), channels, 4, 2, 1, bias=False), nn.Tanh()]  # => image_size
        self.net = nn.Sequential(*layers)

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        return self.net(code[:, :, None, None])  # (N, d, 1, 1) -> (N, C, H, W)


@dataclass
class MoCoLatents:
    """The latents of a batch of clips: content (B, d_C), the GRU's start h0 (B, d_M), its inputs noise (B, T, d_ε)."""

    content: torch.Tensor
    h0: torch.Tensor
    noise: torch.Tensor

    def __len__(self) -> int:
        return self.content.shape[0]

    def __getitem__(self, index) -> "MoCoLatents":
        return MoCoLatents(self.content[index], self.h0[index], self.noise[index])

    def with_content(self, content: torch.Tensor) -> "MoCoLatents":
        """The same motion with other content codes (B, d_C)."""
        return MoCoLatents(content.expand_as(self.content), self.h0, self.noise)

    def with_motion(self, other: "MoCoLatents") -> "MoCoLatents":
        """This content with ``other``'s motion (its h0 and noise)."""
        return MoCoLatents(self.content, other.h0.expand_as(self.h0), other.noise.expand(len(self), -1, -1))


class MoCoGANGenerator(nn.Module):
    """G = G_I ∘ [z_C, R_M]: latents -> a video (B, C, T, H, W) in [-1, 1] (Tulyakov et al. 2018, §3.1)."""

    def __init__(self, config: MoCoGANConfig):
        super().__init__()
        self.config = config
        self.motion = MotionRNN(config.motion_dim, config.noise_dim)
        self.image = ImageGenerator(config.content_dim + config.motion_dim, config.image_size, config.channels,
                                    config.gen_width, config.gen_norm, config.gen_refine)

    def sample_latents(self, n: int, frames: int | None = None, generator: torch.Generator | None = None,
                       device: torch.device | str | None = None) -> MoCoLatents:
        """z_C, h_0 and ε_1..ε_T, all N(0, I); ``frames`` defaults to the training length T."""
        c, t = self.config, frames or self.config.frames
        device = device if device is not None else next(self.parameters()).device
        draw = lambda *shape: torch.randn(*shape, generator=generator, device=device)  # noqa: E731
        return MoCoLatents(draw(n, c.content_dim), draw(n, c.motion_dim), draw(n, t, c.noise_dim))

    def codes(self, latents: MoCoLatents) -> torch.Tensor:
        """The per-frame codes [z_C, z_M(t)] (B, T, d_C + d_M): z_C repeated, z_M from the GRU."""
        z_m = self.motion(latents.h0, latents.noise)  # (B, T, d_M)
        z_c = repeat(latents.content, "b d -> b t d", t=z_m.shape[1])  # (B, T, d_C): held for the whole clip
        return torch.cat([z_c, z_m], dim=-1)

    def forward(self, latents: MoCoLatents) -> torch.Tensor:
        codes = self.codes(latents)  # (B, T, d)
        frames = self.image(rearrange(codes, "b t d -> (b t) d"))  # (B·T, C, H, W): each frame on its own
        return rearrange(frames, "(b t) c h w -> b c t h w", b=codes.shape[0])

    def sample(self, n: int, frames: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """n clips (n, C, T, H, W) from fresh latents."""
        return self(self.sample_latents(n, frames, generator))


# ---- the discriminators ---------------------------------------------------------------------------------
class ImageDiscriminator(nn.Module):
    """D_I, the paper's patch image discriminator: frames (N, C, H, W) -> logits (N, H/16 · W/16).

    Four stride-2 convolutions of kernel 4 (LeakyReLU 0.2; batch norm after the second and third in the paper's
    code), each output a score for one patch of the frame."""

    def __init__(self, image_size: int, channels: int, width: int, norm: str = "batch"):
        super().__init__()
        self.channels = channels
        bn = norm == "batch"
        norm2d = lambda c: nn.BatchNorm2d(c) if bn else nn.Identity()  # noqa: E731
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2),  # H => H/2
            nn.Conv2d(width, 2 * width, 4, 2, 1, bias=not bn), norm2d(2 * width), nn.LeakyReLU(0.2),  # => H/4
            nn.Conv2d(2 * width, 4 * width, 4, 2, 1, bias=not bn), norm2d(4 * width), nn.LeakyReLU(0.2),  # => H/8
            nn.Conv2d(4 * width, 1, 4, 2, 1),  # => H/16: one score per patch
        )

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.ndim != 4 or frames.shape[1] != self.channels or frames.shape[2] % 16 or frames.shape[3] % 16:
            hint = " (clips? take their frames first, e.g. with sample_frames)" if frames.ndim == 5 else ""
            raise ValueError(f"expected frames of shape (N, {self.channels}, H, W) with H and W multiples of 16 (one "
                             f"score per 16×16 patch), got {tuple(frames.shape)}{hint}")
        return self.net(frames).flatten(1)


class VideoDiscriminator(nn.Module):
    """D_V, the paper's patch video discriminator: clips (B, C, T, H, W) -> logits (B, (T − 12) · H/16 · W/16).

    Four 3D convolutions of kernel 4, stride (1, 2, 2), no temporal padding: each halves the frame and trims 3
    frames, so each score judges 13 consecutive frames of one patch (16 frames give 4 × H/16 × W/16 scores)."""

    def __init__(self, image_size: int, channels: int, width: int, norm: str = "batch"):
        super().__init__()
        self.channels = channels
        bn = norm == "batch"
        norm3d = lambda c: nn.BatchNorm3d(c) if bn else nn.Identity()  # noqa: E731
        down = dict(kernel_size=4, stride=(1, 2, 2), padding=(0, 1, 1))
        self.net = nn.Sequential(
            nn.Conv3d(channels, width, **down), nn.LeakyReLU(0.2),  # T => T − 3, H => H/2
            nn.Conv3d(width, 2 * width, bias=not bn, **down), norm3d(2 * width), nn.LeakyReLU(0.2),  # => H/4
            nn.Conv3d(2 * width, 4 * width, bias=not bn, **down), norm3d(4 * width), nn.LeakyReLU(0.2),  # => H/8
            nn.Conv3d(4 * width, 1, **down),  # => T − 12, H/16: one score per space-time patch
        )

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        if (video.ndim != 5 or video.shape[1] != self.channels or video.shape[2] < 13
                or video.shape[3] % 16 or video.shape[4] % 16):
            raise ValueError(f"expected clips of shape (B, {self.channels}, T, H, W) with T >= 13 (each score judges "
                             f"13 frames) and H, W multiples of 16, got {tuple(video.shape)}")
        return self.net(video).flatten(1)


def build_mocogan(config: MoCoGANConfig) -> nn.ModuleDict:
    """{"G": generator, "D_I": image discriminator, "D_V": video discriminator}: what the training loop holds."""
    c = config
    return nn.ModuleDict({"G": MoCoGANGenerator(c),
                          "D_I": ImageDiscriminator(c.image_size, c.channels, c.disc_width, c.disc_norm),
                          "D_V": VideoDiscriminator(c.image_size, c.channels, c.disc_width, c.disc_norm)})


# ---- the training step ------------------------------------------------------------------------------------
def sample_frames(video: torch.Tensor, k: int) -> torch.Tensor:
    """k random frames of each clip, as images: (B, C, T, H, W) -> (B·k, C, H, W) (drawn on the video's device)."""
    b, _, t = video.shape[:3]
    idx = torch.randint(t, (b, k), device=video.device)  # (B, k)
    picked = video[torch.arange(b, device=video.device)[:, None], :, idx]  # (B, k, C, H, W)
    return rearrange(picked, "b k c h w -> (b k) c h w")


@dataclass(frozen=True)
class MoCoGANRecipe:
    """How one training step weighs and regularises the two discriminators."""

    loss: str = "nonsaturating"  # 'nonsaturating', 'hinge' or 'wasserstein' (vgcourse.gan.losses)
    image_frames: int = 1  # frames of each clip that D_I judges
    image_weight: float = 1.0  # the weight of D_I's term in G's loss (the paper: 1)
    r1_gamma: float = 0.0  # R1 on real frames and clips (0: off)
    r1_every: int = 1  # lazy R1: every k steps, scaled by k (Karras et al. 2020 (StyleGAN2), §3.1)


def mocogan_step(trainer, batch, recipe: MoCoGANRecipe = MoCoGANRecipe()) -> dict[str, torch.Tensor]:
    """One alternating step (the paper's Algorithm 1 with one D and one G update): the discriminators on real clips
    against generated ones, then the generator against the updated discriminators.

    ``trainer.forward_model`` is a ModuleDict {"G", "D_I", "D_V"}; its optimizers are "disc" (both
    discriminators) and "gen". The generated clips of the D update are reused, detached, so G runs once a step.

    Inputs: ``batch``, a video (B, C, T, H, W) in [-1, 1] (or a batch with ``.video``), T >= 13, H and W multiples
    of 16. Returns a dict of () tensors: d_image, d_video, r1 (0 when not due), g_image, g_video.
    """
    m = trainer.forward_model
    G, D_I, D_V = m["G"], m["D_I"], m["D_V"]
    d_loss_fn, g_loss_fn = adversarial_losses(recipe.loss)
    real = batch.video if hasattr(batch, "video") else batch  # (B, C, T, H, W)
    fake = G.sample(real.shape[0], frames=real.shape[2])  # (B, C, T, H, W), with G's graph

    # discriminators: real against generated (detached)
    real_frames = sample_frames(real, recipe.image_frames)  # (B·k, C, H, W)
    fake_frames = sample_frames(fake.detach(), recipe.image_frames)
    d_image = d_loss_fn(D_I(real_frames), D_I(fake_frames))
    d_video = d_loss_fn(D_V(real), D_V(fake.detach()))
    d_loss = d_image + d_video
    r1 = torch.zeros((), device=real.device)  # logged every step (0 when not due), so every log has one set of keys
    if r1_due(trainer, recipe.r1_gamma, recipe.r1_every):
        r1 = recipe.r1_every * (r1_penalty(D_I, real_frames, recipe.r1_gamma)
                                + r1_penalty(D_V, real, recipe.r1_gamma))
        d_loss = d_loss + r1
    logs = {"d_image": d_image.detach(), "d_video": d_video.detach(), "r1": r1.detach()}
    trainer.optimize(d_loss, "disc")

    # generator: fool both (their weights frozen for this backward)
    for d in (D_I, D_V):
        d.requires_grad_(False)
    g_image = g_loss_fn(D_I(sample_frames(fake, recipe.image_frames)))
    g_video = g_loss_fn(D_V(fake))
    trainer.optimize(recipe.image_weight * g_image + g_video, "gen")
    for d in (D_I, D_V):
        d.requires_grad_(True)
    return logs | {"g_image": g_image.detach(), "g_video": g_video.detach()}

