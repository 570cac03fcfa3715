# %% [markdown]
# # 08 · DDPM on video
#
# **What this chapter builds.** A denoising diffusion model of video, in pixel space, from its parts: the forward
# (noising) process in closed form with the linear and cosine schedules; ε-prediction and the "simple" loss; the
# factorised space-time U-Net of *Video Diffusion Models* (per-frame convolutions and attention, temporal attention
# with relative positions, a timestep embedding), its block and its wiring written out; the training step, on
# videos and on images packed as frames together; and two samplers, ancestral DDPM (one network call per step, 1000
# steps) and DDIM (10 to 100 steps). We watch a sample form step by step, as the noisy state x_t and as the model's
# guess of the clean clip x̂₀, and score every sampler with the course's protocol beside the reference rows.
#
# **Where it sits in the history.** Chapters 01–04 generated video with GANs and VAEs, 05–07 with discrete tokens
# and transformers. Diffusion is the third era, the one that Sora-class systems grew from:
#
# - Sohl-Dickstein et al. 2015 proposed learning to reverse a gradual noising process.
# - Ho, Jain & Abbeel 2020 (**DDPM**) made it work: a fixed Gaussian forward process, a network that predicts the
#   added noise ε, a plain mean-squared "simple" loss, and ancestral sampling.
# - Song, Meng & Ermon 2021 (**DDIM**) kept the trained model and found a deterministic sampler on a subsequence of
#   the steps: 10–50× fewer network calls.
# - Nichol & Dhariwal 2021 (**Improved DDPM**) replaced the linear schedule with a cosine one that destroys small
#   images less abruptly.
# - Ho, Salimans, Gritsenko, Chan, Norouzi & Fleet 2022 (**Video Diffusion Models**) carried the image U-Net to
#   video by factorising space and time, and trained on images and videos together by masking the temporal attention.
#
# Chapter 09 recasts the same model as a stochastic differential equation; chapter 10 moves diffusion into an
# autoencoder's latent space; chapter 11 replaces the U-Net with a transformer (DiT).
#
# **Time per profile.** The same code runs in every profile; only sizes change (chosen below with `pick`).
#
# | profile | data | U-Net | training | time |
# |---|---|---|---|---|
# | `smoke` | 16×16, 8 frames | tiny, 16 channels | 2 steps, a 10-step chain | < 1 min, 2 CPU cores (checks only) |
# | `cpu` | 16×16, 8 frames | small, 16 channels | 500 steps, batch 16 | ≈ 4.5 min, 2 CPU cores: blobs, not yet digits |
# | `gpu` | 32×32, 16 frames (protocol) | 5.2M, levels 32/16/8 | 4.6 min with compile, batch 64 | ≈ 8.5 min, one GPU |
#
# The smoke and cpu profiles work at 16×16 with 8 frames because ancestral sampling costs one network call per step,
# 1000 per sample; on two CPU cores that is what fits (the smoke profile, a check that the code runs, even trains and
# samples a 10-step chain). The committed outputs come from the gpu profile: 5 of its minutes train the model, the
# rest sample 384 clips with each sampler and score them.

# %%
import math
import time
from dataclasses import asdict

import torch
import torch.nn.functional as F
from einops import rearrange
from matplotlib.figure import Figure
from matplotlib.ticker import NullLocator

from vgcourse.profiles import pick, setup

STARTED = time.time()
S = setup(seed=0)          # prints profile, device, precision, compile, torch version

# %%
from vgcourse import results
from vgcourse.data import MovingDigits
from vgcourse.diffusion import (
    VideoUNet,
    cosine_schedule,
    ddim_sample,
    ddim_timesteps,
    ddpm_sample,
    diffusion_loss,
    estimate_parameters,
    linear_schedule,
    video_unet_small,
    video_unet_tiny,
)
from vgcourse.diffusion.unet import SpaceTimeBlock, TemporalAttention, timestep_embedding
from vgcourse.display import VideoScrubber, filmstrip, plot_curves, plot_metric_bars, plot_xy, show_video, side_by_side
from vgcourse.exercises import check, solution
from vgcourse.metrics import PROTOCOL, Evaluator, frechet_distance, gaussian_stats, jackknife_fd, jackknife_std
from vgcourse.metrics.protocol import bar, format_rows, headline, mean_se, reference_rows, score, show_bars, verdict
from vgcourse.nn import count_parameters, randomised
from vgcourse.results import PartTimer, num, timed
from vgcourse.train import EMA, make_trainer, warmup_cosine

timer = PartTimer(STARTED)  # minutes of each part of the chapter, printed as it goes

# %% [markdown]
# ## Sizes for this profile
#
# Everything that changes between profiles is chosen here, in plain view. The gpu profile trains on the course's
# protocol data (moving digits, 32×32, 16 frames, two digits) and scores 384 samples of each sampler against the 512
# held-out clips. Its U-Net has three levels, 32, 16 and 8 pixels a side, with one residual block each; spatial
# attention only at 8×8 and temporal attention at 16×16 and 8×8. Attention costs grow with the number of positions
# it compares, and at 8×8 a 14-pixel digit is a few positions wide: there one attention layer can relate a digit to
# the other and to itself in other frames. Training is bounded by minutes (`train_minutes`, compilation included):
# the loop measures its seconds per step, stops at the last step that fits and ends the learning-rate decay there,
# so the chapter fits its time on any GPU; the steps that ran are printed and recorded.

# %%
unet_configs = dict(  # one U-Net per profile; every one is the factorised space-time U-Net of Ho et al. 2022
    smoke=video_unet_tiny(),  # 16×16, 8 frames
    cpu=video_unet_small(image_size=16, frames=8, base_channels=16, heads=2, norm_groups=8,
                         attention_resolutions=(4,), temporal_attention_resolutions=(8, 4)),
    gpu=video_unet_small(base_channels=64, norm_groups=32),  # 32×32, 16 frames; levels 32/16/8
)
unet_config = pick(**unet_configs)
data = pick(smoke=MovingDigits(size=16, frames=8), cpu=MovingDigits(size=16, frames=8), gpu=PROTOCOL.dataset())
size, frames = data.size, data.frames
steps = pick(smoke=2, cpu=500, gpu=50_000)          # training steps (gpu: a cap; the time budget decides)
train_minutes = pick(smoke=None, cpu=None, gpu=4.6)  # a time budget for training (None: steps alone)
batch = pick(smoke=4, cpu=16, gpu=64)               # clips per step
lr, warmup = pick(smoke=1e-3, cpu=1e-3, gpu=5e-4), pick(smoke=1, cpu=50, gpu=250)
ema_decay = pick(smoke=0.9, cpu=0.99, gpu=0.995)    # EMA horizon ~1/(1-decay) steps: shorter for short runs
image_fraction = 0.125                              # share of each batch trained as independent images
n_gen = pick(smoke=4, cpu=16, gpu=PROTOCOL.n_gen)   # clips per sampler, scored (the protocol's 384)
n_real = pick(smoke=32, cpu=256, gpu=PROTOCOL.n_real)  # held-out reference clips (the protocol's 512)
ddim_steps = pick(smoke=[2, 4], cpu=[10, 25, 50, 100], gpu=[10, 25, 50, 100])
ddim_ref = pick(smoke=4, cpu=50, gpu=50)            # the DDIM run compared with ancestral sampling
trajectory_every = pick(smoke=3, cpu=25, gpu=25)    # keep every k-th state of the ancestral run for the scrubber
T_paper = 1000                                      # the steps of Ho et al. 2020, used in sections 1-4
T_diffusion = pick(smoke=10, cpu=1000, gpu=1000)    # the steps we train and sample with

print(f"data: {data}")
print(f"U-Net: {estimate_parameters(unet_config) / 1e6:.2f}M parameters; "
      f"{f'{train_minutes} min' if train_minutes else f'{steps} steps'} at batch {batch}, lr {lr:g}; "
      f"{n_gen} clips per sampler scored against {n_real} held-out clips")

# %% [markdown]
# The data: two handwritten digits bouncing off the walls, overlaid by a pixel-wise maximum (chapter 00).

# %%
# NBVAL_IGNORE_OUTPUT
show_video(data.batch(8, seed=1).video, nrow=4, caption="real clips")

# %% [markdown]
# ## 1 · The forward process in closed form
#
# DDPM fixes a forward process that adds a little Gaussian noise at each of T steps,
# $q(x_t \mid x_{t-1}) = \mathcal N(\sqrt{1-\beta_t}\,x_{t-1}, \beta_t I)$ (Ho et al. 2020, eq. (2)).
# With $\alpha_t = 1-\beta_t$ and $\bar\alpha_t = \prod_{s\le t}\alpha_s$, Gaussians compose, so any step is
# reachable from $x_0$ in one draw:
#
# $$q(x_t \mid x_0) = \mathcal N(\sqrt{\bar\alpha_t}\,x_0,\ (1-\bar\alpha_t) I), \qquad
# x_t = \sqrt{\bar\alpha_t}\,x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon \quad \text{(eq. (4))}.$$
#
# Two schedules: **linear** betas from 10⁻⁴ to 0.02 over T = 1000 steps (Ho et al. 2020, §4), and
# **cosine**, $\bar\alpha_t = f(t)/f(0)$ with $f(t) = \cos^2\!\big(\frac{t/T + s}{1+s}\cdot\frac{\pi}{2}\big)$,
# s = 0.008 (Nichol & Dhariwal 2021, eq. (17)). We build both by hand and check them against the package.
# Timesteps are 0-indexed as in the package: t = 0 is the first noising step and t = 999 the last.

# %%
# NBVAL_CHECK_OUTPUT
betas_linear = torch.linspace(1e-4, 0.02, T_paper, dtype=torch.float64)     # Ho et al. 2020, §4
abar_linear = torch.cumprod(1 - betas_linear, dim=0)                         # ᾱ_t = ∏ (1 - β_s)
t_grid = torch.arange(T_paper + 1, dtype=torch.float64)
f = torch.cos((t_grid / T_paper + 0.008) / 1.008 * math.pi / 2) ** 2       # Nichol & Dhariwal 2021, eq. (17)
abar_cosine = (f / f[0])[1:]                                                 # ᾱ_t, t = 0..T-1

torch.testing.assert_close(abar_linear.float(), linear_schedule(T_paper).alphas_cumprod)
torch.testing.assert_close(abar_cosine.float(), cosine_schedule(T_paper).alphas_cumprod, rtol=1e-4, atol=1e-6)
print("schedules match vgcourse.diffusion")
for name, abar in [("linear", abar_linear), ("cosine", abar_cosine)]:
    print(f"{name:6s}: ᾱ_t at t = 250, 500, 750: {abar[[250, 500, 750]].numpy().round(3)}")

# %% [markdown]
# The package's cosine schedule clips β at 0.999 so that the last step stays finite; that is why the
# comparison above allows a tiny tolerance. Below, ᾱ over the steps, and one frame noised to several
# steps: the linear schedule has erased the digits long before the end, the cosine one keeps a
# recognisable signal for longer, so more of the T steps teach the model something.

# %%
def my_q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, abar: torch.Tensor) -> torch.Tensor:
    """x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε for x0 (B, C, T, H, W), t (B,) long, ᾱ (T_paper,)."""
    a = abar[t].reshape(-1, 1, 1, 1, 1).to(x0)                  # (B, 1, 1, 1, 1): one noise level per clip
    return a.sqrt() * x0 + (1 - a).sqrt() * noise              # Ho et al. 2020, eq. (4)


clip = MovingDigits(size=32, frames=16).batch(1, seed=2).video   # (1, 1, 16, 32, 32), the same in every profile
show_t = [0, 100, 250, 500, 750, 999]
fig = Figure(figsize=(11, 4.2), layout="constrained")
grid = fig.add_gridspec(2, 1 + len(show_t), width_ratios=[2.2] + [1] * len(show_t))
ax = fig.add_subplot(grid[:, 0])
ax.plot(abar_linear, label="linear")
ax.plot(abar_cosine, label="cosine")
ax.set_xlabel("step t")
ax.set_ylabel("ᾱ_t (signal kept)")
ax.legend()
ax.grid(alpha=0.3)
noise = torch.randn(clip.shape, generator=torch.Generator().manual_seed(0))
for row, (name, abar) in enumerate([("linear", abar_linear), ("cosine", abar_cosine)]):
    for col, t in enumerate(show_t):
        x_t = my_q_sample(clip, torch.tensor([t]), noise, abar)
        a = fig.add_subplot(grid[row, 1 + col])
        a.imshow(x_t[0, 0, 0].clamp(-1, 1), cmap="gray", vmin=-1, vmax=1)
        a.set_xticks([])
        a.set_yticks([])
        a.set_title(f"{name} t={t}", fontsize=8)
fig

# %% [markdown]
# Our `my_q_sample` against the package's `NoiseSchedule.q_sample` (same x₀, t and ε):

# %%
# NBVAL_CHECK_OUTPUT
check_schedule = cosine_schedule(T_paper)                      # on the CPU, for the checks
g = torch.Generator().manual_seed(0)
x0_example = MovingDigits(size=16, frames=8).batch(4, seed=0).video   # (4, 1, 8, 16, 16)
t_example = torch.tensor([0, 10, 500, 999])
noise_example = torch.randn(x0_example.shape, generator=g)
torch.testing.assert_close(my_q_sample(x0_example, t_example, noise_example, check_schedule.alphas_cumprod),
                           check_schedule.q_sample(x0_example, t_example, noise_example))
print("my_q_sample matches vgcourse.diffusion")

# %% [markdown]
# ## 2 · ε-prediction and the simple loss
#
# The reverse process needs the mean of $q(x_{t-1} \mid x_t, x_0)$, and $x_0$ is unknown. Ho et al. let the
# network predict the noise instead: $\varepsilon_\theta(x_t, t)$ gives $\hat x_0 = (x_t -
# \sqrt{1-\bar\alpha_t}\,\varepsilon_\theta)/\sqrt{\bar\alpha_t}$, and the variational bound, reweighted,
# becomes a plain regression (eq. (14)):
#
# $$L_\text{simple} = \mathbb E_{t \sim \mathcal U\{1..T\},\, x_0,\, \varepsilon \sim \mathcal N(0, I)}
# \big\|\varepsilon - \varepsilon_\theta(\sqrt{\bar\alpha_t}x_0 + \sqrt{1-\bar\alpha_t}\,\varepsilon,\ t)\big\|^2.$$
#
# To check it we need some ε-model; an untrained U-Net predicts ε = 0 everywhere (its output layer starts
# at zero), so `randomised` (from `vgcourse.nn`) gives its zero-initialised weights random values first.

# %%
torch.manual_seed(0)
toy_unet = randomised(VideoUNet(video_unet_tiny()))            # a random ε-model for the checks, on the CPU


def my_simple_loss(model, x0: torch.Tensor, abar: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    t = torch.randint(0, len(abar), (x0.shape[0],), generator=generator)     # t ~ U{0..T-1}
    noise = torch.randn(x0.shape, generator=generator)                      # ε ~ N(0, I)
    x_t = my_q_sample(x0, t, noise, abar)                                   # eq. (4)
    return ((model(x_t, t) - noise) ** 2).mean()                            # Ho et al. 2020, eq. (14)

# %%
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    mine = my_simple_loss(toy_unet, x0_example, check_schedule.alphas_cumprod, torch.Generator().manual_seed(1))
    theirs = diffusion_loss(toy_unet, x0_example, check_schedule, generator=torch.Generator().manual_seed(1))
torch.testing.assert_close(mine, theirs)
print("my_simple_loss matches vgcourse.diffusion.diffusion_loss")

# %% [markdown]
# ## 3 · The factorised space-time U-Net (Ho et al. 2022, §3)
#
# An image diffusion U-Net becomes a video model in two moves. Every 3×3 convolution becomes a space-only
# 1×3×3 convolution: frames are folded into the batch, `(B, C, T, H, W) -> (B·T, C, H, W)`, and spatial
# self-attention attends over the H·W positions of each frame. After it, a **temporal attention** block
# attends over the T frames at each pixel, `(B·T, C, H, W) -> (B·H·W, T, C)`, with a learned bias per
# head and relative offset j − i, so it knows frame order without an absolute clock. Down- and upsampling
# are spatial only. The timestep enters every residual block: a sinusoidal embedding of t, through an MLP,
# scales and shifts the normalised features.
#
# The embedding first, by hand:

# %%
# NBVAL_CHECK_OUTPUT
def my_timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """(B,) -> (B, dim): cosines and sines of t at geometrically spaced frequencies (Vaswani et al. 2017, §3.5)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)  # (dim/2,)
    args = t.float()[:, None] * freqs[None]                                                      # (B, dim/2)
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)                                  # (B, dim)


torch.testing.assert_close(my_timestep_embedding(t_example, 64), timestep_embedding(t_example, 64))
print("my_timestep_embedding matches vgcourse.diffusion.unet.timestep_embedding")

# %% [markdown]
# Relative positions: the temporal attention adds `table[j - i]` to the logit of query frame i and key
# frame j, one table per head. For 4 frames the offsets are:

# %%
# NBVAL_CHECK_OUTPUT
T_example = 4
pos = torch.arange(T_example)
offsets = pos[None, :] - pos[:, None]                          # (T, T): offset j - i
print(offsets)
block = TemporalAttention(channels=16, heads=2, groups=8, max_frames=T_example)
with torch.no_grad():
    block.rel_bias.copy_(torch.randn(block.rel_bias.shape, generator=torch.Generator().manual_seed(0)))
my_bias = rearrange(block.rel_bias[offsets + T_example - 1], "i j h -> 1 h i j")   # (1, heads, T, T)
torch.testing.assert_close(my_bias, block.position_bias(T_example, torch.device("cpu")))
print("relative position bias matches TemporalAttention.position_bias")

# %% [markdown]
# **Joint image + video training** (Ho et al. 2022, §3). Temporal attention is the only place where frames
# meet. Turn it into "each frame attends only to itself" and a clip's frames become independent images.
# So a batch can carry videos *and* bags of unrelated images, with a per-sample switch
# `temporal_attention=(B,) bool`. The check: with the switch off, a clip's output equals the outputs of its
# frames run one at a time as one-frame clips; with it on, the frames mix.

# %%
# NBVAL_CHECK_OUTPUT
x_example = torch.randn(2, 1, 8, 16, 16, generator=torch.Generator().manual_seed(3))
t_pair = torch.tensor([100, 700])
is_video_example = torch.tensor([True, False])                  # clip 0: a video; clip 1: 8 unrelated images
with torch.no_grad():
    out = toy_unet(x_example, t_pair, temporal_attention=is_video_example)
    one_frame_clips = toy_unet(rearrange(x_example[1], "c t h w -> t c 1 h w"), t_pair[1].repeat(8))  # (8, C, 1, H, W)
    whole_video = toy_unet(x_example[:1], t_pair[:1])
torch.testing.assert_close(out[1], rearrange(one_frame_clips, "t c 1 h w -> c t h w"), rtol=1e-4, atol=1e-5)
torch.testing.assert_close(out[0], whole_video[0], rtol=1e-4, atol=1e-5)
changed = x_example.clone()
changed[:, :, 0] = 0  # change frame 0 of both clips
with torch.no_grad():
    out_changed = toy_unet(changed, t_pair, temporal_attention=is_video_example)
print("video clip: frames 1-7 changed when frame 0 did:", not torch.allclose(out[0, :, 1:], out_changed[0, :, 1:]))
print("image clip: frames 1-7 changed when frame 0 did:", not torch.allclose(out[1, :, 1:], out_changed[1, :, 1:]))

# %% [markdown]
# **The block, written out.** A `SpaceTimeBlock` is three residual branches in a row. First a residual block: two
# per-frame 3×3 convolutions, with the timestep's embedding scaling and shifting the normalised features between
# them (the embedding is how one network serves every noise level). Then spatial self-attention over each frame's
# H·W positions, then temporal attention over each pixel's T frames with the relative-position bias above. The last
# layer of every branch starts at zero, so a new block passes its input on through its skip path alone, and the
# deep network starts out shallow. By hand, from a block's own weights, checked against its forward pass:

# %%
# NBVAL_CHECK_OUTPUT
def my_attention(attn, tokens: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Multi-head self-attention of tokens (N, L, C) with attn's weights: softmax(q kᵀ / √d + bias) v, projected."""
    q, k, v = rearrange(attn.qkv(tokens), "n l (three h d) -> three n h l d", three=3, h=attn.heads)  # (N, h, L, d)
    logits = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])                 # (N, heads, L, L)
    if bias is not None:
        logits = logits + bias                                                 # the relative-position bias
    return attn.proj(rearrange(logits.softmax(-1) @ v, "n h l d -> n l (h d)"))   # (N, L, C)


def my_space_time_block(block, x: torch.Tensor, emb: torch.Tensor, frames: int) -> torch.Tensor:
    """One SpaceTimeBlock on a video's frames x (B·T, C_in, H, W), with the embedding emb (B·T, D) of t."""
    res, side = block.res, x.shape[-1]
    h = res.conv1(F.silu(res.norm1(x)))                                        # (B·T, C, H, W): a 3×3 conv per frame
    scale, shift = rearrange(res.modulation.proj(F.silu(emb)), "n (two c) -> two n c 1 1", two=2)
    h = res.norm2(h) * (1 + scale) + shift                                     # t scales and shifts the features
    x = res.skip(x) + res.conv2(F.silu(h))                                     # residual; conv2 starts at zero
    if block.spatial is not None:                                              # each frame's H·W positions
        tokens = rearrange(block.spatial.norm(x), "n c h w -> n (h w) c")      # (B·T, H·W, C)
        x = x + rearrange(my_attention(block.spatial.attn, tokens), "n (h w) c -> n c h w", h=side)
    if block.temporal is not None:                                             # each pixel's T frames
        tokens = rearrange(block.temporal.norm(x), "(b t) c h w -> (b h w) t c", t=frames)   # (B·H·W, T, C)
        bias = block.temporal.position_bias(frames, x.device)                  # (1, heads, T, T): table[j − i]
        out = my_attention(block.temporal.attn, tokens, bias)                  # (B·H·W, T, C)
        x = x + rearrange(out, "(b h w) t c -> (b t) c h w", h=side, w=side)
    return x                                                                   # (B·T, C, H, W)


torch.manual_seed(0)
tiny = video_unet_tiny()
block = randomised(SpaceTimeBlock(16, 32, tiny, emb_dim=64, spatial=True, temporal=True))   # on the CPU
x_frames = torch.randn(2 * 8, 16, 8, 8, generator=torch.Generator().manual_seed(4))   # 2 clips of 8 frames, 8×8
emb_frames = torch.randn(2 * 8, 64, generator=torch.Generator().manual_seed(5))
with torch.no_grad():
    torch.testing.assert_close(my_space_time_block(block, x_frames, emb_frames, 8),
                               block(x_frames, emb_frames, 8, True), rtol=1e-4, atol=1e-5)
print("my_space_time_block matches vgcourse.diffusion.unet.SpaceTimeBlock")

# %% [markdown]
# **The U-Net, wired by hand.** The network folds the frames into the batch once, at its input, and unfolds them at
# its output. In between, the down path runs blocks and stride-2 convolutions (H and W halve, T stays), keeping every
# output; the middle runs two blocks at the lowest resolution; the up path concatenates each kept output with its
# input, the skip connections that give the U its shape, and doubles H and W again. The same embedding of t, one
# copy per frame, reaches every block. With the blocks above:

# %%
# NBVAL_CHECK_OUTPUT
def my_unet(unet, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """VideoUNet's forward pass from its parts (clips only): x_t (B, C, T, H, W), t (B,) -> ε (B, C, T, H, W)."""
    b, _, frames, _, _ = x.shape
    emb = unet.time_embed(timestep_embedding(t, unet.config.base_channels))   # (B, D): sinusoid of t, then an MLP
    emb = emb.repeat_interleave(frames, dim=0)                                  # (B·T, D): one copy per frame
    h = unet.input_conv(rearrange(x, "b c t h w -> (b t) c h w"))              # (B·T, C0, H, W)
    skips = [h]
    for layer in unet.down:                                                     # blocks and stride-2 convolutions
        h = my_space_time_block(layer, h, emb, frames) if isinstance(layer, SpaceTimeBlock) else layer(h)
        skips.append(h)
    for layer in unet.mid:                                                      # the lowest resolution
        h = my_space_time_block(layer, h, emb, frames)
    for layer in unet.up:                                                       # each block reads its skip
        h = (my_space_time_block(layer, torch.cat([h, skips.pop()], dim=1), emb, frames)
             if isinstance(layer, SpaceTimeBlock) else layer(h))               # or upsamples 2×
    return rearrange(unet.out(h), "(b t) c h w -> b c t h w", b=b)             # (B, C, T, H, W)


with torch.no_grad():
    torch.testing.assert_close(my_unet(toy_unet, x_example, t_pair), toy_unet(x_example, t_pair), rtol=1e-4, atol=1e-4)
print("my_unet, built from my_space_time_block, matches vgcourse.diffusion.VideoUNet")

# %% [markdown]
# The U-Nets of the three profiles (parameter counts from the configs, the same in every profile):

# %%
# NBVAL_CHECK_OUTPUT
for name, cfg in unet_configs.items():
    print(f"{name:5s}: {estimate_parameters(cfg) / 1e6:5.2f}M parameters, {cfg.image_size}×{cfg.image_size}×"
          f"{cfg.frames}, channels {[cfg.base_channels * m for m in cfg.channel_mults]}, spatial attention at "
          f"{cfg.attention_resolutions}, temporal attention at {cfg.temporal_attention_resolutions}")

# %% [markdown]
# ## 4 · Sampling, one step at a time
#
# **Ancestral sampling** (Ho et al. 2020, Algorithm 2) starts from $x_T \sim \mathcal N(0, I)$ and takes T
# steps, each a draw from the model's reverse Gaussian:
#
# $$x_{t-1} = \frac{1}{\sqrt{\alpha_t}}\Big(x_t - \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,
# \varepsilon_\theta(x_t, t)\Big) + \sigma_t z, \qquad z \sim \mathcal N(0, I),
# \ \sigma_t^2 = \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t,$$
#
# with no noise at the last step. **DDIM** (Song et al. 2021, eq. (12) with η = 0) instead predicts
# $\hat x_0$ and re-noises it deterministically to the *next chosen* step τ' along the same ε, so it may jump:
# $x_{\tau'} = \sqrt{\bar\alpha_{\tau'}}\,\hat x_0 + \sqrt{1-\bar\alpha_{\tau'}}\,
# \varepsilon_\theta(x_\tau, \tau)$.
#
# Both by hand, then checked against the package's samplers (with `clip_x0=False`: the package also clamps
# $\hat x_0$ to [−1, 1] by default, as Ho et al.'s released code does). The ancestral check runs on a
# 10-step schedule only to stay fast; the code does not depend on T.

# %%
def my_ddpm_step(model, x: torch.Tensor, i: int, schedule, z: torch.Tensor) -> torch.Tensor:
    """One ancestral step x_t -> x_{t-1} at index i (Ho et al. 2020, Algorithm 2, line 4)."""
    t = torch.full((x.shape[0],), i, dtype=torch.long)
    eps = model(x, t)                                                          # ε_θ(x_t, t)
    beta, alpha, abar = schedule.betas[i], schedule.alphas[i], schedule.alphas_cumprod[i]
    mean = (x - beta / (1 - abar).sqrt() * eps) / alpha.sqrt()                 # Algorithm 2, line 4
    if i == 0:
        return mean                                                            # z = 0 at the last step
    return mean + schedule.posterior_variance[i].sqrt() * z                    # σ_t² = β̃_t, eq. (7)


def my_ddim_step(model, x: torch.Tensor, i: int, i_next: int, abar: torch.Tensor) -> torch.Tensor:
    """One deterministic DDIM step from step i to step i_next < i (i_next = -1: to x_0) (Song et al. 2021, eq. (12))."""
    t = torch.full((x.shape[0],), i, dtype=torch.long)
    eps = model(x, t)                                                          # ε_θ(x_τ, τ)
    a, a_next = abar[i], (abar[i_next] if i_next >= 0 else torch.tensor(1.0, dtype=abar.dtype))
    x0_hat = (x - (1 - a).sqrt() * eps) / a.sqrt()                             # "predicted x_0"
    return a_next.sqrt() * x0_hat + (1 - a_next).sqrt() * eps                  # "direction pointing to x_t"

# %%
# NBVAL_CHECK_OUTPUT
shape_example = (2, 1, 8, 16, 16)
short = linear_schedule(10)
with torch.no_grad():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape_example, generator=g)                                # x_T
    for i in reversed(range(short.T)):
        z = torch.randn(shape_example, generator=g) if i > 0 else None
        x = my_ddpm_step(toy_unet, x, i, short, z)
    ancestral = ddpm_sample(toy_unet, shape_example, short, generator=torch.Generator().manual_seed(0),
                            clip_x0=False, progress=False)
torch.testing.assert_close(x, ancestral, rtol=1e-4, atol=1e-4)
print("my_ddpm_step, looped over 10 steps, matches vgcourse.diffusion.ddpm_sample")

taus = torch.linspace(0, T_paper - 1, 5).round().long().flip(0).tolist()    # [999, 749, 500, 250, 0]
with torch.no_grad():
    x = torch.randn(shape_example, generator=torch.Generator().manual_seed(0))
    for k, i in enumerate(taus):
        x = my_ddim_step(toy_unet, x, i, taus[k + 1] if k + 1 < len(taus) else -1, check_schedule.alphas_cumprod)
    deterministic = ddim_sample(toy_unet, shape_example, check_schedule, steps=5, clip_x0=False, progress=False,
                                generator=torch.Generator().manual_seed(0))
torch.testing.assert_close(x, deterministic, rtol=1e-4, atol=1e-4)
print(f"my_ddim_step on steps {taus} matches vgcourse.diffusion.ddim_sample")

# %% [markdown]
# ## 5 · Training, jointly on videos and images
#
# Each batch: the first eighth of its clips is unpacked into frames, shuffled across those clips and packed back, so
# each of those "clips" is a bag of unrelated images, trained with temporal attention off; the rest are videos,
# trained with it on. This is Ho et al. 2022's joint training, with the images drawn from the same data so that we
# can test its effect on the same metrics (§9).
#
# The loss is the simple loss on the **linear** schedule of Ho et al. 2020. The cosine schedule keeps more signal in
# the middle steps (§1), which pays in long runs on natural images; tried with this recipe for runs of this length,
# it gave a worse Fréchet distance, so we keep the linear one. The optimiser is AdamW with a linear warm-up and a
# cosine decay of the learning rate to a tenth, gradients clipped to norm 1, and an exponential moving average (EMA)
# of the weights, which is what we sample from. On CUDA the step runs in bf16 autocast and compiled: compiling costs
# time before the first step and makes every step after it faster, so it pays for itself in a run of a few minutes;
# the time budget counts it, and the clips per second printed below are those of the compiled steps.
#
# The step, written out: pack the images, draw t and ε, noise the batch (eq. (4)), regress ε (eq. (14)), then
# `backward`, clip, update, and move the EMA.

# %%
schedule = linear_schedule(T_diffusion).to(S.device)


def pack_images(video: torch.Tensor, k: int) -> torch.Tensor:
    """Turn the first k clips into bags of unrelated frames (shuffled across those clips); keep the rest."""
    bag = rearrange(video[:k], "b c t h w -> (b t) c h w")                          # (k·T, C, H, W)
    bag = bag[torch.randperm(bag.shape[0], device=video.device)]                     # frames of different clips
    return torch.cat([rearrange(bag, "(b t) c h w -> b c t h w", b=k), video[k:]])   # (B, C, T, H, W)


def images_and_videos(video: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch with its first clips packed as images, and which clips are videos (B,) bool."""
    k = max(1, round(image_fraction * video.shape[0]))                               # clips trained as images
    return pack_images(video, k), torch.arange(video.shape[0], device=video.device) >= k


def my_train_step(model, optimizer, lr_schedule, ema, video: torch.Tensor, schedule_) -> float:
    """One training step on clean clips (B, C, T, H, W): the simple loss, backward, clipping, AdamW, EMA."""
    x0, is_video = images_and_videos(video)
    t = torch.randint(0, schedule_.T, (x0.shape[0],), device=x0.device)        # t ~ U{0..T−1}, one per clip
    noise = torch.randn(x0.shape, device=x0.device)                             # ε ~ N(0, I)
    x_t = my_q_sample(x0, t, noise, schedule_.alphas_cumprod)                   # eq. (4)
    eps = model(x_t, t, temporal_attention=is_video)                            # packed images: frames apart
    loss = ((eps - noise) ** 2).mean()                                          # Ho et al. 2020, eq. (14)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()                                                             # ∂loss/∂θ for every weight
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)            # the gradient's norm at most 1
    optimizer.step()                                                            # AdamW
    lr_schedule.step()                                                          # warm-up, then cosine decay
    ema.update(model)                                                           # θ_ema ← d·θ_ema + (1 − d)·θ
    return loss.item()


def joint_loss(model, batch_, schedule_) -> torch.Tensor:
    """The same loss for the package's trainer: diffusion_loss on the packed batch."""
    x0, is_video = images_and_videos(batch_.video if hasattr(batch_, "video") else batch_)
    return diffusion_loss(lambda x, t: model(x, t, temporal_attention=is_video), x0, schedule_)

# %% [markdown]
# Checked as in chapter 04: two copies of a tiny U-Net, two steps each from the same random state, one with
# `my_train_step` and one with the package's trainer (`make_trainer`: AdamW, the warm-up and cosine schedule,
# clipping at norm 1 and the EMA, all inside `vgcourse.train.Trainer`), the same weights at the end.

# %%
# NBVAL_CHECK_OUTPUT
check_clips = MovingDigits(size=16, frames=4).batch(2, seed=3).video   # (2, 1, 4, 16, 16): a video, an image bag
check_T = linear_schedule(T_paper)
weights = {}
for name in ("mine", "package"):
    torch.manual_seed(0)
    twin = VideoUNet(video_unet_tiny())
    if name == "mine":
        opt = torch.optim.AdamW(twin.parameters(), lr=1e-3, weight_decay=0.0)
        ema = EMA(twin, 0.9)
        sched = warmup_cosine(opt, warmup=1, total=2, final=0.1)
        torch.manual_seed(1)
        for _ in range(2):
            my_train_step(twin, opt, sched, ema, check_clips, check_T)
        averaged = ema.model
    else:
        trainer_ = make_trainer(twin, lambda step: check_clips, 2, lambda m, b: joint_loss(m, b, check_T), lr=1e-3,
                                warmup=1, decay_to=0.1, ema_decay=0.9, progress=False, measure_flops=False, log_every=1)
        torch.manual_seed(1)
        trainer_.fit()
        averaged = trainer_.ema.model
    weights[name] = {"weights": twin.state_dict(), "EMA": averaged.state_dict()}
for kind in ("weights", "EMA"):
    for key, value in weights["mine"][kind].items():
        torch.testing.assert_close(value, weights["package"][kind][key], rtol=1e-4, atol=1e-6)
print("two steps of my_train_step leave the same weights and the same EMA as vgcourse.train.make_trainer")

# %% [markdown]
# Now the package's trainer, the same step, trains this profile's U-Net, bounded by `train_minutes`:

# %%
torch.manual_seed(0)
model = VideoUNet(unet_config).to(S.device)
trainer = make_trainer(model, data.stream(batch, seed=0, device=S.device), steps,
                       lambda m, b: joint_loss(m, b, schedule), lr=lr, warmup=warmup, decay_to=0.1,
                       ema_decay=ema_decay, minutes=train_minutes, compile=S.compile, desc="DDPM U-Net",
                       log_every=pick(smoke=1, cpu=25, gpu=50), model_config=asdict(unet_config))
timer.start()
summary = trainer.fit()
minutes_training = timer.lap("training")
print(f"trained {summary.steps} steps in {summary.wall_time_s / 60:.1f} min: {num(summary.samples_per_s, '.0f')} "
      f"clips/s, MFU {num(summary.mfu, '.1%')}, {num(summary.train_flops, '.3g')} training FLOPs, on {summary.device}")

# %%
plot_curves(trainer.history, keys=["loss"], smooth=0.6, logy=True)

# %% [markdown]
# ## 6 · Sampling: ancestral DDPM and DDIM
#
# We sample from the EMA weights in bf16 on CUDA, compiled once for the one batch shape that every sampler uses (a
# new shape would compile again): the compile is timed apart, and the samplers' times are its runs. Every sampler
# starts from the same x_T (the same generator seed), so the samples line up clip by clip, and every comparison
# below can be made clip by clip. Besides DDIM (η = 0) at several step counts, two variants at the reference count,
# both explained in §8: DDIM with noise (η = 1) and DDIM on quadratically spaced steps. The ancestral run keeps every
# `trajectory_every`-th state, to watch a sample form.

# %%
ema_model = trainer.ema.model.eval()
sample_shape = (n_gen, 1, frames, size, size)


def amp():
    return torch.autocast(S.device.type, dtype=S.amp_dtype, enabled=S.amp_dtype is not None)


def x_T_generator() -> torch.Generator:
    return torch.Generator(S.device).manual_seed(1)


# On CUDA, compile the EMA U-Net once, at the one shape every sampler below calls it with (n_gen clips, bf16)
sampler = torch.compile(ema_model) if S.compile else ema_model
if S.compile:
    with torch.no_grad(), amp():
        _, compile_time = timed(lambda: sampler(torch.zeros(sample_shape, device=S.device),
                                                torch.zeros(n_gen, dtype=torch.long, device=S.device)))
    print(f"compiled the EMA U-Net for batch {n_gen} in {compile_time:.0f} s (not counted in the times below)")


def from_x_T(sample_fn, **options):
    """A sampler run from the shared x_T (the same seed for every sampler), on the compiled EMA U-Net."""
    return lambda: sample_fn(sampler, sample_shape, schedule, generator=x_T_generator(), device=S.device,
                             progress=False, **options)


runs = {"DDPM": from_x_T(ddpm_sample, return_trajectory=True, trajectory_every=trajectory_every)}
runs |= {f"DDIM {k}": from_x_T(ddim_sample, steps=k) for k in ddim_steps}
runs[f"DDIM {ddim_ref} η=1"] = from_x_T(ddim_sample, steps=ddim_ref, eta=1.0)
runs[f"DDIM {ddim_ref} quadratic"] = from_x_T(ddim_sample, steps=ddim_ref, spacing="quadratic")
samples, seconds = {}, {}
timer.start()
for name, run in runs.items():
    with amp():
        out, seconds[name] = timed(run)
    if name == "DDPM":
        ddpm, out = out, out.sample                  # the sample and the states it went through
    samples[name] = out.float().clamp(-1, 1)
for name, s in seconds.items():
    print(f"{name:18s}: {s:7.1f} s for {n_gen} clips = {1000 * s / n_gen:8.2f} ms per clip")
minutes_sampling = timer.lap("sampling")

# %%
# NBVAL_IGNORE_OUTPUT
side_by_side({f"DDPM, {T_diffusion} steps": samples["DDPM"][:8],
              f"DDIM, {ddim_ref} steps": samples[f"DDIM {ddim_ref}"][:8]},
             nrow=4)

# %% [markdown]
# The same clips as a static filmstrip (every other frame), beside real clips:

# %%
filmstrip({f"real {i}": data.batch(3, seed=5).video[i] for i in range(3)}
          | {f"DDPM {i}": samples["DDPM"][i] for i in range(4)}
          | {f"DDIM {ddim_ref}, {i}": samples[f"DDIM {ddim_ref}"][i] for i in range(2)})

# %% [markdown]
# **Watching a sample form.** At every state x_t of the ancestral chain the network's ε gives its current guess of
# the clean clip, $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon_\theta(x_t, t))/\sqrt{\bar\alpha_t}$ (clamped
# to [−1, 1], as the sampler does). Below, for the first clip, x_t and x̂₀ at a few of the kept steps, the first and
# the last frame of each. Early on x̂₀ is the blurred average of all the clips the state could still become; where it
# sharpens, the model has decided where each digit is and which digit it is; x_t follows, much later, as the noise
# is taken away. Comparing the first frame's x̂₀ with the last frame's shows whether the chain has decided one pair
# of digits for the whole clip.

# %%
states, levels = ddpm.trajectory[:, 0], ddpm.timesteps.tolist()     # clip 0: (S, C, T, H, W) and (S,); −1: the sample
x0_hats = []
with torch.no_grad(), amp():
    for state, t in zip(states, levels):
        if t < 0:                                                   # the finished sample is its own x̂₀
            x0_hats.append(state)
            continue
        x_t = state[None].to(S.device)                              # (1, C, T, H, W)
        t_ = torch.full((1,), t, device=S.device, dtype=torch.long)
        x0_hats.append(schedule.predict_x0(x_t, t_, ema_model(x_t, t_).float()).clamp(-1, 1)[0].cpu())
x0_hat = torch.stack(x0_hats)                                       # (S, C, T, H, W)
x_t_seen = states.clamp(-1, 1)                                      # x_t, clipped for display


def denoising_strip(columns: int = 9, shown_frames: tuple[int, ...] = (0, frames - 1)) -> Figure:
    """Rows: x_t and x̂₀ of chosen frames; columns: kept steps from x_T to the sample, denser where t is small."""
    kept = torch.tensor(levels[:-1], dtype=torch.float64)               # the noisy states' timesteps
    targets = [(T_diffusion - 1) * u ** 2 for u in torch.linspace(1, 0, columns).tolist()[:-1]]
    picks = sorted({int((kept - t).abs().argmin()) for t in targets}) + [len(levels) - 1]   # ... and the sample
    rows = [(f"{name}, frame {f}", video, f) for f in shown_frames for name, video in (("x_t", x_t_seen),
                                                                                        ("x̂₀", x0_hat))]
    fig = Figure(figsize=(0.95 * len(picks) + 1.2, 0.95 * len(rows) + 0.4), layout="constrained")
    axes = fig.subplots(len(rows), len(picks), squeeze=False)
    for r, (label, video, f) in enumerate(rows):
        for c, s in enumerate(picks):
            ax = axes[r, c]
            ax.imshow(video[s, 0, f], cmap="gray", vmin=-1, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title("sample" if levels[s] < 0 else f"t = {levels[s]}", fontsize=8)
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    return fig


denoising_strip()

# %% [markdown]
# The same chain in full, to scrub: the step slider walks every kept state from pure noise x_T (t = T − 1) to the
# sample (t = −1), x_t on the left and x̂₀ on the right; the frame slider and Play run through the clip at each step.

# %%
# NBVAL_IGNORE_OUTPUT
pair = torch.cat([x_t_seen, torch.ones_like(x_t_seen[..., :1]), x0_hat], dim=-1)   # (S, C, T, H, 2W + 1)
scrubber = VideoScrubber(pair, step_labels=levels, step_name="t", scale=4)
scrubber

# %% [markdown]
# ## 7 · Scores, beside the reference rows
#
# The course's protocol: every sampler's clips are scored against the held-out reference by the probes of chapter
# 00, beside the reference rows of one package call at the same number of clips: **real** clips (not the reference
# ones), **shuffled frames** (every frame real, the order lost), **frozen frames** (the first frame held: real digits
# that never move), **noise** and the **mean video**. Each fd carries its jackknife standard error (the spread of the
# distance when one clip at a time is left out). A video model worth its name gets below the shuffled and the frozen
# rows: both have perfect frames, so they mark what motion alone is worth to the metric.

# %%
timer.start()
evaluator = Evaluator(data, n_real=n_real, device=S.device)
rows = reference_rows(evaluator, n=n_gen)      # real, shuffled frames, frozen frames, noise, mean video: one call
scores = {name: score(evaluator, video) for name, video in samples.items()}
METRICS = ("fd", "frame_quality", "identity_consistency", "diversity", "motion_consistency", "speed_ratio")
print(format_rows(rows | scores, METRICS))
plot_metric_bars({name: (rows | scores)[name] for name in ("real", "shuffled frames", "frozen frames", "DDPM",
                                                           f"DDIM {ddim_ref}")},
                 metrics=["fd", "frame_quality", "identity_consistency", "motion_consistency"],
                 title=f"n = {n_gen} clips per row")

# %% [markdown]
# ## Do the digits keep who they are?
#
# A real clip's two digits are the same two digits in every frame. The identity score asks the frame probe which two
# digits each frame shows and counts the frames that agree with the clip's most common answer (a frozen clip scores
# 1; real clips a little less, since the probe misreads some frames where the digits overlap). Per clip, so that it
# has a standard error, and checked against the package's `Evaluator.digits_per_clip`:

# %%
@torch.no_grad()
def digits_per_clip(video: torch.Tensor) -> dict[str, torch.Tensor]:
    """Identity consistency and frame quality of each clip (B,), whose means are the Evaluator's scores."""
    k = evaluator.objects_per_clip
    p = torch.cat([torch.sigmoid(evaluator.frame_probe(v.to(evaluator.device).float())).cpu()
                   for v in video.split(evaluator.batch_size)])                  # (B, T, 10): each digit's probability
    top = p.topk(k, dim=-1)
    sets = (2 ** top.indices).sum(-1)                                             # (B, T): each frame's k digits
    modal = sets.mode(dim=1).values                                               # (B,): the clip's most common set
    return {"identity_consistency": (sets == modal[:, None]).float().mean(1),
            "frame_quality": (top.values.sum(-1) / (k + p.sum(-1) - top.values.sum(-1))).mean(1)}


real_clips = data.batch(n_gen, seed=PROTOCOL.reference_seed, device=S.device).video   # the "real" row's clips
per_clip = {"real": digits_per_clip(real_clips)} | {name: digits_per_clip(v) for name, v in samples.items()}
package = evaluator.digits_per_clip(samples["DDPM"])                               # the package's per-clip scores
for m in ("identity_consistency", "frame_quality"):
    assert torch.allclose(per_clip["DDPM"][m], package[m], atol=1e-5), m
    assert math.isclose(per_clip["real"][m].mean().item(), rows["real"][m], abs_tol=2e-3)
print(f"{'':20s}{'identity':>16s}{'frame quality':>18s}")
for name in ("real", "DDPM", f"DDIM {ddim_ref}", f"DDIM {ddim_ref} η=1"):
    (i_m, i_se), (q_m, q_se) = (mean_se(per_clip[name][m]) for m in ("identity_consistency", "frame_quality"))
    print(f"{name:20s}{i_m:10.3f} ± {i_se:.3f}{q_m:12.3f} ± {q_se:.3f}")
off_pair = {name: 1 - per_clip[name]["identity_consistency"].mean().item() for name in ("DDPM", "real")}
print(f"in ancestral samples, {off_pair['DDPM']:.0%} of frames show another pair of digits than their clip's most "
      f"common one ({off_pair['real']:.0%} of real frames, where the probe misreads overlaps)")

# %% [markdown]
# Four ancestral samples, the two the probe finds least consistent and two from the middle of the ranking:

# %%
order = per_clip["DDPM"]["identity_consistency"].argsort().tolist()
picked = order[:2] + order[len(order) // 2:len(order) // 2 + 2]
filmstrip({f"clip {i}, identity {per_clip['DDPM']['identity_consistency'][i]:.2f}": samples["DDPM"][i] for i in picked},
          every=1, height=0.45)

# %% [markdown]
# **Reading it.** Where the identity falls short of the real clips', the digits morph: a stroke drawn in one frame is
# drawn a little differently in the next, until the probe reads another digit. Compare the motion and speed columns
# above: where a digit is can be carried from frame to frame pixel by pixel, which is what temporal attention does,
# each pixel attending over its own T frames. What a digit is has to travel with the digit: to keep a moving digit's
# shape, a pixel must relate to the pixel the digit came from, a different one in every frame, which this U-Net can
# do only by combining its spatial and its temporal layers. Attention over the whole clip at once (chapter 12)
# relates them directly, and diffusion in an autoencoder's latent space (chapter 10) leaves the strokes to a decoder.

# %% [markdown]
# ## 8 · Quality against sampling steps
#
# DDIM at 10, 25, 50 and 100 steps against full ancestral sampling (all T steps), on the Fréchet distance and the
# frame and motion metrics, and in wall time per clip. Two ways of picking the steps (Song et al. 2021, App. D.2):
# *linear*, evenly spaced over [0, T−1], at every step count, and *quadratic*, τ_i ∝ i², at the reference 50 steps:
# short steps near the data where the fine detail is drawn and long ones near the noise (the paper's choice for
# CIFAR10). The grey lines are the reference rows.

# %%
fig = Figure(figsize=(13, 3.8), layout="constrained")
axes = fig.subplots(1, 3)
xs = ddim_steps
plot_xy({"DDIM, linear": (xs, [scores[f"DDIM {k}"]["fd"] for k in xs]),
         "DDIM, quadratic": ([ddim_ref], [scores[f"DDIM {ddim_ref} quadratic"]["fd"]]),
         "DDIM, η = 1": ([ddim_ref], [scores[f"DDIM {ddim_ref} η=1"]["fd"]]),
         "DDPM (ancestral)": ([T_diffusion], [scores["DDPM"]["fd"]])},
        xlabel="network calls per sample", ylabel="Fréchet distance ↓", logx=True, ax=axes[0])
for row, style in [("real", ":"), ("shuffled frames", "--"), ("frozen frames", "-.")]:
    axes[0].axhline(rows[row]["fd"], color="grey", linestyle=style, label=row)
axes[0].legend(fontsize=7)
for i, m in enumerate(("frame_quality", "identity_consistency", "motion_consistency", "diversity")):
    axes[1].plot(xs, [scores[f"DDIM {k}"][m] for k in xs], "o-", color=f"C{i}", label=f"{m} (DDIM)")
    axes[1].plot([T_diffusion], [scores["DDPM"][m]], "X", markersize=9, color=f"C{i}", label=f"{m} (DDPM)")
    axes[1].axhline(rows["real"][m], color=f"C{i}", linestyle=":", linewidth=1)
axes[1].set_xscale("log")
axes[1].set_xlabel("network calls per sample")
axes[1].set_ylabel("score ↑ (dotted: real)")
axes[1].legend(fontsize=6)
axes[1].grid(alpha=0.3)
plot_xy({"DDIM": (xs, [1000 * seconds[f"DDIM {k}"] / n_gen for k in xs]),
         "DDPM (ancestral)": ([T_diffusion], [1000 * seconds["DDPM"] / n_gen])},
        xlabel="network calls per sample", ylabel="ms per clip", logx=True, logy=True, ax=axes[2])
for ax in axes:
    ax.set_xticks(xs + [T_diffusion], [str(k) for k in xs + [T_diffusion]])
    ax.xaxis.set_minor_locator(NullLocator())
fig

# %% [markdown]
# **Each sampler against the ancestral one, clip by clip.** Two distances on different clips each carry their own
# noise, but every sampler here starts from the same x_T, clip by clip, so much of that noise is shared. The ratio of
# two distances, with its jackknife standard error (leave clip i out of *both* sample sets, for every i: the shared
# noise cancels in the ratio; `vgcourse.metrics.jackknife_fd`), says how far apart two samplers are more precisely
# than the two fds' own errors would:

# %%
features = {name: evaluator.features(video) for name, video in samples.items()}   # (n_gen, D) each, paired by x_T
left_out = jackknife_fd(features, evaluator.real_stats)                           # (n_gen,) each: clip i left out
ratios = {name: {"ratio": scores[name]["fd"] / scores["DDPM"]["fd"],
                 "ratio_se": jackknife_std(left_out[name] / left_out["DDPM"])} for name in samples if name != "DDPM"}
for name, r in ratios.items():
    print(f"{name:18s}: fd {scores[name]['fd']:6.2f} ± {scores[name]['fd_se']:.2f} = {r['ratio']:.3f} ± "
          f"{r['ratio_se']:.3f} × the ancestral sampler's, {1000 * seconds[name] / n_gen:7.2f} ms per clip")
print(f"{'DDPM':18s}: fd {scores['DDPM']['fd']:6.2f} ± {scores['DDPM']['fd_se']:.2f}, "
      f"{1000 * seconds['DDPM'] / n_gen:7.2f} ms per clip")
minutes_scoring = timer.lap("scoring")

# %% [markdown]
# **Noise in the sampler.** DDIM (η = 0) commits to every early guess of x̂₀; ancestral sampling adds fresh noise at
# each step, which lets later steps correct earlier errors. DDIM's family (Song et al. 2021, eq. (16)) has the dial:
# σ_τ = η·√((1−ᾱ_prev)/(1−ᾱ_τ))·√(1−ᾱ_τ/ᾱ_prev) mixes in that noise, η = 1 being ancestral sampling on the shorter
# schedule. The same steps, the same x_T, η = 0 and η = 1, each read against a bar of 10% above the ancestral
# sampler's fd (met when the ratio is below 1.10 by one standard error):

# %%
for eta, name in [(0, f"DDIM {ddim_ref}"), (1, f"DDIM {ddim_ref} η=1")]:
    r = ratios[name]
    print(f"DDIM {ddim_ref} steps, η = {eta}: fd {r['ratio']:.3f} ± {r['ratio_se']:.3f} × ancestral "
          f"({verdict(r['ratio'], 1.1, r['ratio_se'])} within 10%), identity "
          f"{scores[name]['identity_consistency']:.3f}, diversity {scores[name]['diversity']:.3f}, speed ratio "
          f"{scores[name]['speed_ratio']:.3f}")
print(f"ancestral, {T_diffusion} steps: identity {scores['DDPM']['identity_consistency']:.3f}, diversity "
      f"{scores['DDPM']['diversity']:.3f}, speed ratio {scores['DDPM']['speed_ratio']:.3f}")
more = max(ddim_steps)
print(f"deterministic DDIM at {more} steps: {ratios[f'DDIM {more}']['ratio']:.3f} ± "
      f"{ratios[f'DDIM {more}']['ratio_se']:.3f} × ancestral")

# %% [markdown]
# **Reading it.** If the η = 1 row sits near the ancestral sampler while η = 0 falls behind, and more deterministic
# steps do not close the gap, then the gap lies between the model's ODE and its SDE, not between few steps and many.
# Why noise can help: the reverse SDE's drift carries the learned score twice over where the ODE carries it once, and
# the difference, an extra score step plus fresh noise, is a Langevin corrector at the current noise level (chapter
# 09): it pulls the state back towards what the model learned at that level, while the deterministic path carries an
# early error to the end. Karras et al. 2022 (§4) found stochastic steps helping imperfect networks the same way;
# with a model trained far longer (CIFAR10, 800k steps), the DDIM paper's Table 1 has deterministic DDIM at 50 steps
# level with 1000 ancestral steps.
#
# **Short steps where the detail is drawn.** The 1000-step sampler's advantage is small steps; DDIM can spend its 50
# where they matter most. Quadratic spacing puts half of them in the least noisy quarter of the chain, where the
# digits' strokes are drawn, and only a few long ones among the near-pure noise. The same model, the same x_T, η = 0:

# %%
linear_ts, quadratic_ts = (ddim_timesteps(T_diffusion, ddim_ref, s) for s in ("linear", "quadratic"))
for label, ts in [("linear", linear_ts), ("quadratic", quadratic_ts)]:
    name = f"DDIM {ddim_ref}" if label == "linear" else f"DDIM {ddim_ref} quadratic"
    r = ratios[name]
    print(f"{label:9s} spacing: longest step {int((ts[:-1] - ts[1:]).max())} timesteps, half of the steps below "
          f"t = {int(ts[len(ts) // 2])}; fd {r['ratio']:.3f} ± {r['ratio_se']:.3f} × ancestral, identity "
          f"{scores[name]['identity_consistency']:.3f}, motion {scores[name]['motion_consistency']:.3f}")

# %% [markdown]
# **Reading it.** Quadratic spacing buys its short steps near the data with long ones through the noisy half of the
# chain, and that is where the layout is decided: where each digit is and which way it goes, which the Fréchet
# distance and the motion metrics weigh more than stroke detail. Song et al. 2021 chose quadratic spacing for CIFAR10
# images, where there is no motion to lay out; compare the two rows above to see which half of the chain matters more
# for this model.
#
# **How many clips does the comparison need?** A Fréchet distance fitted to k clips is biased upwards, and the bias
# falls as k grows: the k clips' mean and covariance are noisy estimates, and noise only adds distance. Real clips
# show it best, since their true distance to the reference is small. The bias is shared by every sampler scored at
# the same k, so it pulls the ratio of two distances towards 1: at small k a worse sampler looks closer to a better
# one than it is. Below, the same paired samples scored on their first k clips, beside the first k real clips of the
# "real" row, each ratio with its jackknife standard error. The last line, "beyond real", divides what each sampler
# adds to the real clips' distance: what the ratio would tend to if the bias were the same for samples and real clips.

# %%
ref_name = f"DDIM {ddim_ref}"
feats = {"real": evaluator.features(real_clips), "DDPM": features["DDPM"], ref_name: features[ref_name]}
by_clips = {}
for k in [k for k in (n_gen // 4, n_gen // 2, n_gen) if k >= 3]:
    fd_k = {name: frechet_distance(*gaussian_stats(f[:k]), *evaluator.real_stats) for name, f in feats.items()}
    left_k = jackknife_fd({name: feats[name][:k] for name in ("DDPM", ref_name)}, evaluator.real_stats)
    beyond = fd_k["DDPM"] - fd_k["real"]
    by_clips[k] = fd_k | {"ratio": fd_k[ref_name] / fd_k["DDPM"],
                          "ratio_se": jackknife_std(left_k[ref_name] / left_k["DDPM"]),
                          "ratio_beyond_real": (fd_k[ref_name] - fd_k["real"]) / beyond if beyond > 0 else math.nan}
    row = by_clips[k]
    print(f"k = {k:4d}: fd real {row['real']:6.2f}, DDPM {row['DDPM']:6.2f}, {ref_name} {row[ref_name]:6.2f}; "
          f"ratio {row['ratio']:.3f} ± {row['ratio_se']:.3f}; beyond real {row['ratio_beyond_real']:.2f}")
# at k = n_gen these are the numbers of §7: the same clips, the same evaluator
assert math.isclose(by_clips[n_gen]["real"], rows["real"]["fd"], rel_tol=1e-6, abs_tol=1e-9)
assert math.isclose(by_clips[n_gen]["DDPM"], scores["DDPM"]["fd"], rel_tol=1e-6, abs_tol=1e-9)
ks = list(by_clips)
print(f"real clips score fd {by_clips[ks[0]]['real']:.2f} on {ks[0]} clips and {by_clips[ks[-1]]['real']:.2f} on "
      f"{ks[-1]}: that much of any distance comes from the number of clips alone")

fig = Figure(figsize=(11, 3.6), layout="constrained")
ax_fd, ax_ratio = fig.subplots(1, 2)
for name, label in [("real", "real clips"), ("DDPM", "DDPM (ancestral)"), (ref_name, ref_name)]:
    ax_fd.plot(ks, [by_clips[k][name] for k in ks], "o-", label=label)
ax_ratio.errorbar(ks, [by_clips[k]["ratio"] for k in ks], yerr=[by_clips[k]["ratio_se"] for k in ks], fmt="o-",
                  capsize=3, label=f"{ref_name} / DDPM (± 1 SE)")
ax_ratio.plot(ks, [by_clips[k]["ratio_beyond_real"] for k in ks], "s--", label="the same, beyond real clips")
ax_ratio.axhline(1.1, color="grey", linestyle=":", label="10% above ancestral")
ax_fd.set_ylabel("Fréchet distance ↓")
ax_ratio.set_ylabel("fd ratio")
for ax in (ax_fd, ax_ratio):
    ax.set_xscale("log", base=2)
    ax.set_xticks(ks, [str(k) for k in ks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("clips scored, k")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
fig

# %% [markdown]
# **Reading it.** Every distance in this chapter is read at the same k, 384 clips against the same 512 held-out ones
# in the gpu profile, the course's protocol: a number read at another k, or against another reference, is not
# comparable with these.

# %% [markdown]
# ## 9 · Joint training, shown working
#
# The same EMA model, the same x_T, DDIM at the reference number of steps, twice: with temporal attention on (video
# mode, as above) and off (image mode: every frame an independent sample). If joint training worked, image mode gives
# frames as good as video mode's but digits that change from frame to frame, while video mode keeps each digit's
# identity, although an eighth of its training clips had no time axis. Stated before measuring, clip by clip (the
# two modes start from the same x_T): **shown working** if image mode's frame quality is at least 0.9 of video
# mode's and video mode's identity is above image mode's, each by one standard error of the clip-by-clip difference;
# **not shown** if either misses by more than one; **not resolved** otherwise.

# %%
video_row = f"DDIM {ddim_ref}"
with amp():  # the eager EMA model: temporal_attention=False would compile another graph
    image_mode = ddim_sample(lambda x, t: ema_model(x, t, temporal_attention=False), sample_shape, schedule,
                             steps=ddim_ref, generator=x_T_generator(), device=S.device, progress=False)
image_mode = image_mode.float().clamp(-1, 1)
scores["image mode"] = score(evaluator, image_mode)
per_clip["image mode"] = digits_per_clip(image_mode)
d_identity = per_clip[video_row]["identity_consistency"] - per_clip["image mode"]["identity_consistency"]   # (n,)
d_quality = per_clip["image mode"]["frame_quality"] - 0.9 * per_clip[video_row]["frame_quality"]           # (n,)


def above_zero(d: torch.Tensor) -> str:
    """'met' when the mean of per-clip differences d (B,) is above 0 by one standard error (see verdict)."""
    mean, se = mean_se(d)
    return verdict(mean, 0.0, se, lower_is_better=False)


joint_parts = {"identity kept by temporal attention": above_zero(d_identity),
               "frames as good without it": above_zero(d_quality)}
joint = ("shown working" if all(v == "met" for v in joint_parts.values()) else
         "not shown" if "not met" in joint_parts.values() else "not resolved")
for label, row in [("video mode (temporal on)", video_row), ("image mode (temporal off)", "image mode")]:
    print(f"{label:28s}" + "".join(f"  {m} {scores[row][m]:.3f}" for m in METRICS))
print(f"identity, video minus image mode: {mean_se(d_identity)[0]:+.3f} ± {mean_se(d_identity)[1]:.3f} "
      f"({joint_parts['identity kept by temporal attention']}); frame quality of image mode minus 0.9 × video mode's: "
      f"{mean_se(d_quality)[0]:+.3f} ± {mean_se(d_quality)[1]:.3f} ({joint_parts['frames as good without it']})")
print(f"joint training: {joint}")

# %% [markdown]
# Two clips in each mode, from the same x_T (every other frame). Image mode is not a model to rank beside the others:
# its frames are meant to be unrelated, and its fd measures exactly that.

# %%
filmstrip({f"video mode {i}": samples[video_row][i] for i in range(2)}
          | {f"image mode {i}": image_mode[i] for i in range(2)})

# %% [markdown]
# ## 10 · Results
#
# The bars of this chapter, for the headline model (ancestral sampling from the EMA U-Net; they are meant for the
# gpu profile, the smoke and cpu profiles being far too short to meet them). Each is read with one standard error:
# met when the value beats its line by at least one, not met when it misses by more than one, not resolved in
# between. Where the line is itself measured on n clips (a reference row, or a fraction of the real clips' score),
# the standard error is that of the difference, both errors combined.
#
# - **past the floor**: fd below twice the shuffled-frame row (what the course asks of any model whose samples it
#   shows);
# - **better than frozen frames**: fd below the frozen-frame row (what a headline model aims for);
# - **identity** and **frame quality** within 10% of the real clips'.

# %%
head = scores["DDPM"]
real_identity, real_quality = (mean_se(per_clip["real"][m]) for m in ("identity_consistency", "frame_quality"))
head_identity, head_quality = (mean_se(per_clip["DDPM"][m]) for m in ("identity_consistency", "frame_quality"))
bars = {
    "past the floor: fd below 2× shuffled frames": bar(head["fd"], 2 * rows["shuffled frames"]["fd"], head["fd_se"],
                                                       2 * rows["shuffled frames"]["fd_se"]),
    "fd below frozen frames": bar(head["fd"], rows["frozen frames"]["fd"], head["fd_se"],
                                  rows["frozen frames"]["fd_se"]),
    "identity within 10% of real": bar(head_identity[0], 0.9 * real_identity[0], head_identity[1],
                                       0.9 * real_identity[1], lower_is_better=False),
    "frame quality within 10% of real": bar(head_quality[0], 0.9 * real_quality[0], head_quality[1],
                                            0.9 * real_quality[1], lower_is_better=False),
}
print(show_bars(bars))
print(f"ancestral DDPM after {minutes_training:.2f} min of training ({summary.steps} steps): fd {head['fd']:.2f} ± "
      f"{head['fd_se']:.2f}; reference rows: real {rows['real']['fd']:.2f}, frozen {rows['frozen frames']['fd']:.2f}, "
      f"shuffled {rows['shuffled frames']['fd']:.2f}, noise {rows['noise']['fd']:.1f}")

# %% [markdown]
# ## Claim check: "diffusion models are slow to sample, and DDIM buys the speed back"
#
# The survey: diffusion models pay for their quality with hundreds to thousands of network calls per sample, where a
# GAN or a VAE decoder needs one, and DDIM-style samplers recover most of that speed at little cost in quality. Two
# parts, stated before measuring, each read on the ratio of a DDIM sampler's fd to the ancestral sampler's, with the
# ratio's standard error over the paired clips (§8):
#
# 1. **Many calls are needed.** DDIM with the fewest steps tried (10 in the gpu profile, a hundredth of the calls)
#    scores an fd above the ancestral sampler's by more than one standard error: supported; below it by more than
#    one: not supported (a few calls would do); otherwise not resolved.
# 2. **DDIM buys the speed back.** Deterministic DDIM at the reference steps (η = 0, the DDIM paper's sampler, a
#    twentieth of the calls) scores within 10% of the ancestral sampler's fd, the ratio below 1.10 by one standard
#    error: supported; above 1.10 by more than one: not supported; otherwise not resolved.
#
# The claim is supported if both parts are, not supported if either is not, and not resolved otherwise. The wall
# times are printed beside it; they measure the speed, while the check is about what the speed costs.

# %%
fewest = min(ddim_steps)
parts = {}
for part, name, line, lower in [("many calls are needed", f"DDIM {fewest}", 1.0, False),
                                ("DDIM buys the speed back", f"DDIM {ddim_ref}", 1.1, True)]:
    r = ratios[name]
    outcome = verdict(r["ratio"], line, r["ratio_se"], lower_is_better=lower)
    parts[part] = {"sampler": name, "ratio": r["ratio"], "ratio_se": r["ratio_se"], "line": line,
                   "outcome": {"met": "supported", "not met": "not supported"}.get(outcome, outcome)}
claim = ("supported" if all(p["outcome"] == "supported" for p in parts.values()) else
         "not supported" if any(p["outcome"] == "not supported" for p in parts.values()) else "not resolved")
ms = {name: 1000 * s / n_gen for name, s in seconds.items()}
for part, p in parts.items():
    print(f"{p['outcome']:>13s}: {part}: {p['sampler']} at {p['ratio']:.3f} ± {p['ratio_se']:.3f} × the ancestral "
          f"sampler's fd (line {p['line']:.2f})")
print(f"claim: {claim}")
print(f"time per clip on {S.device_name}: ancestral {ms['DDPM']:.1f} ms ({T_diffusion} calls), DDIM {fewest} "
      f"{ms[f'DDIM {fewest}']:.2f} ms, DDIM {ddim_ref} {ms[f'DDIM {ddim_ref}']:.2f} ms: "
      f"{ms['DDPM'] / ms[f'DDIM {ddim_ref}']:.1f}× faster at {T_diffusion // ddim_ref}× fewer calls")
eta1 = ratios[f"DDIM {ddim_ref} η=1"]
print(f"beside it, DDIM {ddim_ref} with η = 1: {eta1['ratio']:.3f} ± {eta1['ratio_se']:.3f} × the ancestral fd "
      f"({verdict(eta1['ratio'], 1.1, eta1['ratio_se'])} within 10%)")

# %% [markdown]
# **Reading it.** The first part is what makes diffusion slow: if a hundredth of the calls drew clips as good, the
# thousand would be waste. The second is DDIM's promise; where it fails while the η = 1 member (the last line above)
# meets the same bar, the price lies in dropping the sampler's noise rather than in the number of steps (§8). Both are
# read on this model after a few minutes of training; the DDIM paper's models were trained for hundreds of thousands
# of steps, and a better-trained network leaves a deterministic sampler fewer early errors to carry.

# %%
results.record(
    "08_ddpm_video",
    {"headline": headline(head, n_real=n_real, minutes=minutes_training, identity_consistency_se=head_identity[1],
                          frame_quality_se=head_quality[1], samples_per_s=summary.samples_per_s, mfu=summary.mfu,
                          ddim_fd=scores[f"DDIM {ddim_ref}"]["fd"], ddim_fd_se=scores[f"DDIM {ddim_ref}"]["fd_se"],
                          ddim_over_ddpm_fd=ratios[f"DDIM {ddim_ref}"]["ratio"],
                          ddim_over_ddpm_fd_se=ratios[f"DDIM {ddim_ref}"]["ratio_se"],
                          ddim_eta1_over_ddpm_fd=eta1["ratio"], ddim_eta1_over_ddpm_fd_se=eta1["ratio_se"],
                          ddpm_ms_per_clip=ms["DDPM"], ddim_ms_per_clip=ms[f"DDIM {ddim_ref}"]),
     "samplers": scores, "reference_rows": rows, "ratios_to_ddpm": ratios, "sampling_ms_per_clip": ms,
     "fd_by_clips": {str(k): v for k, v in by_clips.items()}, "bars": bars,
     "claim": {"outcome": claim, "parts": parts}, "joint_training": {"outcome": joint, "parts": joint_parts},
     "parts_minutes": timer.minutes},
    started=STARTED, train=summary.as_dict(),
    config={"unet": asdict(unet_config), "parameters": count_parameters(model), "size": size, "frames": frames,
            "steps": summary.steps, "train_minutes": train_minutes, "batch": batch, "lr": lr, "warmup": warmup,
            "ema_decay": ema_decay, "image_fraction": image_fraction, "schedule": "linear", "T": T_diffusion,
            "n_gen": n_gen, "n_real": n_real, "ddim_steps": ddim_steps, "ddim_ref": ddim_ref})

# %% [markdown]
# ## Exercises
#
# Each exercise has a stub to fill and a check from the package; run the check cell after editing.
#
# **1. The forward process in closed form.** Write `q_sample(x0, t, noise, alphas_cumprod)`: videos
# x0 (B, C, T, H, W), one timestep per clip t (B,), noise like x0, and ᾱ of shape (T_diffusion,).

# %%
def q_sample(x0, t, noise, alphas_cumprod):
    # YOUR CODE HERE
    raise NotImplementedError

# %%
# NBVAL_CHECK_OUTPUT
check("q_sample", q_sample)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Index ᾱ with t and reshape it to (B, 1, 1, 1, 1) so that it broadcasts; eq. (4) has square roots.
# The reference answer: `solution("q_sample")`.
# </details>
#
# **2. One DDIM step.** Write `ddim_step(x_t, eps, abar_t, abar_prev)` with η = 0: from x_t at noise level
# ᾱ_t (a float) and the model's ε, predict x̂₀, then move to noise level ᾱ_prev along the same ε.

# %%
def ddim_step(x_t, eps, abar_t, abar_prev):
    # YOUR CODE HERE
    raise NotImplementedError

# %%
# NBVAL_CHECK_OUTPUT
check("ddim_step", ddim_step)

# %% [markdown]
# <details><summary>Hint</summary>
#
# x̂₀ = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t, then √ᾱ_prev x̂₀ + √(1−ᾱ_prev) ε. At ᾱ_prev = 1 the step returns x̂₀.
# The reference answer: `solution("ddim_step")`.
# </details>
#
# **3. The cosine schedule.** Write `cosine_betas(T)` returning the T betas of Nichol & Dhariwal's schedule:
# ᾱ_t = f(t)/f(0) with f(t) = cos²((t/T + s)/(1 + s) · π/2), s = 0.008, and β_t = 1 − ᾱ_t/ᾱ_{t−1},
# clipped at 0.999.

# %%
def cosine_betas(T):
    # YOUR CODE HERE
    raise NotImplementedError

# %%
# NBVAL_CHECK_OUTPUT
check("cosine_betas", cosine_betas)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Evaluate f on t = 0, 1, …, T (T + 1 values, in float64), divide by f(0), and take ratios of neighbours.
# The reference answer: `solution("cosine_betas")`.
# </details>

# %% [markdown]
# **4. Clipping x̂₀, predicted then seen.** Every sampler above clamps its guess x̂₀ to [−1, 1] at every step, as
# Ho et al.'s released sampler does, and recomputes ε from the clamped guess so that x_t, x̂₀ and ε stay consistent.
# The cell below runs DDIM with the fewest steps of §8 twice through your `ddim_step` of exercise 2 (through the
# reference answer while yours does not pass): with the clamp and without it, both from §6's x_T. **Predict** before
# you run: without the clamp, does the fd rise or fall, and by more than one standard error? The run with the clamp
# is §6's sampler written out, so its fd should land on §8's row.

# %%
step_fn = ddim_step if check("ddim_step", ddim_step).passed else solution("ddim_step")


@torch.no_grad()
def my_ddim(step_fn, steps: int, clamp: bool) -> torch.Tensor:
    """Deterministic DDIM from §6's x_T, one step_fn(x_t, ε, ᾱ_t, ᾱ_prev) per timestep, x̂₀ clamped or not."""
    abar = schedule.alphas_cumprod.double().cpu()
    ts = ddim_timesteps(T_diffusion, steps).tolist()
    x = torch.randn(sample_shape, device=S.device, generator=x_T_generator())         # the same x_T as §6
    for i, t in enumerate(ts):
        a, a_prev = abar[t].item(), (abar[ts[i + 1]].item() if i + 1 < len(ts) else 1.0)
        with amp():
            eps = sampler(x, torch.full((n_gen,), t, device=S.device, dtype=torch.long)).float()
        if clamp:                                                    # x̂₀ clamped, then ε recomputed to match it
            x0 = ((x - math.sqrt(1 - a) * eps) / math.sqrt(a)).clamp(-1, 1)
            eps = (x - math.sqrt(a) * x0) / math.sqrt(1 - a)
        x = step_fn(x, eps, a, a_prev)
    return x.clamp(-1, 1)


features_ex = {"clamped": evaluator.features(my_ddim(step_fn, fewest, clamp=True)),
               "not clamped": evaluator.features(my_ddim(step_fn, fewest, clamp=False))}   # (n_gen, D) each
left_ex = jackknife_fd(features_ex, evaluator.real_stats)
fd_ex = {name: frechet_distance(*gaussian_stats(f), *evaluator.real_stats) for name, f in features_ex.items()}
ratio_ex = fd_ex["not clamped"] / fd_ex["clamped"]
ratio_ex_se = jackknife_std(left_ex["not clamped"] / left_ex["clamped"])
print(f"DDIM {fewest} steps with your step: fd {fd_ex['clamped']:.2f} clamped (§8's row: "
      f"{scores[f'DDIM {fewest}']['fd']:.2f}), {fd_ex['not clamped']:.2f} not clamped: {ratio_ex:.3f} ± "
      f"{ratio_ex_se:.3f} × the clamped fd")

# %% [markdown]
# <details><summary>What to look for</summary>
#
# At high noise, x̂₀ = (x_t − √(1−ᾱ_t) ε)/√ᾱ_t divides by a small √ᾱ_t: a small error in ε becomes a large one in x̂₀,
# far outside the range any pixel can have. The clamp throws that part away; without it a deterministic sampler
# carries it into its next state, and with few steps there are few later steps to undo it. A ratio within one
# standard error of 1 says the model's early guesses stay in range on their own. Latent diffusion (chapter 10) turns
# the clamp off, since a latent's range is not [−1, 1].
# </details>

# %%
print(f"chapter wall time: {(time.time() - STARTED) / 60:.1f} min in the {S.profile} profile; parts (min): "
      f"{timer.minutes}")
