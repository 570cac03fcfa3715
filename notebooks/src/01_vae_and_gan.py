# %% [markdown]
# # 01 · VAE and GAN on frames
#
# **What this chapter builds.** The two ideas that opened deep generative modelling, each on its own before time
# enters: a **variational autoencoder** (VAE) of single frames — an encoder, a decoder, the evidence lower bound
# (ELBO), the reparameterisation trick and the weight of its KL term — and a **DCGAN**, a generator and a
# discriminator of frames trained against each other. Both learn the frames of the course's moving digits; we walk
# through each model's latent space by interpolation, and measure them side by side: the VAE's blur against the GAN's
# sharpness, how many of the digit classes each draws (mode coverage), and the VAE's likelihood bound in bits per
# dimension.
#
# **Where it sits in the history.** This is the first era of the survey, generative adversarial networks and
# variational autoencoders:
#
# - Kingma & Welling 2014 (**VAE**, "Auto-Encoding Variational Bayes") and Rezende, Mohamed & Wierstra 2014 trained a
#   latent-variable model by maximising a lower bound on the likelihood, made differentiable by reparameterising
#   the latent draw.
# - Goodfellow et al. 2014 (**GAN**) trained a generator against a discriminator that tells its samples from data:
#   no likelihood at all.
# - Radford, Metz & Chintala 2016 (**DCGAN**) found the convolutional architecture that made GANs train reliably on
#   images, and showed that walking in z changes the image smoothly.
# - Higgins et al. 2017 (**β-VAE**) weighted the VAE's KL term to trade reconstruction for a smoother latent space.
#
# Video came next, and the next three chapters follow it: TGAN (Saito et al. 2017, chapter 02) generates a latent
# per frame, MoCoGAN (Tulyakov et al. 2018, chapter 03) splits content from motion, DVD-GAN (Clark et al. 2019,
# chapter 04) scales the discriminators up. Each inherits this chapter's pieces.
#
# **Time per profile.** The same code runs in every profile; only sizes change (chosen below with `pick`).
#
# | profile | frames | models | training | time |
# |---|---|---|---|---|
# | `smoke` | 16×16 | tiny | 3 steps each | < 1 min on 2 CPU cores (checks only) |
# | `cpu` | 16×16 | VAE 16/32 channels, DCGAN 128 → 1 | VAE 1.5 min, DCGAN 3.5 min | ≈ 6 min on 2 CPU cores |
# | `gpu` | 32×32 | VAE 32/64/128 channels, DCGAN 512 → 1 (3.4M) | VAE 0.6 min, DCGAN 1 min | ≈ 2.5 min, H100 or H200 |
#
# The cpu profile works at 16×16, where two CPU cores train enough steps for strokes to appear; the metrics'
# probe reads every size at 32×32. Its numbers are weaker than the gpu run's, committed in this notebook's outputs.

# %%
import time

STARTED = time.time()
import math
import zlib

import torch
from einops import rearrange
from torch import nn

from vgcourse.profiles import pick, setup

S = setup(seed=0)          # prints profile, device, precision, compile, torch version
torch.set_num_threads(pick(smoke=1, cpu=S.threads, gpu=S.threads))   # smoke is a CI check on shared cores

# %%
from vgcourse import results
from vgcourse.autoencoders import FrameVAE, frame_vae_small, frame_vae_tiny, gaussian_nll, negative_elbo, vae_loss
from vgcourse.data import MovingDigits
from vgcourse.diffusion import OFFSET_8BIT_BITS, dequantize
from vgcourse.display import filmstrip, plot_curves
from vgcourse.exercises import check, solution
from vgcourse.gan import (
    DCGANDiscriminator,
    DCGANGenerator,
    d_nonsaturating,
    dcgan,
    dcgan_small,
    dcgan_tiny,
    g_nonsaturating,
    gan_step,
    sample_z,
    standing_statistics,
)
from vgcourse.metrics import PROTOCOL, Evaluator, psnr, reference_rows, score
from vgcourse.metrics.frames import FrameEvaluator, format_frame_rows, frame_reference_rows, frames_as_video
from vgcourse.metrics.protocol import bar, format_rows, headline, mean_se, show_bars
from vgcourse.nn import count_parameters
from vgcourse.results import PartTimer
from vgcourse.train import TrainConfig, Trainer

timer = PartTimer(STARTED)

# %% [markdown]
# ## Sizes for this profile
#
# Everything that changes between profiles is chosen here, in plain view. Both models train for a number of
# minutes, not steps (`max_minutes`): the loop measures its seconds per step and stops at the last step that fits,
# so the chapter keeps its time on any machine. The DCGAN, the chapter's headline model, gets the larger share.
# Both train in fp32 (TF32 on the GPU), not bf16: a GAN's losses and a VAE's learned noise level are where low
# precision bites first, and these models are small.
#
# **No compilation here.** `torch.compile` makes a network of this size up to about twice as fast on the GPU, but
# compiling costs 40–100 s per network on an H200 (measured in chapter 08 and chapter 11): longer than each of these
# runs. Eager mode trains more steps in a minute. Chapter 02 makes the same choice for the same reason.

# %%
size = pick(smoke=16, cpu=16, gpu=PROTOCOL.size)         # frame size: the protocol's 32×32 on the GPU
data = PROTOCOL.dataset() if size == PROTOCOL.size else MovingDigits(size=size, frames=PROTOCOL.frames,
                                                                     digits=PROTOCOL.digits)
vae_config = pick(smoke=frame_vae_tiny(),                                 # 16×16, widths 8/16, 8 latents
                  cpu=frame_vae_small(size=16, width=16, latent_dim=16),  # 16×16, widths 16/32, 16 latents
                  gpu=frame_vae_small())                                  # 32×32, widths 32/64/128, 32 latents
gan_config = pick(smoke=dcgan_tiny(),                                     # 16×16, G 32 → 16 → 1
                  cpu=dcgan_small(size=16, gen_channels=128, disc_channels=32),  # G 128 → 64 → 1, D 32 → 64
                  gpu=dcgan_small())                                      # G 512 → 256 → 128 → 1, D 128 → 256 → 512
batch = pick(smoke=16, cpu=64, gpu=128)            # frames per step (DCGAN's paper: 128)
per_clip = pick(smoke=4, cpu=4, gpu=1)             # frames taken from each rendered clip (1: every frame independent)
max_steps = pick(smoke=3, cpu=100_000, gpu=100_000)  # a cap: the minutes below decide
vae_minutes = pick(smoke=None, cpu=1.5, gpu=0.6)
gan_minutes = pick(smoke=None, cpu=3.5, gpu=1.0)   # the headline model gets the larger share
vae_lr = 1e-3
gan_lr, gan_betas = 2e-4, (0.5, 0.999)             # Radford et al. 2016, §4: one Adam rate for G and D (why: §5)
ema_decay = pick(smoke=0.9, cpu=0.99, gpu=0.998)   # EMA of the generator's weights, for sampling
n_frames = pick(smoke=64, cpu=512, gpu=1024)       # generated frames per row of the frame scores
n_real = pick(smoke=8, cpu=64, gpu=PROTOCOL.n_real)   # held-out clips: their n_real × 16 frames are the reference
n_clips = pick(smoke=8, cpu=24, gpu=PROTOCOL.n_gen)   # clips per row of the clip protocol (§8)
standing = dict(batches=pick(smoke=2, cpu=4, gpu=8),   # standing statistics of the EMA generator (§5)
                batch_size=pick(smoke=32, cpu=256, gpu=512))
beta_exercise = 4.0                                # exercise 4: the KL weight of a second VAE
exercise_minutes = pick(smoke=None, cpu=0.75, gpu=0.3)
print(f"data: {data}")
print(f"VAE: {count_parameters(FrameVAE(vae_config)) / 1e6:.2f}M parameters, "
      f"DCGAN: G {count_parameters(DCGANGenerator(gan_config)) / 1e6:.2f}M, "
      f"D {count_parameters(DCGANDiscriminator(gan_config)) / 1e6:.2f}M; batch {batch} frames")

# %% [markdown]
# ## 1 · Frames of moving digits
#
# The models of this chapter see single frames: two handwritten digits somewhere on a dark canvas, overlapping at
# times. A training batch takes `per_clip` frames from each of `batch / per_clip` freshly rendered clips, at spread-out
# times, so that (with `per_clip = 1`) every frame of a batch is independent. Clips are rendered on the device a
# chunk of steps at a time: each render copies its random parameters from the host to the device, and that copy
# waits for the device to finish its queued work, so rendering once per step would make every step wait.

# %%
def frame_stream(data, batch: int, seed: int, device, per_clip: int = 1, chunk: int = 16):
    """batch_fn(step) -> frames (batch, C, H, W): ``per_clip`` frames from each of batch / per_clip clips,
    rendered ``chunk`` steps at a time (the same frames for the same step, on any device)."""
    clips_per_step = batch // per_clip
    cache = {}

    def frames_at(step: int) -> torch.Tensor:
        block = step // chunk
        if block not in cache:
            cache.clear()
            cache[block] = data.batch(clips_per_step * chunk, seed=seed * 1_000_003 + block, device=device).video
        i = step % chunk
        video = cache[block][i * clips_per_step:(i + 1) * clips_per_step]             # (B/k, C, T, H, W)
        frames = video.shape[2]
        clip = torch.arange(clips_per_step, device=video.device)[:, None]             # (B/k, 1)
        t = (clip + step + torch.arange(per_clip, device=video.device) * (frames // per_clip)) % frames  # (B/k, k)
        return rearrange(video[clip, :, t], "b k c h w -> (b k) c h w")               # (B, C, H, W)

    return frames_at


def independent_frames(data, n: int, seed: int, split: str = "train") -> torch.Tensor:
    """n frames (n, C, H, W), frame i % T of clip i of n fresh clips: independent of each other."""
    video = data.batch(n, seed=seed, device=S.device, split=split).video          # (n, C, T, H, W)
    clip = torch.arange(n, device=video.device)
    return video[clip, :, clip % video.shape[2]]                                  # (n, C, H, W)


def strip(frames: torch.Tensor) -> torch.Tensor:
    """Frames (N, C, H, W) side by side as one strip (C, N, H, W), the clip layout that ``filmstrip`` draws."""
    return rearrange(frames, "n c h w -> c n h w")


frames_at = frame_stream(data, batch, seed=0, device=S.device, per_clip=per_clip)
example = frames_at(0)
print(f"a batch: {tuple(example.shape)} frames in [{example.min().item():.0f}, {example.max().item():.0f}]")
filmstrip({"real frames": strip(example[:12])}, every=1, height=0.8)

# %% [markdown]
# ## 2 · A variational autoencoder, piece by piece
#
# A VAE models a frame x through a latent z: a prior p(z) = N(0, I), a decoder p_θ(x|z), and an encoder q_φ(z|x)
# that guesses which z produced x. The log-likelihood log p_θ(x) = log ∫ p_θ(x|z) p(z) dz is intractable, but for
# any q it is bounded below by the **evidence lower bound** (Kingma & Welling 2014, eq. (3)):
#
# $$\log p_\theta(x) \;\ge\; \mathcal L(\theta, \phi; x) = \mathbb E_{q_\phi(z|x)}\big[\log p_\theta(x|z)\big]
# - \mathrm{KL}\big(q_\phi(z|x)\,\|\,p(z)\big).$$
#
# The first term asks the decoder to reconstruct x from a z the encoder drew; the second keeps the encoder's
# guesses close to the prior, so that z ~ N(0, I) decodes to something frame-like. With q_φ(z|x) =
# N(μ_φ(x), diag σ²_φ(x)):
#
# - **the KL in closed form** (their Appendix B): KL = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²);
# - **the reparameterisation** (their eq. (10)): draw ε ~ N(0, I) and set z = μ + σ ⊙ ε. The draw is now a
#   differentiable function of μ and σ, so the reconstruction term's gradient reaches the encoder;
# - **the decoder** is a Gaussian N(μ_θ(z), s² I) whose one noise level s is learned with the rest (Rybkin et al.
#   2021): −log p(x|z) = Σ_pixels [(x − μ_θ(z))² / 2s² + log s + ½ log 2π]. A small s rewards detail, a large
#   one forgives blur; the data decide.
#
# **The KL term's weight.** β-VAE (Higgins et al. 2017, eq. (4)) minimises −E[log p(x|z)] + β · KL. β = 1 is the ELBO;
# β > 1 pushes the codes harder towards the prior, which makes the latent space smoother and reconstructions
# blurrier; β < 1 the reverse. Exercise 4 trains a second VAE at β = 4.
#
# The networks mirror each other: the encoder halves the frame with strided 4×4 convolutions down to 4×4 and a
# linear layer gives μ and log σ²; the decoder projects z to a 4×4 stack and doubles it back with transposed
# convolutions. GroupNorm keeps a frame's code independent of the rest of its batch. By hand first, on a tiny
# configuration, then checked against the package:

# %%
class MyVAE(nn.Module):
    """Encoder, projection, decoder and learned log-scale, layer for layer as vgcourse.autoencoders.FrameVAE."""

    def __init__(self, channels: int, size: int, latent: int, width: int, groups: int):
        super().__init__()
        levels = int(math.log2(size // 4))
        enc, c = [], channels
        for i in range(levels):                                   # size -> size/2 -> ... -> 4
            enc += [nn.Conv2d(c, width * 2**i, 4, 2, 1), nn.GroupNorm(min(groups, width * 2**i), width * 2**i),
                    nn.SiLU()]
            c = width * 2**i
        self.encoder = nn.Sequential(*enc, nn.Flatten(), nn.Linear(c * 16, 2 * latent))   # -> (μ, log σ²)
        self.project = nn.Linear(latent, c * 16)                   # z -> (c, 4, 4)
        dec = [nn.GroupNorm(min(groups, c), c), nn.SiLU()]
        for i in reversed(range(levels)):                         # 4 -> 8 -> ... -> size
            out = width * 2 ** (i - 1) if i > 0 else channels
            dec.append(nn.ConvTranspose2d(c, out, 4, 2, 1))
            dec += [nn.GroupNorm(min(groups, out), out), nn.SiLU()] if i > 0 else []
            c = out
        self.decoder = nn.Sequential(*dec, nn.Tanh())
        self.log_scale = nn.Parameter(torch.zeros(()))            # log s


def my_reparameterize(mean, logvar, eps):
    return mean + torch.exp(0.5 * logvar) * eps                   # z = μ + σ ⊙ ε, Kingma & Welling 2014, eq. (10)


def my_kl(mean, logvar):
    return 0.5 * (mean**2 + logvar.exp() - 1 - logvar).sum(1)     # KL(q ‖ N(0, I)) per frame, App. B


def my_gaussian_nll(x, mean, log_s):
    return (0.5 * (x - mean) ** 2 / torch.exp(2 * log_s) + log_s + 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)


def my_vae_loss(vae: MyVAE, x, beta: float, eps, min_log_scale: float):
    mean, logvar = vae.encoder(x).chunk(2, dim=1)                 # (N, d) each
    z = my_reparameterize(mean, logvar.clamp(-30, 20), eps)
    recon = vae.decoder(rearrange(vae.project(z), "n (c h w) -> n c h w", h=4, w=4))   # μ_θ(z): (N, C, H, W)
    nll = my_gaussian_nll(x, recon, vae.log_scale.clamp(min=min_log_scale))            # −log p(x|z)
    return (nll + beta * my_kl(mean, logvar.clamp(-30, 20))).mean()                    # β-VAE, eq. (4)

# %% [markdown]
# Copy the package's weights into the hand-built VAE and compare outputs, then the loss with the same ε:

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
check_cfg = frame_vae_tiny(beta=2.0)
package_vae = FrameVAE(check_cfg)
my_vae = MyVAE(check_cfg.channels, check_cfg.size, check_cfg.latent_dim, check_cfg.width, check_cfg.norm_groups)
my_vae.load_state_dict(package_vae.state_dict())             # same layers, same names: the weights fit one to one
x_check = MovingDigits(size=16, frames=4).batch(2, seed=0).video.flatten(0, 2)[:, None]   # (8, 1, 16, 16)
with torch.no_grad():
    package_vae.log_scale.fill_(math.log(0.3))
    my_vae.log_scale.fill_(math.log(0.3))
    torch.testing.assert_close(my_vae.encoder(x_check), package_vae.encoder(x_check))
    torch.testing.assert_close(my_gaussian_nll(x_check, 0.5 * x_check, my_vae.log_scale),
                               gaussian_nll(x_check, 0.5 * x_check, package_vae.scale()))
    eps = torch.randn(8, check_cfg.latent_dim, generator=torch.Generator().manual_seed(1))
    mine = my_vae_loss(my_vae, x_check, check_cfg.beta, eps, check_cfg.min_log_scale)
    theirs = vae_loss(package_vae, x_check, generator=torch.Generator().manual_seed(1))["loss"]
torch.testing.assert_close(mine, theirs)
print("MyVAE's encoder matches vgcourse.autoencoders.FrameVAE; my_gaussian_nll matches gaussian_nll")
print("my_vae_loss (β = 2) matches vgcourse.autoencoders.vae_loss")

# %% [markdown]
# ## 3 · Training the VAE
#
# Frames are quantised to 8 bits and **dequantised** with uniform noise over each bin, so that the ELBO we measure
# at the end bounds the likelihood of 8-bit frames (Theis, van den Oord & Bethge 2016): −ELBO / (D ln 2) + log₂ 127.5
# bits per dimension, the same convention as chapter 09. (In nats per frame, −ELBO is the bound on −log of a density
# over continuous pixels, and falls below zero once the model is sure of pixels to within much less than one unit;
# per 8-bit pixel it cannot.) The package's `FrameVAE` trains, with Adam.

# %%
def quantise(x: torch.Tensor) -> torch.Tensor:
    """Round frames in [-1, 1] to the 256 levels of 8-bit data, k / 127.5 − 1."""
    return ((x + 1) * 127.5).round() / 127.5 - 1


def vae_optimizer(model: FrameVAE) -> torch.optim.Optimizer:
    """Adam; the one scalar log s gets 10× the learning rate (it starts far from where the data will put it)."""
    rest = [p for name, p in model.named_parameters() if name != "log_scale"]
    return torch.optim.Adam([{"params": rest}, {"params": [model.log_scale], "lr": 10 * vae_lr}], lr=vae_lr)


timer.start()
torch.manual_seed(0)
vae = FrameVAE(vae_config).to(S.device)
vae_trainer = Trainer(vae, vae_optimizer(vae),
                      lambda step: dequantize(quantise(frames_at(step))),
                      TrainConfig(steps=max_steps, max_minutes=vae_minutes, amp=False, compile=False, desc="vae",
                                  log_every=pick(smoke=1, cpu=5, gpu=50)),
                      loss_fn=vae_loss, model_config=vars(vae_config))
vae_summary = vae_trainer.fit()
vae_time = timer.lap("VAE training")
print(f"VAE: {vae_summary.steps} steps, {vae_summary.samples_per_s or float('nan'):.0f} frames/s on "
      f"{vae_summary.device}; last −ELBO {vae_trainer.history[-1]['neg_elbo']:.1f} nats per frame "
      f"(KL {vae_trainer.history[-1]['kl']:.1f}), decoder noise s = {vae_trainer.history[-1]['scale']:.3f}")

# %%
plot_curves(vae_trainer.history, keys=["nll", "kl"], smooth=0.6, title="VAE: −log p(x|z) and KL, nats per frame")

# %% [markdown]
# Reconstructions decode the posterior mean μ_φ(x) of frames of held-out digits (handwriting the model never saw);
# samples decode z ~ N(0, I). Both show the decoder's mean μ_θ(z), not a draw from N(μ_θ(z), s² I), whose pixel
# noise would only hide the picture.

# %%
vae.eval()
held_out = independent_frames(data, n_frames, seed=7, split="heldout")   # digits never seen in training
g = torch.Generator(S.device).manual_seed(1)
with torch.no_grad():
    reconstructions = vae.decode(vae.encode(held_out).mean)
    vae_samples = vae.sample(n_frames, g)
recon_psnr = psnr(frames_as_video(reconstructions.clamp(-1, 1)), frames_as_video(held_out))
recon_psnr_mean, recon_psnr_se = mean_se(recon_psnr)                      # over frames, ± std / √N
print(f"reconstruction PSNR {recon_psnr_mean:.1f} ± {recon_psnr_se:.1f} dB over {len(recon_psnr)} frames")
filmstrip({"frames": strip(held_out[:12]), "reconstructed": strip(reconstructions[:12]),
           "VAE samples": strip(vae_samples[:12])}, every=1, height=0.8)

# %% [markdown]
# **The bound in bits per dimension.** −ELBO per frame on the held-out frames (8-bit, dequantised, four draws of z per
# frame), against a generic compressor, zlib, on the same 8-bit frames:

# %%
with torch.no_grad():
    x_bpd = dequantize(quantise(held_out), generator=torch.Generator(S.device).manual_seed(2))
    nll = negative_elbo(vae, x_bpd, draws=4, generator=torch.Generator(S.device).manual_seed(3))     # (N,) nats
dims = held_out[0].numel()                                                                   # D = C·H·W
bpd = nll / (dims * math.log(2)) + OFFSET_8BIT_BITS                                                  # (N,)
vae_bpd, vae_bpd_se = mean_se(bpd)
eight_bit = ((held_out + 1) * 127.5).round().to(torch.uint8).cpu().numpy()
zlib_bpd = 8 * len(zlib.compress(eight_bit.tobytes(), 9)) / eight_bit.size
print(f"VAE: {vae_bpd:.3f} ± {vae_bpd_se:.3f} bits/dim (an upper bound on its −log₂ p(x) per pixel) on "
      f"{len(bpd)} held-out frames; zlib on the same 8-bit frames: {zlib_bpd:.3f} bits/dim")
s_learned = vae.scale().exp().item()
background = (held_out < -1 + 1 / 127.5).float().mean().item()
print(f"the decoder's noise level s = {s_learned:.3f} for every pixel: a pixel whose error is of that size costs "
      f"½ log₂(2πe s²) + log₂ 127.5 = {0.5 * math.log2(2 * math.pi * math.e * s_learned**2) + OFFSET_8BIT_BITS:.2f} "
      f"bits, and {background:.0%} of the pixels are exactly black background")

# %% [markdown]
# **Reading it.** A Gaussian decoder with one noise level charges every pixel for the same uncertainty, so the black
# background, most of every frame and perfectly predictable, pays as much per pixel as a stroke's edge; a generic
# compressor that only counts repeats exploits exactly that. The VAE's bound is what it optimises, not a good
# compression of these frames: a decoder with a noise level per pixel, or a discrete likelihood per 8-bit value,
# would spend almost nothing on the background.

# %% [markdown]
# ## 4 · A DCGAN, piece by piece
#
# A GAN has no likelihood. A generator G turns z into a frame; a discriminator D outputs a logit, "real" when high;
# they play the minimax game of Goodfellow et al. 2014, eq. (1):
#
# $$\min_G \max_D\; \mathbb E_x[\log \sigma(D(x))] + \mathbb E_z[\log(1 - \sigma(D(G(z))))].$$
#
# D is trained as a classifier on real against generated frames; G is trained with the **non-saturating** loss
# −E[log σ(D(G(z)))] (their §3), whose gradient is strong exactly when D rejects the samples. Radford et al. 2016
# made it work for images with five rules (§3): strided convolutions instead of pooling; batch normalisation in both
# networks except G's output and D's input; no fully connected hidden layers (z is *projected and reshaped* to a 4×4
# stack; D's last maps are flattened into one logit); ReLU in G with Tanh at its output; LeakyReLU(0.2) in D. Their
# Figure 1: z → 4×4×1024 → 8×8×512 → 16×16×256 → 32×32×128 → 64×64×3; ours stops at 32×32×1. Weights start from
# N(0, 0.02). The z prior is uniform on [−1, 1]¹⁰⁰.

# %%
class MyGenerator(nn.Module):
    """z (N, z_dim) -> frames (N, C, size, size), layer for layer as vgcourse.gan.DCGANGenerator."""

    def __init__(self, z_dim: int, width: int, channels: int, levels: int):
        super().__init__()
        self.project = nn.Linear(z_dim, width * 16, bias=False)      # "project and reshape" (BN follows: no bias)
        self.project_norm = nn.BatchNorm2d(width)
        layers = []
        for i in range(levels):                                      # 4 -> 8 -> ... -> size
            last = i == levels - 1
            out = channels if last else width // 2
            layers.append(nn.ConvTranspose2d(width, out, 4, 2, 1, bias=last))   # doubles H and W
            layers += [nn.Tanh()] if last else [nn.BatchNorm2d(out), nn.ReLU()]
            width = out
        self.net = nn.Sequential(*layers)

    def forward(self, z):
        h = rearrange(self.project(z), "n (c h w) -> n c h w", h=4, w=4)     # (N, width, 4, 4)
        return self.net(torch.relu(self.project_norm(h)))


class MyDiscriminator(nn.Module):
    """frames (N, C, size, size) -> logits (N,), layer for layer as vgcourse.gan.DCGANDiscriminator."""

    def __init__(self, channels: int, width: int, levels: int):
        super().__init__()
        layers, c = [], channels
        for i in range(levels):                                      # size -> size/2 -> ... -> 4
            out = width * 2**i
            layers.append(nn.Conv2d(c, out, 4, 2, 1, bias=i == 0))   # strided: no pooling
            layers += [nn.BatchNorm2d(out)] if i > 0 else []         # no BN on the input layer
            layers.append(nn.LeakyReLU(0.2))
            c = out
        self.net = nn.Sequential(*layers, nn.Flatten(), nn.Linear(c * 16, 1))

    def forward(self, x):
        return self.net(x)[:, 0]


def my_gan_step(G, D, opt_d, opt_g, real, z):
    """One alternating update (Goodfellow et al. 2014, Algorithm 1 with k = 1)."""
    fake = G(z)
    loss_d = d_nonsaturating(D(real), D(fake.detach()))             # softplus(−D(x)) + softplus(D(G(z)))
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    loss_g = g_nonsaturating(D(fake))                               # softplus(−D(G(z))), through the updated D
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()
    return loss_d, loss_g

# %% [markdown]
# The check: the package's networks' weights copied into ours give the same outputs, and one training step from the
# same weights, batch and z leaves the same weights behind (`gan_step` is what trains below):

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
check_gan = dcgan_tiny()
nets = dcgan(check_gan)
mine = nn.ModuleDict({"G": MyGenerator(check_gan.z_dim, check_gan.gen_channels, check_gan.channels, check_gan.levels),
                      "D": MyDiscriminator(check_gan.channels, check_gan.disc_channels, check_gan.levels)})
mine.load_state_dict(nets.state_dict())
z_check = sample_z(8, check_gan.z_dim, generator=torch.Generator().manual_seed(1))
real_check = MovingDigits(size=16, frames=4).batch(2, seed=0).video.flatten(0, 2)[:, None]   # (8, 1, 16, 16)
with torch.no_grad():
    torch.testing.assert_close(mine["G"](z_check), nets["G"](z_check))
    torch.testing.assert_close(mine["D"](real_check), nets["D"](real_check))
print("MyGenerator and MyDiscriminator match vgcourse.gan.DCGANGenerator and DCGANDiscriminator")


def adam(module):
    return torch.optim.Adam(module.parameters(), lr=gan_lr, betas=gan_betas)


my_gan_step(mine["G"], mine["D"], adam(mine["D"]), adam(mine["G"]), real_check, z_check)
package_trainer = Trainer(nets, {"disc": adam(nets["D"]), "gen": adam(nets["G"])}, lambda step: real_check,
                          TrainConfig(steps=1, grad_clip=None, progress=False, measure_flops=False),
                          step_fn=lambda trainer, real: gan_step(trainer, real, z_check))
package_trainer.fit()
for (name, p), q in zip(nets.named_parameters(), mine.parameters()):
    torch.testing.assert_close(p, q, msg=name)
print("one my_gan_step leaves the same weights as one vgcourse.gan.gan_step")

# %% [markdown]
# ## 5 · Training the DCGAN
#
# The paper's recipe (§4), which we keep: Adam with lr 2·10⁻⁴ and β₁ = 0.5 for both networks, batches of 128. A
# common alternative, the two-time-scale update rule (Heusel et al. 2017: D at 4·10⁻⁴, G at 1·10⁻⁴), speeds D up so
# that G always follows a nearly optimal critic; that pays where D lags behind G, while a DCGAN's discriminator is
# often the one ahead, and then a faster D would widen the gap (if the curves below show D's loss far under G's, D
# is ahead).
# What the GAN gets instead is the larger share of the chapter's minutes: one on the GPU, against the VAE's 0.6.
#
# We add one thing the paper did not have: frames are drawn from an **exponential moving average** of the
# generator's weights (decay `ema_decay`), which smooths out the last steps' back-and-forth between the two players.
# An average of weights comes without batch-norm statistics of its own, so after training we give it **standing
# statistics** (Brock, Donahue & Simonyan 2019): the running means and variances averaged over a few batches of
# random z, after which the generator runs in eval mode and a frame never depends on the rest of its batch — which
# matters for the interpolations below, whose frames all come from nearby z.

# %%
timer.start()
torch.manual_seed(0)
gan = dcgan(gan_config).to(S.device)
gan_trainer = Trainer(gan, {"disc": adam(gan["D"]), "gen": adam(gan["G"])}, frames_at,
                      TrainConfig(steps=max_steps, max_minutes=gan_minutes, grad_clip=None, ema_decay=ema_decay,
                                  amp=False, compile=False, desc="dcgan", log_every=pick(smoke=1, cpu=5, gpu=50)),
                      step_fn=lambda trainer, real: gan_step(trainer, real, sample_z(len(real), gan_config.z_dim,
                                                                                      S.device)),
                      ema_of=gan["G"], model_config=vars(gan_config))
gan_summary = gan_trainer.fit()
G = standing_statistics(gan_trainer.ema.model, rng=torch.Generator(S.device).manual_seed(4), **standing)
gan_time = timer.lap("DCGAN training")
print(f"DCGAN: {gan_summary.steps} steps, {gan_summary.samples_per_s or float('nan'):.0f} frames/s, MFU "
      f"{(gan_summary.mfu or float('nan')):.1%} (TF32 peak) on {gan_summary.device}")

# %%
plot_curves(gan_trainer.history, keys=["loss_d", "loss_g"], smooth=0.6, title="DCGAN losses")

# %% [markdown]
# These are not a classifier's curves settling towards zero: each loss is the other network's opponent. A
# discriminator loss near 2 log 2 ≈ 1.39 would mean D can no longer tell real from generated; one stuck near 0, that
# it always can and G learns nothing. Samples from the averaged generator beside the live one:

# %%
g = torch.Generator(S.device).manual_seed(5)
gan_samples = G.sample(n_frames, g)
with torch.no_grad():
    live_samples = gan["G"].eval().sample(12, torch.Generator(S.device).manual_seed(5))   # its running statistics
filmstrip({"real": strip(held_out[:12]), "DCGAN (EMA)": strip(gan_samples[:12]),
           "DCGAN (live)": strip(live_samples[:12])}, every=1, height=0.8)

# %% [markdown]
# ## 6 · Walking through the latent spaces
#
# Both models map a latent to a frame, so both can be walked. For the VAE we encode two held-out frames, take their
# posterior means μ_φ(x) and decode points on the line between them; for the DCGAN we decode points between two
# random z (the uniform prior's cube contains the line). Radford et al. used such walks (their §6.1) to argue that
# the generator had not memorised its data: a memorising model would jump between frames, not morph one into
# another.

# %%
steps_between = 10
alphas = torch.linspace(0, 1, steps_between, device=S.device)[:, None]           # (S, 1)
with torch.no_grad():
    ends = vae.encode(held_out[[0, 3]]).mean                                       # (2, d): two frames' codes
    vae_walk = vae.decode((1 - alphas) * ends[0] + alphas * ends[1])               # (S, C, H, W)
    z_ends = sample_z(2, gan_config.z_dim, S.device, torch.Generator(S.device).manual_seed(6))
    gan_walk = G((1 - alphas) * z_ends[0] + alphas * z_ends[1])
blank = torch.ones_like(held_out[0])                                             # an empty (white) cell
filmstrip({"VAE: ends": strip(torch.stack([held_out[0]] + [blank] * (steps_between - 2) + [held_out[3]])),
           "VAE walk": strip(vae_walk), "DCGAN walk": strip(gan_walk)}, every=1, height=0.8)

# %% [markdown]
# The first row holds the two real frames whose codes the VAE walk starts and ends at (the VAE redraws them in its
# own hand). What to look for: a smooth model morphs one picture into the other, strokes bending and digits sliding;
# a model that had memorised frames, or a latent space with holes, would cut abruptly or pass through shapes that are
# no digits at all. The VAE's KL term is what fills the space between codes; the GAN has only its training to thank.
#
# ## 7 · Measured side by side
#
# **Why there is no Fréchet distance here.** The course's protocol scores *clips* (§8 shows it): its Fréchet distance
# compares features of a video probe, a 3D network that sees motion as well as appearance, so it does not apply to
# a single frame. Frames are scored with the *frame* probe instead (`vgcourse.metrics.frames`), each number with a
# standard error:
#
# - **frame fd**: Fréchet distance between the frame probe's features of generated and of held-out real frames (FID's
#   recipe with the course's probe), ± a grouped jackknife;
# - **frame quality**: how sure the probe is of exactly two digits (1 = sure of two and no others), ± SE over frames;
# - **sharpness**: the mean squared Laplacian of a frame, its edge energy: blur lowers it, noise raises it;
# - **mode coverage**: which digit classes the frames show (each frame votes for its probe's top two classes):
#   the fraction of the ten classes present, and the entropy of the votes (1 = all ten equally often), with a
#   jackknife SE; **diversity**: mean pairwise feature distance over the real frames' (≪ 1: collapse).
#
# The reference rows, at the same number of frames: real frames, the same frames blurred (σ = 1.5 px), pure noise,
# and the mean frame repeated.

# %%
timer.start()
frame_evaluator = FrameEvaluator(data, n_real=n_real, device=S.device)
frame_rows = frame_reference_rows(frame_evaluator, n=n_frames)
frame_rows["VAE samples"] = frame_evaluator(vae_samples)
frame_rows["VAE reconstructions"] = frame_evaluator(reconstructions)      # of the held-out frames above
frame_rows["DCGAN samples"] = gan_frame_scores = frame_evaluator(gan_samples)
print(f"{n_frames} frames per row; reference: {frame_evaluator.n_real_frames} frames of {n_real} held-out clips\n")
print(format_frame_rows(frame_rows))
timer.lap("frame scores")

# %% [markdown]
# **Reading the reference rows.** Blur costs frame fd, frame quality and most of the sharpness; noise is "sharper"
# than any real frame (sharpness alone would reward it); the mean frame is a smooth blob, and its frame quality need
# not be low (the probe may read it as a confident pair of digits, the same pair every time) while its coverage,
# entropy and diversity collapse. No single number is enough; read them together.

# %%
real_row, vae_row, gan_row = frame_rows["real frames"], frame_rows["VAE samples"], frame_rows["DCGAN samples"]
bars = {"DCGAN frame quality within 15% of real frames": bar(
    gan_row["frame_quality"], 0.85 * real_row["frame_quality"], gan_row["frame_quality_se"],
    0.85 * real_row["frame_quality_se"], lower_is_better=False)}          # the line 0.85 × real is measured too
print(show_bars(bars))
print(f"  (real frames {real_row['frame_quality']:.3f} ± {real_row['frame_quality_se']:.3f}; the line is 0.85 × that)")
print(f"VAE: reconstruction PSNR {recon_psnr_mean:.1f} dB; {vae_bpd:.3f} ± {vae_bpd_se:.3f} bits/dim "
      f"(zlib {zlib_bpd:.3f})")
for name, row in [("VAE samples", vae_row), ("DCGAN samples", gan_row)]:
    print(f"{name:14s}: sharpness {row['sharpness'] / real_row['sharpness']:.0%} of real frames', frame fd "
          f"{row['frame_fd']:.1f} ± {row['frame_fd_se']:.1f}, {row['class_coverage']:.0%} of the classes, entropy "
          f"{row['class_entropy']:.3f} ± {row['class_entropy_se']:.3f}, diversity {row['diversity']:.2f}")

# %% [markdown]
# ## 8 · The clip protocol, and what a frame model lacks
#
# Every chapter reports the course's one protocol on clips (16 frames, the video probe's Fréchet distance with its
# jackknife standard error) beside its reference rows: real clips, shuffled frames (perfect frames, no motion),
# frozen frames (the first frame held), noise and the mean video. A frame model makes no clips; the nearest it can
# come is 16 independent frames stacked in a row. Scored so, the DCGAN shows what the rest of this era had to add:
# its frames may be good, but nothing ties frame t to frame t + 1 — not even which digits they show.

# %%
timer.start()
clip_evaluator = Evaluator(data, n_real=pick(smoke=16, cpu=64, gpu=PROTOCOL.n_real), device=S.device)
clip_rows = reference_rows(clip_evaluator, n=n_clips)
stacked = rearrange(G.sample(n_clips * data.frames, torch.Generator(S.device).manual_seed(7)),
                    "(b t) c h w -> b c t h w", t=data.frames)            # 16 independent DCGAN frames per clip
clip_rows["DCGAN frames, stacked"] = score(clip_evaluator, stacked)
print(f"{n_clips} clips per row against {pick(smoke=16, cpu=64, gpu=PROTOCOL.n_real)} held-out clips\n")
print(format_rows(clip_rows))
timer.lap("clip protocol")

# %% [markdown]
# Frames that may score well one by one make clips that score far from real ones: nothing keeps frame t's digits in
# frame t + 1, and there is no motion to follow. The identity column says it in one number:

# %%
stacked_row = clip_rows["DCGAN frames, stacked"]
print(f"identity consistency: real clips {clip_rows['real']['identity_consistency']:.2f}, stacked DCGAN frames "
      f"{stacked_row['identity_consistency']:.2f}; fd {stacked_row['fd']:.1f} against shuffled frames "
      f"{clip_rows['shuffled frames']['fd']:.1f} (perfect frames, no motion)")

# %% [markdown]
# The next chapter gives the generator a clock.
#
# ## Claim check: "VAEs are blurry; GANs are sharp but drop modes"
#
# The survey's account of this era: VAE samples are blurry, because a Gaussian decoder trained on reconstruction
# averages over everything the code leaves uncertain, while GAN samples are sharp but may cover only part of the
# data (mode collapse). Decided before measuring, on the samples scored above, with the standard error of each
# difference (√(SE₁² + SE₂²)):
#
# - **blur**: *supported* if the VAE samples' sharpness is below the DCGAN samples' by more than one standard error
#   of the difference, *not supported* if it is above by more than one, *not resolved* in between;
# - **dropped modes**: *supported* if the DCGAN's class entropy is below the real frames' by more than one standard
#   error of the difference, *not supported* if it is not below them by at least that much the other way round
#   (above by more than one), *not resolved* in between.

# %%
# each part is a bar whose line is itself measured: bar() weighs the difference by √(SE₁² + SE₂²)
claim_of = {"met": "supported", "not met": "not supported", "not resolved": "not resolved"}
blur_claim = claim_of[bar(vae_row["sharpness"], gan_row["sharpness"], vae_row["sharpness_se"],
                          gan_row["sharpness_se"])["outcome"]]              # VAE below the DCGAN
mode_claim = claim_of[bar(gan_row["class_entropy"], real_row["class_entropy"], gan_row["class_entropy_se"],
                          real_row["class_entropy_se"])["outcome"]]         # DCGAN below the real frames
print(f"blur: VAE sharpness {vae_row['sharpness']:.4f} ± {vae_row['sharpness_se']:.4f} vs DCGAN "
      f"{gan_row['sharpness']:.4f} ± {gan_row['sharpness_se']:.4f} (real {real_row['sharpness']:.4f}): {blur_claim}")
print(f"dropped modes: DCGAN class entropy {gan_row['class_entropy']:.3f} ± {gan_row['class_entropy_se']:.3f} vs "
      f"real {real_row['class_entropy']:.3f} ± {real_row['class_entropy_se']:.3f} "
      f"(VAE {vae_row['class_entropy']:.3f}); coverage {gan_row['class_coverage']:.0%} of the classes: {mode_claim}")

# %% [markdown]
# ## Results
#
# The headline model of this chapter is the DCGAN (frames, so its numbers are frame scores: `n_gen` counts frames,
# and `n_real` the reference frames); the VAE's bits/dim and reconstruction quality travel with it.

# %%
results.record("01_vae_and_gan", {
    "headline": headline({"frame_quality": gan_row["frame_quality"], "diversity": gan_row["diversity"],
                          "n_gen": n_frames}, n_real=frame_evaluator.n_real_frames, minutes=gan_time,
                         frame_quality_se=gan_row["frame_quality_se"], frame_fd=gan_row["frame_fd"],
                         frame_fd_se=gan_row["frame_fd_se"], sharpness=gan_row["sharpness"],
                         class_coverage=gan_row["class_coverage"], class_entropy=gan_row["class_entropy"],
                         vae_bits_per_dim=vae_bpd, vae_bits_per_dim_se=vae_bpd_se,
                         vae_recon_psnr=recon_psnr_mean, samples_per_s=gan_summary.samples_per_s,
                         mfu=gan_summary.mfu, units="frames"),
    "frame_rows": frame_rows, "clip_rows": clip_rows, "zlib_bits_per_dim": zlib_bpd,
    "bars": bars,
    "claims": {"vae_blurrier_than_gan": blur_claim, "gan_drops_modes": mode_claim},
    "throughput": {"vae_frames_per_s": vae_summary.samples_per_s, "vae_mfu": vae_summary.mfu,
                   "dcgan_frames_per_s": gan_summary.samples_per_s, "dcgan_mfu": gan_summary.mfu},
    "minutes": timer.minutes,
}, started=STARTED, train={"vae": vae_summary.as_dict(), "dcgan": gan_summary.as_dict()},
   config={"vae": vars(vae_config), "dcgan": vars(gan_config), "batch": batch, "per_clip": per_clip,
           "vae_lr": vae_lr, "gan_lr": gan_lr, "gan_betas": gan_betas, "ema_decay": ema_decay,
           "vae_minutes": vae_minutes, "gan_minutes": gan_minutes, "n_frames": n_frames, "n_real_clips": n_real})

# %% [markdown]
# ## Exercises
#
# Each exercise has a stub to fill and a check from the package; run the check cell after editing.
#
# **1. The reparameterisation.** Write `reparameterize(mean, logvar, eps)`: a draw z ~ N(μ, diag σ²) from the
# encoder's μ and log σ² (N, d) and noise ε ~ N(0, I), as a differentiable function of μ and log σ².

# %%
def reparameterize(mean, logvar, eps):
    # YOUR CODE HERE
    raise NotImplementedError

# %%
# NBVAL_CHECK_OUTPUT
check("reparameterize", reparameterize)

# %% [markdown]
# <details><summary>Hint</summary>
#
# The encoder gives log σ²; the standard deviation is exp(½ log σ²). The reference answer: `solution("reparameterize")`.
# </details>
#
# **2. The KL term.** Write `kl_standard_normal(mean, logvar)`: KL(N(μ, diag σ²) ‖ N(0, I)) for each row of μ and
# log σ² (N, d), in nats, shape (N,).

# %%
def kl_standard_normal(mean, logvar):
    # YOUR CODE HERE
    raise NotImplementedError

# %%
# NBVAL_CHECK_OUTPUT
check("kl_standard_normal", kl_standard_normal)

# %% [markdown]
# <details><summary>Hint</summary>
#
# ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²), summed over the latent dimensions. The reference answer:
# `solution("kl_standard_normal")`.
# </details>
#
# **3. The discriminator's loss.** Write `discriminator_loss(real_logits, fake_logits)`: the cross-entropy of calling
# real frames real and generated frames fake, from D's logits on each batch (the batches may differ in size).

# %%
def discriminator_loss(real_logits, fake_logits):
    # YOUR CODE HERE
    raise NotImplementedError

# %%
# NBVAL_CHECK_OUTPUT
check("discriminator_loss", discriminator_loss)

# %% [markdown]
# <details><summary>Hint</summary>
#
# −log σ(a) = softplus(−a) and −log(1 − σ(a)) = softplus(a); average each over its own batch, then add the two
# averages (no factor ½). The reference answer: `solution("discriminator_loss")`.
# </details>
#
# **4. Turn up the KL weight (changes the recipe).** Write `beta_vae_loss(model, x, beta, eps)` from the model's
# parts: `model.encode(x)` gives q(z|x) with `.mean`, `.std` and `.kl()`; draw z = μ + σ ε with the given ε; decode
# it with `model.decode(z)`; score x under N(μ_θ(z), s² I) with `gaussian_nll(x, mean, model.scale())` (from
# `vgcourse.autoencoders`); return the mean over frames of −log p(x|z) + β · KL.
#
# *Predict first*: trained at β = 4 (for half the β = 1 model's minutes, to keep the chapter short), will the KL per
# frame be higher or lower than the β = 1 model's? The reconstructions sharper or blurrier? The cell after the check
# trains a VAE with your loss (with the reference answer while yours does not pass) and prints both.

# %%
def beta_vae_loss(model, x, beta, eps):
    # YOUR CODE HERE
    raise NotImplementedError

# %%
# NBVAL_CHECK_OUTPUT
check("beta_vae_loss", beta_vae_loss)

# %%
loss_4 = beta_vae_loss if check("beta_vae_loss", beta_vae_loss).passed else solution("beta_vae_loss")
torch.manual_seed(0)
vae_4 = FrameVAE(vae_config).to(S.device)


def loss_beta(model, x):
    eps = torch.randn(len(x), model.cfg.latent_dim, device=x.device)
    return loss_4(model, x, beta_exercise, eps)


Trainer(vae_4, vae_optimizer(vae_4), lambda step: dequantize(quantise(frames_at(step))),
        TrainConfig(steps=max_steps, max_minutes=exercise_minutes, amp=False, progress=False, measure_flops=False),
        loss_fn=loss_beta).fit()
vae_4.eval()
with torch.no_grad():
    by_beta = {}
    for beta, model in [(1.0, vae), (beta_exercise, vae_4)]:
        q = model.encode(held_out)
        rec = model.decode(q.mean).clamp(-1, 1)
        by_beta[beta] = {"kl": q.kl().mean().item(),
                         "psnr": psnr(frames_as_video(rec), frames_as_video(held_out)).mean().item(),
                         "sharpness": frame_evaluator(rec, jackknife=False)["sharpness"],
                         "sample_sharpness": frame_evaluator(model.sample(n_frames, g), jackknife=False)["sharpness"]}
for beta, row in by_beta.items():
    print(f"β = {beta:g}: KL {row['kl']:6.2f} nats per frame, reconstruction PSNR {row['psnr']:5.2f} dB, "
          f"reconstruction sharpness {row['sharpness']:.4f}, sample sharpness {row['sample_sharpness']:.4f}")
print(f"(the β = {beta_exercise:g} model trained for {exercise_minutes or 0:.2f} min or {max_steps} steps, "
      f"whichever came first; the β = 1 model for {vae_time:.2f} min)")
filmstrip({"frames": strip(held_out[:10]), "β = 1": strip(vae.decode(vae.encode(held_out[:10]).mean)),
           f"β = {beta_exercise:g}": strip(vae_4.decode(vae_4.encode(held_out[:10]).mean))}, every=1, height=0.8)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `q = model.encode(x)`, `z = q.mean + q.std * eps`, `nll = gaussian_nll(x, model.decode(z), model.scale())`, then
# `(nll + beta * q.kl()).mean()`. The reference answer: `solution("beta_vae_loss")`. With β = 4 the KL is four times
# as expensive, so the encoder spends fewer nats per frame: the codes say less, and the reconstructions lose detail.
# </details>

# %%
print(f"notebook wall time: {(time.time() - STARTED) / 60:.1f} min in the {S.profile} profile")
