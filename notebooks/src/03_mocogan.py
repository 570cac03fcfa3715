# %% [markdown]
# # 03 · MoCoGAN: content and motion
#
# **What this chapter builds.** A video GAN whose latent space is split in two: a *content* code drawn once per
# clip (which digits, in which handwriting) and a path of *motion* codes drawn by a recurrent network, one per
# frame (where they are, how they move). An image generator turns each [content, motion(t)] pair into frame t;
# two discriminators train it, one on single frames and one on whole clips. We build each piece in plain view,
# check it against the package, train the package's version on moving digits, and then test the split itself:
# clips that share a content code should show the same digits, clips that share motion codes should move the same
# way, and a recurrent network unrolled for longer than it was trained on should give longer clips.
#
# **Where it sits in the history.** The GAN + VAE era of video generation (2016–2021):
#
# - Vondrick, Pirsiavash & Torralba 2016 (**VGAN**) generated a whole clip from one latent with 3D convolutions,
#   a moving foreground over a still background.
# - Saito, Matsumoto & Saito 2017 (**TGAN**, chapter 02) split the generator in two: a temporal generator turns
#   one latent into one latent per frame, an image generator draws each frame.
# - Tulyakov, Liu, Yang & Kautz 2018 (**MoCoGAN**, this chapter) split the *latent*: a content code held for the
#   whole clip and motion codes from a GRU, with an image discriminator D_I and a video discriminator D_V.
# - Clark, Donahue & Simonyan 2019 (**DVD-GAN**, chapter 04) scaled the idea up with a cheaper pair of
#   discriminators; Lee et al. 2018 (**SAVP**, chapter 04) joined a VAE and a GAN for prediction.
#
# **Time per profile.** The same code runs in every profile; only the sizes change (chosen below with `pick`).
#
# | profile | data | model | training | time |
# |---|---|---|---|---|
# | `smoke` | 16×16, 16 frames | tiny | 2 steps | < 1 min on 2 CPU cores (checks only) |
# | `cpu` | 16×16, 16 frames | G 0.1M parameters | 4 minutes, batch 16 | ≈ 5 min on 2 CPU cores: moving blobs |
# | `gpu` | 32×32, 16 frames (the protocol) | G 3.2M, D_I 0.7M, D_V 2.6M | 4.5 minutes, batch 64 | 5.8 min on one H200 |

# %%
import copy
import time
from dataclasses import asdict

import torch
from matplotlib.figure import Figure

from vgcourse.profiles import pick, setup

STARTED = time.time()
S = setup(seed=0)          # prints profile, device, precision, compile, torch version

# %%
from vgcourse import results
from vgcourse.data import MovingDigits
from vgcourse.display import plot_curves, show_video, side_by_side
from vgcourse.exercises import check, solution
from vgcourse.gan import d_nonsaturating, g_nonsaturating, r1_penalty
from vgcourse.gan.mocogan import (
    MoCoGANConfig,
    MoCoGANRecipe,
    MoCoLatents,
    build_mocogan,
    mocogan_paper,
    mocogan_step,
    r1_due,
    sample_frames,
)
from vgcourse.metrics import PROTOCOL, Evaluator
from vgcourse.metrics.disentanglement import content_agreement, real_pairs, trajectory_correlation
from vgcourse.metrics.protocol import format_rows, headline, reference_rows, score, verdict
from vgcourse.nn import count_parameters
from vgcourse.results import PartTimer
from vgcourse.train import TrainConfig, Trainer

timer = PartTimer(STARTED)

# %% [markdown]
# ## Sizes for this profile
#
# Everything that changes between profiles is chosen here, in plain view. The gpu profile trains on the course's
# protocol data (moving digits, 32×32, 16 frames, two digits) and is scored on 384 generated clips against the
# 512-clip held-out reference. The smoke and cpu profiles work at 16×16 so that two CPU cores can take some
# steps; their numbers are much weaker than the gpu run's, committed in this notebook's outputs.
#
# The recipe is a stabilised GAN rather than the paper's: the non-saturating loss with an R1 penalty on real data
# instead of batch norm in the discriminators, Adam with β₁ = 0, and an exponential moving average (EMA) of the
# generator's weights for sampling. §5 says why each piece is there.

# %%
data = pick(smoke=MovingDigits(size=16, frames=16), cpu=MovingDigits(size=16, frames=16), gpu=PROTOCOL.dataset())
configs = {profile: MoCoGANConfig(image_size=size, frames=16, channels=1,
                                  content_dim=50, motion_dim=16, noise_dim=10,      # d_C, d_M (the GRU's state), d_ε
                                  gen_width=g, gen_norm="group", disc_width=d, disc_norm="none")
           for profile, size, g, d in [("smoke", 16, 4, 4), ("cpu", 16, 32, 32), ("gpu", 32, 128, 64)]}
config = pick(**configs)
recipe = MoCoGANRecipe(loss="nonsaturating", image_frames=4, r1_gamma=1.0, r1_every=4)
batch = pick(smoke=4, cpu=16, gpu=64)                          # clips per step
lr, betas = 2e-4, (0.0, 0.99)                                  # Adam, for G and for both discriminators
ema_decay = pick(smoke=0.9, cpu=0.99, gpu=0.999)               # EMA horizon ~1/(1 - decay) steps
steps = pick(smoke=2, cpu=100_000, gpu=100_000)                # a cap; the time budget decides in cpu and gpu
early_minutes = pick(smoke=None, cpu=0.5, gpu=0.5)             # a first stretch, kept for the last exercise
train_minutes = pick(smoke=None, cpu=4.0, gpu=4.5)             # the whole training budget
n_gen = pick(smoke=8, cpu=128, gpu=PROTOCOL.n_gen)             # generated clips scored (and pairs of clips)
n_real = pick(smoke=32, cpu=256, gpu=PROTOCOL.n_real)          # held-out reference clips
long_frames = 2 * data.frames                                  # §8: clips twice as long as in training
print(f"data: {data}")
print(f"{'time budget ' + str(train_minutes) + ' min' if train_minutes else str(steps) + ' steps'} at batch {batch}; "
      f"{n_gen} generated clips against {n_real} held-out")

# %% [markdown]
# The data: two handwritten digits bouncing off the walls, overlaid by a pixel-wise maximum (chapter 00).

# %%
# NBVAL_IGNORE_OUTPUT
show_video(data.batch(8, seed=1).video, nrow=4, scale=4 if data.size < 32 else 2, caption="real clips")

# %% [markdown]
# ## 1 · The latent path: content held, motion from a GRU
#
# MoCoGAN draws a clip of T frames from a path in latent space, $[z_C, z_M^{(1)}], \ldots, [z_C, z_M^{(T)}]$
# (Tulyakov et al. 2018, §3.1). The **content code** $z_C \sim \mathcal N(0, I_{d_C})$ is drawn once and held for
# every frame. The **motion codes** come from a one-layer GRU $R_M$: it starts from $h_0 \sim \mathcal N(0, I)$,
# reads fresh noise $\varepsilon_t \sim \mathcal N(0, I)$ at every step, and its state is the motion code,
# $z_M^{(t)} = h_t = \mathrm{GRU}(\varepsilon_t, h_{t-1})$. Below, the GRU unrolled one step at a time with a
# `GRUCell` (as the authors' code does), checked against the package's `MotionRNN`, which runs the same
# equations through one `nn.GRU` call.

# %%
# NBVAL_CHECK_OUTPUT
def my_motion_codes(cell: torch.nn.GRUCell, h0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """z_M(1..T) (B, T, d_M) from h_0 (B, d_M) and ε_1..ε_T (B, T, d_ε): h_t = GRU(ε_t, h_{t-1})."""
    h, codes = h0, []
    for t in range(noise.shape[1]):
        h = cell(noise[:, t], h)                                   # one GRU step: reads ε_t, keeps h_t
        codes.append(h)
    return torch.stack(codes, dim=1)


check_config = MoCoGANConfig(image_size=16, frames=16, content_dim=6, motion_dim=4, noise_dim=3, gen_width=8,
                             gen_norm="group", disc_width=8, disc_norm="none")    # tiny, on the CPU, for checks
torch.manual_seed(0)
check_model = build_mocogan(check_config).eval()
gru = check_model["G"].motion.gru                                   # the package's R_M
cell = torch.nn.GRUCell(check_config.noise_dim, check_config.motion_dim)
cell.load_state_dict({"weight_ih": gru.weight_ih_l0, "weight_hh": gru.weight_hh_l0,
                      "bias_ih": gru.bias_ih_l0, "bias_hh": gru.bias_hh_l0})
latents = check_model["G"].sample_latents(3, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    torch.testing.assert_close(my_motion_codes(cell, latents.h0, latents.noise),
                               check_model["G"].motion(latents.h0, latents.noise))
    codes = check_model["G"].codes(latents)                         # (B, T, d_C + d_M): what G_I reads per frame
print("my_motion_codes matches vgcourse.gan.mocogan.MotionRNN")
print(f"per-frame codes {tuple(codes.shape)}: the first {check_config.content_dim} numbers are the same in every "
      f"frame: {bool((codes[:, :, :check_config.content_dim] == codes[:, :1, :check_config.content_dim]).all())}")

# %% [markdown]
# ## 2 · The image generator G_I
#
# Each frame is drawn on its own from its code: G_I is a DCGAN generator (Radford, Metz & Chintala 2016). A 4×4
# transposed convolution turns the code (a 1×1 "image" with d_C + d_M channels) into a 4×4 map; each stride-2
# transposed convolution of kernel 4 doubles the resolution and halves the channels; the last one gives the
# frame, through tanh. The paper's generator normalises with batch norm; ours uses group norm, which does not
# depend on the batch, so the EMA generator of §5 draws the same frames in any batch. Frames never meet inside
# G_I: everything that ties frame t to frame t + 1 is in the latent path.

# %%
# NBVAL_CHECK_OUTPUT
def my_image_generator(code_dim: int, image_size: int, width: int, channels: int = 1) -> torch.nn.Sequential:
    """DCGAN G_I with group norm: code (N, d, 1, 1) -> frame (N, C, H, W); width · H / (2r) channels at r×r."""
    ch = lambda r: width * image_size // (2 * r)                            # noqa: E731
    gn = lambda c: torch.nn.GroupNorm(min(32, c // 4) or 1, c)              # noqa: E731
    layers = [torch.nn.ConvTranspose2d(code_dim, ch(4), 4, 1, 0, bias=False), gn(ch(4)), torch.nn.ReLU()]  # 1 => 4
    r = 4
    while 2 * r < image_size:                                               # 4 => 8 => ... => image_size / 2
        layers += [torch.nn.ConvTranspose2d(ch(r), ch(2 * r), 4, 2, 1, bias=False), gn(ch(2 * r)), torch.nn.ReLU()]
        r *= 2
    layers += [torch.nn.ConvTranspose2d(ch(r), channels, 4, 2, 1, bias=False), torch.nn.Tanh()]  # => image_size
    return torch.nn.Sequential(*layers)


mine = my_image_generator(check_config.content_dim + check_config.motion_dim, 16, 8)
mine.load_state_dict(check_model["G"].image.net.state_dict())               # same layers, same names
code = torch.randn(5, check_config.content_dim + check_config.motion_dim, generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    torch.testing.assert_close(mine(code[:, :, None, None]), check_model["G"].image(code))
print("my_image_generator matches vgcourse.gan.mocogan.ImageGenerator")

# %% [markdown]
# ## 3 · Two discriminators
#
# **D_I** judges single frames: is this a frame of a real clip? It is the paper's patch discriminator, four
# stride-2 convolutions that end in one score per 16×16 patch. **D_V** judges whole clips: four 3D convolutions
# of kernel 4 with stride (1, 2, 2) and no temporal padding, so each of its scores covers 13 consecutive frames
# of one patch and can tell real motion from digits that jump, flicker or change identity. MoCoGAN's loss (eq. (2))
# is the sum of the two GAN games: G fools D_I with its frames and D_V with its clips. Below: D_I cannot see the
# order of the frames (shuffling them only shuffles its scores), D_V can.

# %%
# NBVAL_CHECK_OUTPUT
clip = MovingDigits(size=16, frames=16).batch(2, seed=0).video              # (2, 1, 16, 16, 16)
shuffled = clip[:, :, torch.randperm(16, generator=torch.Generator().manual_seed(0))]
with torch.no_grad():
    frame_scores = lambda v: check_model["D_I"](v.transpose(1, 2).flatten(0, 1))      # noqa: E731 - every frame
    same_set = torch.allclose(frame_scores(clip).sum(0), frame_scores(shuffled).sum(0), atol=1e-5)
    video_changed = not torch.allclose(check_model["D_V"](clip), check_model["D_V"](shuffled))
    shapes = tuple(frame_scores(clip).shape), tuple(check_model["D_V"](clip).shape)
print(f"D_I: scores per frame {shapes[0]}; shuffling the frames leaves their sum unchanged: {same_set}")
print(f"D_V: scores per clip {shapes[1]}; shuffling the frames changes them: {video_changed}")

# %% [markdown]
# The networks of this chapter, and at the sizes of the authors' code (64×64 RGB frames, d_C = 50, d_M = 10,
# 64 filters, batch norm); the package's test counts the paper generator's parameters by hand.

# %%
# NBVAL_CHECK_OUTPUT
paper = build_mocogan(mocogan_paper())
print("paper (64×64×3): " + ", ".join(f"{k} {count_parameters(v) / 1e6:.2f}M" for k, v in paper.items()))
for name, cfg in configs.items():
    print(f"{name:5s} profile ({cfg.image_size}×{cfg.image_size}): "
          + ", ".join(f"{k} {count_parameters(v) / 1e6:.2f}M" for k, v in build_mocogan(cfg).items()))

# %% [markdown]
# ## 4 · The training step
#
# One step alternates the two players (the paper's Algorithm 1 with one update each):
#
# 1. **Discriminators.** Draw fresh latents, generate a batch of clips. D_I scores 4 random frames of each real
#    and each generated clip, D_V scores the clips; each minimises the non-saturating (logistic) loss
#    softplus(−D(real)) + softplus(D(fake)) (`d_nonsaturating`), with the generated clips detached so that
#    this update does not reach G. Every fourth step they also pay R1 = γ/2 · E‖∇ₓD(x)‖² on the *real* inputs
#    (Mescheder, Geiger & Nowozin 2018), times 4 ("lazy" R1, Karras et al. 2020).
# 2. **Generator.** The same generated clips, now with their graph, go through the updated discriminators, their
#    weights frozen for this backward; G minimises softplus(−D_I(frames)) + softplus(−D_V(clip))
#    (`g_nonsaturating`).
#
# Written out, then checked against the package's `mocogan_step`: two copies of the tiny model, one step each of
# both versions from the same random state, must end with identical weights.

# %%
def my_mocogan_step(trainer, batch) -> dict:
    G, D_I, D_V = (trainer.forward_model[k] for k in ("G", "D_I", "D_V"))
    real = batch.video if hasattr(batch, "video") else batch            # (B, C, T, H, W)
    fake = G.sample(real.shape[0])                                      # fresh z_C, h_0, ε per clip; G's graph kept
    # 1. discriminators: real against generated (detached), eq. (2) of Tulyakov et al. 2018
    real_frames = sample_frames(real, recipe.image_frames)             # (B·k, C, H, W): D_I judges single frames
    fake_frames = sample_frames(fake.detach(), recipe.image_frames)
    d_image = d_nonsaturating(D_I(real_frames), D_I(fake_frames))
    d_video = d_nonsaturating(D_V(real), D_V(fake.detach()))
    d_loss = d_image + d_video
    if r1_due(trainer, recipe.r1_gamma, recipe.r1_every):              # every r1_every steps (not the FLOP-counted one)
        d_loss = d_loss + recipe.r1_every * (r1_penalty(D_I, real_frames, recipe.r1_gamma)
                                             + r1_penalty(D_V, real, recipe.r1_gamma))
    trainer.optimize(d_loss, "disc")
    # 2. generator: fool both, discriminators frozen
    D_I.requires_grad_(False), D_V.requires_grad_(False)
    g_image = g_nonsaturating(D_I(sample_frames(fake, recipe.image_frames)))
    g_video = g_nonsaturating(D_V(fake))
    trainer.optimize(g_image + g_video, "gen")
    D_I.requires_grad_(True), D_V.requires_grad_(True)
    return {"d_image": d_image.detach(), "d_video": d_video.detach(), "g_image": g_image.detach(),
            "g_video": g_video.detach()}


def make_trainer(model, step_fn, steps, **config) -> Trainer:
    """Adam for G and for both discriminators (one optimizer), no gradient clipping, an EMA of G."""
    disc = [p for name in ("D_I", "D_V") for p in model[name].parameters()]
    optimizers = {"disc": torch.optim.Adam(disc, lr, betas=betas),
                  "gen": torch.optim.Adam(model["G"].parameters(), lr, betas=betas)}
    return Trainer(model, optimizers, config.pop("batch_fn"), TrainConfig(steps=steps, grad_clip=None, **config),
                   step_fn=step_fn, ema_of=model["G"])

# %%
# NBVAL_CHECK_OUTPUT
fixed_batch = MovingDigits(size=16, frames=16).batch(4, seed=3)
weights = {}
for name, step_fn in [("mine", my_mocogan_step), ("package", lambda tr, b: mocogan_step(tr, b, recipe))]:
    torch.manual_seed(0)
    twin = build_mocogan(check_config)                                  # the same initial weights for both
    torch.manual_seed(1)                                                # the same draws inside the steps
    make_trainer(twin, step_fn, 2, batch_fn=lambda step: fixed_batch, ema_decay=0.9, progress=False,
                 measure_flops=False, log_every=1).fit()                 # 2 steps: the first with R1
    weights[name] = twin.state_dict()
for key in weights["mine"]:
    torch.testing.assert_close(weights["mine"][key], weights["package"][key])
print("two steps of my_mocogan_step leave the same weights as vgcourse.gan.mocogan.mocogan_step")

# %% [markdown]
# ## 5 · Training
#
# The paper trained with the plain logistic loss, batch norm in the discriminators and Adam (β₁ = 0.5), for
# 100,000 steps. We have a few minutes, so we take the stabilisers that later GANs settled on:
#
# - **R1 on real data** (γ = 1, lazy; Mescheder, Geiger & Nowozin 2018): keeps each discriminator flat around the
#   real clips, so it cannot run away from the generator with sharp, uninformative scores; without batch norm in D
#   its scores of real and generated clips no longer depend on each other through batch statistics.
# - **Adam with β₁ = 0, β₂ = 0.99** (as StyleGAN2) and one learning rate (2·10⁻⁴) for both players: momentum
#   makes two players who chase each other overshoot.
# - **An EMA of the generator** (decay 0.999 in the gpu profile, a horizon of about 1/(1 − decay) = 1,000 steps;
#   Yazıcı et al. 2019) for sampling: GAN weights oscillate around a good solution, and their average lands nearer
#   to it.
# - **Full fp32 precision** (TF32 matrix products on the GPU) and no `torch.compile`: three networks would take
#   minutes to compile out of a 4.5-minute budget, and R1's gradient of a gradient (a double backward) is not
#   supported by compiled graphs. Data is rendered on the GPU, batch by batch.
#
# Training is bounded by minutes: the loop measures its seconds per step and stops at the last step that fits. It
# runs in two stretches; after the first we keep a copy of the generator for the last exercise.

# %%
torch.manual_seed(0)
model = build_mocogan(config).to(S.device)
trainer = make_trainer(model, lambda tr, b: mocogan_step(tr, b, recipe), steps,
                       batch_fn=data.stream(batch, seed=0, device=S.device), ema_decay=ema_decay, amp=False,
                       compile=False, log_every=pick(smoke=1, cpu=10, gpu=100), desc="mocogan")
timer.start()
trainer.config.max_minutes = early_minutes
trainer.fit(pick(smoke=1, cpu=steps, gpu=steps))
early_generator = copy.deepcopy(model["G"])                        # the live generator after the first stretch
early = {"steps": trainer.step, "minutes": trainer.summary.wall_time_s / 60}
trainer.config.max_minutes = None if train_minutes is None else train_minutes - early["minutes"]
summary = trainer.fit()
train_time = timer.lap("MoCoGAN training")


def fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


print(f"trained {summary.steps} steps in {summary.wall_time_s / 60:.1f} min ({early['steps']} in the first "
      f"{early['minutes']:.2f} min): {fmt(summary.samples_per_s, ',.0f')} clips/s, MFU {fmt(summary.mfu, '.1%')}, "
      f"{fmt(summary.train_flops, '.3g')} training FLOPs, on {summary.device}")

# %%
plot_curves(trainer.history, keys=["d_image", "d_video", "g_image", "g_video"], smooth=0.6,
            title="losses (a discriminator at chance scores 2·log 2 ≈ 1.39, a generator log 2 ≈ 0.69)")

# %% [markdown]
# ## 6 · Samples and scores
#
# The EMA generator draws `n_gen` clips; they are scored with the course's protocol against the held-out
# reference, beside the reference rows of one package call at the same number of clips: real clips, their frames
# shuffled (perfect frames, no motion), frozen (the first frame held), pure noise and the mean video.

# %%
generator = trainer.ema.model.eval()


@torch.no_grad()
def generate(g, latents: MoCoLatents, chunk: int = 128) -> torch.Tensor:
    """Clips of latents, drawn in chunks, on the CPU as float in [-1, 1]."""
    return torch.cat([g(latents[i:i + chunk]).float().clamp(-1, 1).cpu() for i in range(0, len(latents), chunk)])


samples = generate(generator, generator.sample_latents(n_gen, generator=torch.Generator(S.device).manual_seed(1)))
evaluator = Evaluator(data, n_real=n_real, device=S.device)
rows = reference_rows(evaluator, n=n_gen)
model_scores = score(evaluator, samples)
print(format_rows(rows | {"MoCoGAN": model_scores},
                  ("fd", "frame_quality", "identity_consistency", "diversity", "motion_consistency", "speed_ratio")))
minutes_scoring = timer.lap("sampling and scoring")

# %%
# NBVAL_IGNORE_OUTPUT
side_by_side({"real": data.batch(8, seed=5).video, "MoCoGAN (EMA)": samples[:8]}, nrow=4,
             scale=4 if data.size < 32 else 2)

# %% [markdown]
# The same clips as a static filmstrip, every other frame (a GIF above may not play where the notebook is read):

# %%
def filmstrip(rows: dict, every: int = 2, height: float = 0.55) -> Figure:
    """One row per labelled clip (C, T, H, W): every `every`-th frame side by side, white lines between them."""
    shown = max(len(range(0, v.shape[1], every)) for v in rows.values())
    fig = Figure(figsize=(height * shown + 1.6, height * len(rows) + 0.2), layout="constrained")
    for ax, (label, clip_) in zip(fig.subplots(len(rows), 1, squeeze=False)[:, 0], rows.items()):
        frames_ = clip_[0, ::every].float().cpu()                               # (T', H, W)
        gap = torch.ones(frames_.shape[0], frames_.shape[1], 1)                  # a white line after each frame
        ax.imshow(torch.cat([frames_, gap], 2).transpose(0, 1).flatten(1), cmap="gray", vmin=-1, vmax=1)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=8)
    return fig


filmstrip({f"real {i}": data.batch(3, seed=5).video[i] for i in range(3)}
          | {f"MoCoGAN {i}": samples[i] for i in range(5)})

# %% [markdown]
# The bars for this chapter's headline model (gpu profile): a Fréchet distance below the frozen-frame row by at
# least one standard error, diversity at least 0.85 of the real clips', frame quality within 15% of real.

# %%
def bar(value: float, line: float, se: float = 0.0, lower_is_better: bool = True) -> dict:
    """A bar read with one standard error (`verdict`): met, not met or not resolved, and the margin to its line."""
    margin = (line - value) if lower_is_better else (value - line)
    return {"outcome": verdict(value, line, se, lower_is_better), "value": value, "se": se, "line": line,
            "margin": margin}


def show_bars(bars_: dict) -> None:
    for name, b in bars_.items():
        se = f" ± {b['se']:.3f}" if b["se"] else ""
        print(f"{b['outcome']:>12s}: {name}: {b['value']:.3f}{se} against {b['line']:.3f} "
              f"({'clears' if b['margin'] >= 0 else 'misses'} it by {abs(b['margin']):.3f})")


real_row, frozen_row = rows["real"], rows["frozen frames"]
bars = {  # diversity and frame quality carry no standard error here
    "fd below frozen frames": bar(model_scores["fd"], frozen_row["fd"], model_scores["fd_se"]),
    "diversity ≥ 0.85 of real": bar(model_scores["diversity"], 0.85 * real_row["diversity"], lower_is_better=False),
    "frame quality within 15% of real": bar(model_scores["frame_quality"], 0.85 * real_row["frame_quality"],
                                            lower_is_better=False),
}
show_bars(bars)

# %% [markdown]
# ## 7 · Is content separated from motion?
#
# The split is a promise about the latent space, so we test it on pairs of generated clips (the package's
# `vgcourse.metrics.disentanglement`):
#
# - **Shared content, different motion**: the same z_C with another clip's h_0 and ε. The frame probe reads
#   each clip's digits (the two classes it sees in most frames); *content agreement* is the fraction of pairs
#   whose digits agree.
# - **Shared motion, different content**: the same h_0 and ε with another z_C. The centroid tracker follows the
#   two digits of each clip; *trajectory correlation* correlates the two clips' tracks, each centred on its own
#   mean position (objects matched by the order that correlates best).
#
# Each measure has its reference from the data itself: real clips with the same digit instances on other paths
# (or the same paths carrying other digits), and unrelated clips, whose agreement is chance.

# %%
g_pairs = torch.Generator(S.device).manual_seed(2)
first = generator.sample_latents(n_gen, generator=g_pairs)
second = generator.sample_latents(n_gen, generator=g_pairs)
clips_a = generate(generator, first)
same_content = generate(generator, first.with_motion(second))          # z_C of `first`, motion of `second`
same_motion = generate(generator, second.with_motion(first))           # z_C of `second`, motion of `first`
objects = data.digits
disentanglement = {
    "content agreement": {
        "MoCoGAN, shared z_C": content_agreement(evaluator, clips_a, same_content),
        "MoCoGAN, nothing shared": content_agreement(evaluator, clips_a, generate(generator, second)),
        "real, same digits": content_agreement(evaluator, *real_pairs(data, n_gen, "content")),
        "real, nothing shared": content_agreement(evaluator, *real_pairs(data, n_gen, "nothing"))},
    "trajectory correlation": {
        "MoCoGAN, shared z_M": trajectory_correlation(clips_a, same_motion, objects),
        "MoCoGAN, nothing shared": trajectory_correlation(clips_a, generate(generator, second), objects),
        "real, same paths": trajectory_correlation(*real_pairs(data, n_gen, "motion"), objects),
        "real, nothing shared": trajectory_correlation(*real_pairs(data, n_gen, "nothing"), objects)},
}
for measure, table in disentanglement.items():
    key = "agreement" if measure == "content agreement" else "correlation"
    print(measure)
    for row, r in table.items():
        print(f"  {row:26s} {r[key]:.3f} ± {r[key + '_se']:.3f}  (n = {r['n']})")
agreement = disentanglement["content agreement"]["MoCoGAN, shared z_C"]
correlation = disentanglement["trajectory correlation"]["MoCoGAN, shared z_M"]
bars["content agreement ≥ 0.8"] = bar(agreement["agreement"], 0.8, agreement["agreement_se"], lower_is_better=False)
bars["trajectory correlation ≥ 0.8"] = bar(correlation["correlation"], 0.8, correlation["correlation_se"],
                                          lower_is_better=False)
minutes_pairs = timer.lap("disentanglement")

# %% [markdown]
# Seen directly: the top rows keep one content code under four motion paths, the bottom rows keep one motion path
# under four content codes.

# %%
one = first[:1]
grid_content = generate(generator, MoCoLatents(one.content.expand(4, -1), second.h0[:4], second.noise[:4]))
grid_motion = generate(generator, MoCoLatents(second.content[:4], one.h0.expand(4, -1), one.noise.expand(4, -1, -1)))
filmstrip({f"z_C fixed, motion {i}": grid_content[i] for i in range(4)}
          | {f"z_M fixed, content {i}": grid_motion[i] for i in range(4)})

# %% [markdown]
# ## 8 · Longer clips than it was trained on
#
# The GRU can be unrolled for as many steps as we like: fresh ε for steps 17–32 give motion codes the image
# generator has never been trained to follow. We draw clips of twice the training length and score each half
# with the protocol (the second half is a 16-frame clip the model was never asked to make), then ask whether the
# digits of the second half are those of the first.

# %%
long = generate(generator, generator.sample_latents(n_gen, frames=long_frames,
                                                    generator=torch.Generator(S.device).manual_seed(3)))
halves = {"frames 1-16": score(evaluator, long[:, :, :data.frames]),
          "frames 17-32": score(evaluator, long[:, :, data.frames:])}
print(format_rows(rows | halves, ("fd", "frame_quality", "identity_consistency", "motion_consistency", "speed_ratio")))
halves_agree = content_agreement(evaluator, long[:, :, :data.frames], long[:, :, data.frames:])
print(f"the two halves of a clip show the same digits in {halves_agree['agreement']:.3f} ± "
      f"{halves_agree['agreement_se']:.3f} of clips")
minutes_long = timer.lap("longer clips")

# %%
filmstrip({f"32 frames, clip {i}": long[i] for i in range(4)}, every=2)

# %% [markdown]
# ## 9 · Results
#
# The bars of this chapter, read with one standard error (they are meant for the gpu profile).

# %%
def shortfalls(scores: dict, real: dict) -> list[str]:
    """Where generated clips fall more than 10% short of real ones on the course's metrics, worst first."""
    gaps = [(scores[m] / real[m], f"{m} {scores[m]:.2f} (real {real[m]:.2f})")
            for m in ("frame_quality", "identity_consistency", "motion_consistency", "diversity")
            if scores[m] < 0.9 * real[m]]
    if abs(scores["speed_ratio"] - 1) > 0.1:
        gaps.append((1 - abs(scores["speed_ratio"] - 1), f"speed ratio {scores['speed_ratio']:.2f} (real 1.00)"))
    return [text for _, text in sorted(gaps)]


show_bars(bars)
short = shortfalls(model_scores, real_row)
print("where the clips fall short of real ones: " + ("; ".join(short) if short else "nowhere by more than 10%"))

results.record(
    "03_mocogan",
    {"headline": headline(model_scores, n_real=n_real, minutes=train_time,
                          content_agreement=agreement["agreement"], trajectory_correlation=correlation["correlation"],
                          fd_frames_17_32=halves["frames 17-32"]["fd"], samples_per_s=summary.samples_per_s,
                          mfu=summary.mfu),
     "scores": model_scores, "reference_rows": rows, "disentanglement": disentanglement,
     "longer_clips": halves | {"halves_content_agreement": halves_agree},
     "bars": bars, "shortfalls": short,
     "early": early},
    started=STARTED, train=summary.as_dict(),
    config={"model": asdict(config), "recipe": asdict(recipe), "batch": batch, "lr": lr, "betas": betas,
            "ema_decay": ema_decay, "train_minutes": train_minutes, "steps": summary.steps,
            "parameters": {k: count_parameters(v) for k, v in model.items()}})

# %% [markdown]
# ## Claim check: "MoCoGAN decomposes motion and content"
#
# The survey credits the GAN era's video models with architectures that make GANs work for video, MoCoGAN
# among them; MoCoGAN's own claim is that its latent split separates what is in a clip from how it moves. Stated
# before measuring: the claim is **supported** if clips that share a content code agree on their digits in at
# least 80% of pairs *and* clips that share motion codes have a trajectory correlation of at least 0.8, each beyond
# one standard error; **not supported** if either misses its line by more than one standard error; **not
# resolved** otherwise.

# %%
outcomes = [bars["content agreement ≥ 0.8"]["outcome"], bars["trajectory correlation ≥ 0.8"]["outcome"]]
claim = ("supported" if all(o == "met" for o in outcomes) else
         "not supported" if "not met" in outcomes else "not resolved")
ca, tc = disentanglement["content agreement"], disentanglement["trajectory correlation"]
print(f"claim {claim}:")
print(f"  content agreement {agreement['agreement']:.3f} ± {agreement['agreement_se']:.3f} (real clips with the same "
      f"digits {ca['real, same digits']['agreement']:.3f}, chance {ca['MoCoGAN, nothing shared']['agreement']:.3f})")
print(f"  trajectory correlation {correlation['correlation']:.3f} ± {correlation['correlation_se']:.3f} (real clips on "
      f"the same paths {tc['real, same paths']['correlation']:.3f}, chance "
      f"{tc['MoCoGAN, nothing shared']['correlation']:.3f})")

# %% [markdown]
# ## Exercises
#
# Each exercise has a stub to fill and a check from the package; run the check cell after editing.
#
# **1. Motion codes.** Write `motion_codes(cell, h0, noise)`: unroll a `GRUCell` from h_0 (B, d_M) over the noise
# ε (B, T, d_ε) and return z_M(1..T) (B, T, d_M).

# %%
def motion_codes(cell, h0, noise):
    # YOUR CODE HERE
    raise NotImplementedError

# %%
# NBVAL_CHECK_OUTPUT
check("motion_codes", motion_codes)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Keep a state h, starting at h0; at step t call `cell(noise[:, t], h)` and keep its output, which is also the next
# state. Stack the T outputs along dimension 1. The reference answer: `solution("motion_codes")`.
# </details>
#
# **2. Do two clips move alike?** Write `centred_correlation(a, b)` for one object's tracks in two sets of clips,
# a and b of shape (N, T, 2) ((y, x) per frame): centre each track on its own mean position over time and return,
# per pair, Σ a·b / (‖a‖ ‖b‖) over frames and axes, shape (N,).

# %%
def centred_correlation(a, b):
    # YOUR CODE HERE
    raise NotImplementedError

# %%
# NBVAL_CHECK_OUTPUT
check("centred_correlation", centred_correlation)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `a - a.mean(1, keepdim=True)` centres every track; then sum the products over dimensions 1 and 2 and divide by
# the two norms (`.flatten(1).norm(dim=1)`). The reference answer: `solution("centred_correlation")`.
# </details>
#
# **3. A MoCoGAN without its video discriminator.** Write `image_only_step(trainer, batch)`: the training step with
# D_I alone (one random frame per clip, the non-saturating loss, no R1), D_V left out. It differs from §4's step in
# three ways (no D_V, one frame instead of `recipe.image_frames`, no R1), so read the comparison with that in mind.
# *Predict first*: trained for as many steps as the first stretch of §5, will its frames be better or worse than that
# generator's, and its motion?
# Then the cell after the check trains it (with the reference answer if yours is not written yet) and scores both
# generators as they are after those steps (not their EMA, which after so few steps still carries part of its random
# start) against the held-out clips.

# %%
def image_only_step(trainer, batch):
    # YOUR CODE HERE
    raise NotImplementedError

# %%
# NBVAL_CHECK_OUTPUT
check("image_only_step", image_only_step)

# %%
step_fn = image_only_step if check("image_only_step", image_only_step).passed else solution("image_only_step")
torch.manual_seed(0)
image_only = build_mocogan(config).to(S.device)
image_trainer = make_trainer(image_only, step_fn, pick(smoke=1, cpu=early["steps"], gpu=early["steps"]),
                             batch_fn=data.stream(batch, seed=0, device=S.device), amp=False,
                             log_every=pick(smoke=1, cpu=10, gpu=100), desc="image only")
image_trainer.config.max_minutes = early_minutes
image_summary = image_trainer.fit()
early_scores = {}
for name, g in [("MoCoGAN, first stretch", early_generator), ("D_I only", image_only["G"])]:   # the live generators
    g.eval()
    early_scores[name] = score(evaluator, generate(g, g.sample_latents(n_gen, generator=torch.Generator(S.device)
                                                                         .manual_seed(4))))
print(f"{early['steps']} steps with both discriminators ({early['minutes']:.2f} min), {image_summary.steps} with "
      f"D_I alone ({image_summary.wall_time_s / 60:.2f} min)")
print(format_rows({"real": rows["real"]} | early_scores,
                  ("fd", "frame_quality", "identity_consistency", "motion_consistency", "speed_ratio")))
minutes_exercise = timer.lap("exercise 3")

# %% [markdown]
# <details><summary>Hint</summary>
#
# Start from §4's step. Take only `G` and `D_I` from `trainer.forward_model`; drop D_V's two losses (`d_video`,
# `g_video`) and everything that adds or returns them, and the R1 lines; draw one frame per clip
# (`sample_frames(x, 1)`). Keep the two `trainer.optimize` calls; freeze only D_I for the generator's update and switch
# its `requires_grad` back on afterwards. The reference answer: `solution("image_only_step")`.
# </details>

# %%
print(f"notebook wall time: {(time.time() - STARTED) / 60:.1f} min in the {S.profile} profile")
