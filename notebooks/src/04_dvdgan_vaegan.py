# %% [markdown]
# # 04 · DVD-GAN and GAN + VAE
#
# **What this chapter builds.** Two things the GAN era learned late. First, **DVD-GAN**: a BigGAN for video whose
# generator runs a convolutional GRU at every resolution, and whose discriminator is split in two so that neither
# half ever sees a full-resolution clip: a spatial discriminator on a few full-resolution frames, a temporal one on
# the whole clip at half resolution. We measure what the split changes in one discriminator update (FLOPs, memory
# and time, against one full-resolution 3D discriminator) and the quality each set-up's generator reaches for the
# same training FLOPs. Second, **GAN + VAE** for prediction: given the first frames of a clip, predict the rest with a
# latent per step, trained as a VAE (a learned posterior, KL to a unit prior), as a GAN, or as both (SAVP), on the
# same network, and measure what each brings: the best of several samples against the true future (coverage), the
# average sample (the blur that coverage costs a VAE), the spread between samples and their frame quality.
#
# **Where it sits in the history.** The GAN + VAE era of video generation (2016–2021):
#
# - Saito et al. 2017 (**TGAN**, chapter 02) and Tulyakov et al. 2018 (**MoCoGAN**, chapter 03) generated short,
#   small clips and judged them with discriminators that see the whole clip at full resolution.
# - Clark, Donahue & Simonyan 2019 (**DVD-GAN**) scaled GANs to Kinetics-600 at up to 256×256 and 48 frames by
#   decomposing the discriminator: D_S on k = 8 sampled frames, D_T on the clip downsampled 2×.
# - For prediction, VAEs with a latent per step (Babaeizadeh et al. 2018, **SV2P**; Denton & Fergus 2018, **SVG**)
#   covered many futures but blurred each; adversarial predictors (Mathieu, Couprie & LeCun 2016) were sharp but
#   ignored their latents. Lee, Zhang, Ebert, Abbeel, Finn & Levine 2018 (**SAVP**) trained one predictor with both
#   losses (after Larsen et al. 2016's **VAE-GAN** for images).
# - Chapters 05–07 move to discrete tokens and transformers, 08 onwards to diffusion.
#
# **Time per profile.** The same code runs in every profile; only the sizes change (chosen below with `pick`).
#
# | profile | data | models | training | time |
# |---|---|---|---|---|
# | `smoke` | 16×16, 16 frames | tiny | 1–2 steps each | < 1 min on 2 CPU cores (checks only) |
# | `cpu` | 16×16, 16 frames | DVD-GAN G 0.2M; predictor 0.05M | 2.5 + ≤ 0.75 min; 4 × 0.6 min | ≈ 6 min, 2 CPU cores |
# | `gpu` | 32×32, 16 frames (protocol) | DVD-GAN G 4.5M; predictor 1.5M | 3.5 + ≤ 1.25; 4 × 0.4 min | ≈ 7.5 min, GPU |

# %%
import copy
import time
from dataclasses import asdict
from functools import partial

import torch
import torch.nn.functional as F
from matplotlib.figure import Figure

from vgcourse.profiles import pick, setup

STARTED = time.time()
S = setup(seed=0)          # prints profile, device, precision, compile, torch version

# %%
from vgcourse import results
from vgcourse.data import MovingDigits
from vgcourse.display import filmstrip, plot_curves, side_by_side
from vgcourse.exercises import check, solution
from vgcourse.gan import d_nonsaturating, g_nonsaturating, make_gan_trainer, r1_due, r1_penalty
from vgcourse.gan.convgru import ConvGRUCell
from vgcourse.gan.dvdgan import (
    DVDGANConfig,
    DVDGANRecipe,
    SpatialDiscriminator,
    TemporalDiscriminator,
    build_dvdgan,
    dvdgan_step,
    sample_clip_frames,
)
from vgcourse.gan.video_prediction import (
    MODES,
    PredictorConfig,
    apply_cdna,
    build_predictor,
    prediction_step,
    reparameterise,
)
from vgcourse.metrics import PROTOCOL, Evaluator, psnr, ssim
from vgcourse.metrics.protocol import (
    bar,
    floor_fd,
    format_rows,
    headline,
    mean_se,
    past_the_floor,
    reference_rows,
    score,
    shortfalls,
    show_bars,
    verdict,
)
from vgcourse.nn import count_parameters
from vgcourse.results import PartTimer, num, seconds_per_call
from vgcourse.train import count_flops

timer = PartTimer(STARTED)

# %% [markdown]
# ## Sizes for this profile
#
# Everything that changes between profiles is chosen here, in plain view. The gpu profile trains on the course's
# protocol data (moving digits, 32×32, 16 frames, two digits); the smoke and cpu profiles at 16×16. Both GANs
# use chapter 03's stabilised recipe (the non-saturating loss, lazy R1, Adam with β₁ = 0, an EMA generator);
# DVD-GAN itself trained, as BigGAN did, with the hinge loss and spectral normalisation, at large batches. Both
# train in fp32 (R1 differentiates a gradient, and small GANs are steadier in full precision), eager: compiling
# would trace the generator and both discriminators several times over (real clips and generated ones reach the
# discriminators with different memory layouts), minutes that a run of a few minutes cannot repay. The paper's two
# time scales (TTUR: D at 4·10⁻⁴, G at 1·10⁻⁴, β₂ = 0.999) are not used: at this size and budget (4 minutes in bf16)
# they collapse this generator to one mode (fd 125, diversity 0.13), worse than the single rate below.

# %%
data = pick(smoke=MovingDigits(size=16, frames=16), cpu=MovingDigits(size=16, frames=16), gpu=PROTOCOL.dataset())
dvd_configs = {
    "smoke": DVDGANConfig(image_size=16, frames=16, gen_channels=(8, 8, 4), gen_norm="group", disc_width=4),
    "cpu": DVDGANConfig(image_size=16, frames=16, gen_channels=(32, 16, 8), gen_norm="group", disc_width=8),
    "gpu": DVDGANConfig(image_size=32, frames=16, gen_channels=(192, 96, 48, 24), gen_norm="group", disc_width=32),
}
dvd_config = pick(**dvd_configs)                               # 120-d z, D_S on k = 8 frames, D_T on 2× pooled clips
dvd_recipe = DVDGANRecipe(loss="nonsaturating", k_frames=dvd_config.k_frames, r1_gamma=1.0, r1_every=4)
batch = pick(smoke=4, cpu=8, gpu=64)                           # clips per GAN step
lr_g = lr_d = 2e-4                                             # Adam, one rate for G and the Ds
betas = (0.0, 0.99)
ema_decay = pick(smoke=0.9, cpu=0.99, gpu=0.999)
gan_steps = pick(smoke=2, cpu=100_000, gpu=100_000)            # caps; time budgets decide in cpu and gpu
dvd_minutes = pick(smoke=None, cpu=2.5, gpu=3.5)               # DVD-GAN's whole budget
matched_steps = pick(smoke=1, cpu=150, gpu=400)                # DVD-GAN's first stretch: its FLOPs go to the 3D D
single_minutes = pick(smoke=None, cpu=0.75, gpu=1.25)          # a cap on the 3D D's run (it should need less)

pred_configs = {  # the SAVP-style predictor: 2 context frames, 10 predicted (SAVP on BAIR), an 8-d latent per step
    "smoke": PredictorConfig(image_size=16, frames=12, context_frames=2, width=4, encoder_width=4, disc_width=4),
    "cpu": PredictorConfig(image_size=16, frames=12, context_frames=2, width=8, encoder_width=8, disc_width=8),
    "gpu": PredictorConfig(image_size=32, frames=12, context_frames=2, width=48, encoder_width=32, disc_width=32),
}
pred_config = pick(**pred_configs)
pred_batch = pick(smoke=4, cpu=8, gpu=32)
pred_lr, pred_betas = 5e-4, (0.5, 0.999)                       # one optimizer setting for all variants
pred_minutes = pick(smoke=None, cpu=0.6, gpu=0.4)              # each variant, the same minutes
pred_steps = pick(smoke=2, cpu=100_000, gpu=100_000)
n_test, n_samples = pick(smoke=4, cpu=64, gpu=128), pick(smoke=3, cpu=8, gpu=8)   # contexts, samples per context

n_gen = pick(smoke=8, cpu=128, gpu=PROTOCOL.n_gen)             # generated clips scored
n_real = pick(smoke=32, cpu=256, gpu=PROTOCOL.n_real)          # held-out reference clips
print(f"data: {data}")
print(f"GANs: batch {batch}, eager; DVD-GAN {dvd_minutes} min (its first {matched_steps} steps "
      f"matched), the 3D D at most {single_minutes} min; predictors: batch {pred_batch}, {pred_minutes} min each; "
      f"{n_gen} clips scored")

# %% [markdown]
# # Part 1 · DVD-GAN
#
# ## 1 · The convolutional GRU
#
# A GRU whose state is a feature map and whose products are convolutions (Ballas et al. 2016, eq. (3)): each
# pixel's state is updated from its neighbourhood in the input and in the previous state.
#
# $$r_t = \sigma(W_r * x_t + U_r * h_{t-1}),\quad u_t = \sigma(W_u * x_t + U_u * h_{t-1}),\quad
# \tilde h_t = \tanh(W * x_t + U * (r_t \odot h_{t-1})),\quad h_t = (1 - u_t) \odot h_{t-1} + u_t \odot \tilde h_t.$$
#
# The package computes the two gates with one convolution of the concatenation [x, h]; written out by hand with
# separate convolutions for x and h, it must give the same state.

# %%
# NBVAL_CHECK_OUTPUT
def my_convgru_step(cell: ConvGRUCell, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """One ConvGRU step with the x and h products apart: x (B, C_in, H, W), h (B, C, H, W) -> h_t."""
    c_in = x.shape[1]
    w_gates, w_cand = cell.gates.weight, cell.candidate.weight              # (2C, C_in + C, 3, 3), (C, C_in + C, 3, 3)
    conv = lambda inp, w: F.conv2d(inp, w, padding=1)                        # noqa: E731
    gates = conv(x, w_gates[:, :c_in]) + conv(h, w_gates[:, c_in:]) + cell.gates.bias[:, None, None]
    r, u = torch.sigmoid(gates).chunk(2, dim=1)                              # reset and update gates
    candidate = torch.tanh(conv(x, w_cand[:, :c_in]) + conv(r * h, w_cand[:, c_in:])
                           + cell.candidate.bias[:, None, None])
    return (1 - u) * h + u * candidate


torch.manual_seed(0)
cell = ConvGRUCell(3, 5)
x, h = torch.randn(2, 3, 8, 8), torch.randn(2, 5, 8, 8)
with torch.no_grad():
    torch.testing.assert_close(my_convgru_step(cell, x, h), cell(x, h), rtol=1e-5, atol=1e-5)
print("my_convgru_step matches vgcourse.gan.convgru.ConvGRUCell")

# %% [markdown]
# ## 2 · The generator: a ConvGRU and two residual blocks per resolution
#
# z (120 numbers, as BigGAN and DVD-GAN) is mapped linearly to a 4×4 feature map. That one map is the ConvGRU's
# input at every frame: the GRU, unrolled once per frame, is where the frames start to differ. Its states then go
# through two of BigGAN's residual blocks *per frame* (time folded into the batch); the second doubles the
# resolution. The group repeats until the frames reach full size, and every normalisation inside the blocks is
# conditioned on z (a gain and a bias predicted from it). Below, the generator's forward pass written out with its
# own parts, checked against the package's.

# %%
# NBVAL_CHECK_OUTPUT
def my_dvdgan_generator(g, z: torch.Tensor, frames: int) -> torch.Tensor:
    b = z.shape[0]
    x = g.project(z).view(b, -1, 4, 4)                                       # (B, ch_0, 4, 4)
    x = x[:, :, None].expand(-1, -1, frames, -1, -1)                         # the same input at every frame
    z_frames = z.repeat_interleave(frames, dim=0)                            # (B·T, 120): each frame's norms read z
    for gru, (block1, block2) in zip(g.grus, g.blocks):
        x = gru(x)                                                           # (B, ch_i, T, r, r): unrolled over T
        h = x.transpose(1, 2).flatten(0, 1)                                  # (B·T, ch_i, r, r): frames apart
        h = block2(block1(h, z_frames), z_frames)                            # (B·T, ch_{i+1}, 2r, 2r)
        x = h.unflatten(0, (b, frames)).transpose(1, 2)                      # (B, ch_{i+1}, T, 2r, 2r)
    out = torch.tanh(g.out(F.relu(g.out_norm(x.transpose(1, 2).flatten(0, 1)))))   # (B·T, C, H, W)
    return out.unflatten(0, (b, frames)).transpose(1, 2)                     # (B, C, T, H, W)


check_dvd = build_dvdgan(dvd_configs["smoke"]).eval()                        # tiny, on the CPU, for the checks
z = check_dvd["G"].sample_latents(2, torch.Generator().manual_seed(0))
with torch.no_grad():
    torch.testing.assert_close(my_dvdgan_generator(check_dvd["G"], z, 16), check_dvd["G"](z), rtol=1e-5, atol=1e-5)
print("my_dvdgan_generator matches vgcourse.gan.dvdgan.DVDGANGenerator")
for name, cfg in dvd_configs.items():
    print(f"{name:5s} profile ({cfg.image_size}×{cfg.image_size}): "
          + ", ".join(f"{k} {count_parameters(v) / 1e6:.2f}M" for k, v in build_dvdgan(cfg).items()))

# %% [markdown]
# ## 3 · The dual discriminator and what it saves
#
# **D_S** scores k = 8 frames drawn at random from each clip, each on its own with a 2D BigGAN discriminator, and
# sums their scores. **D_T** scores the whole clip after φ, a 2×2 average pooling of every frame, with 3D
# convolutions in its first two residual blocks. The alternative is **one 3D discriminator on the full-resolution
# clip** (here D_T without φ: the same layers at four times the pixels). Written out, the dual pair's scores of a
# clip, checked against the package's:

# %%
# NBVAL_CHECK_OUTPUT
def my_dual_scores(d_s, d_t, video: torch.Tensor, frame_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(D_S score, D_T score) per clip: D_S sums its scores of the frames `frame_index` (B, k) of each clip;
    D_T scores the clip average-pooled 2×2 in space (φ)."""
    b = video.shape[0]
    frames = torch.stack([video[i, :, frame_index[i]] for i in range(b)])         # (B, C, k, H, W)
    per_frame = torch.cat([d_s(frames[:, :, j:j + 1]) for j in range(frames.shape[2])])   # one frame at a time
    spatial = per_frame.view(frames.shape[2], b).sum(0)                            # sum over the k frames
    temporal = d_t(F.avg_pool3d(video, (1, 2, 2)))                                # φ: 2×2 pooling, then D_T
    return spatial, temporal


video_example = MovingDigits(size=16, frames=16).batch(2, seed=0).video
index = torch.stack([torch.randperm(16, generator=torch.Generator().manual_seed(i))[:8] for i in range(2)])
full_d = build_dvdgan(dvd_configs["smoke"], dual=False)["D_T"].eval()
full_d.load_state_dict(check_dvd["D_T"].state_dict())                       # the same weights, no φ
with torch.no_grad():
    spatial, temporal = my_dual_scores(check_dvd["D_S"], full_d, video_example, index)
    frames_example = torch.stack([video_example[i, :, index[i]] for i in range(2)])
    torch.testing.assert_close(spatial, check_dvd["D_S"](frames_example), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(temporal, check_dvd["D_T"](video_example), rtol=1e-4, atol=1e-5)
print("my_dual_scores matches SpatialDiscriminator and TemporalDiscriminator (φ = 2×2 pooling)")

# %% [markdown]
# What a discriminator update costs, measured on this profile's networks and batch: FLOPs counted by PyTorch on a
# forward and backward pass over a real and a generated batch, the peak memory of that update (on the GPU), and
# its time (the median of several runs). The generator is left out: it is the same in both set-ups.

# %%
def discriminator_update(discriminators: dict, real: torch.Tensor, fake: torch.Tensor, k: int):
    """One forward and backward pass of `discriminators` ({"D_S", "D_T"} or {"D_T"}) on a real and a generated
    batch, as a function to count, time and measure."""
    def update():
        loss = 0.0
        for name, d in discriminators.items():
            x_real, x_fake = ((sample_clip_frames(real, k), sample_clip_frames(fake, k)) if name == "D_S"
                              else (real, fake))
            loss = loss + d_nonsaturating(d(x_real), d(x_fake))
        loss.backward()
    return update


def discriminator_update_cost(discriminators: dict, real: torch.Tensor, fake: torch.Tensor, k: int) -> dict:
    """FLOPs, peak memory (bytes, CUDA only) and seconds of one discriminator update."""
    update = discriminator_update(discriminators, real, fake, k)
    cost = {"flops": count_flops(update), "seconds": seconds_per_call(update, pick(smoke=1, cpu=3, gpu=10)),
            "memory": None}
    if S.device.type == "cuda":
        torch.cuda.synchronize(), torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        update(), torch.cuda.synchronize()
        cost["memory"] = torch.cuda.max_memory_allocated() - base
    return cost


real_batch = data.batch(batch, seed=11, device=S.device).video
fake_batch = real_batch.roll(1, dims=2)                              # any batch of this shape costs the same
setups = {"dual (D_S + D_T)": build_dvdgan(dvd_config),
          "one 3D D, full resolution": build_dvdgan(dvd_config, dual=False)}
costs = {}
for name, nets in setups.items():
    discriminators = {k: v.to(S.device) for k, v in nets.items() if k != "G"}
    costs[name] = discriminator_update_cost(discriminators, real_batch, fake_batch, dvd_config.k_frames)
    costs[name]["parameters"] = sum(count_parameters(v) for v in discriminators.values())
for name, c in costs.items():
    memory = "n/a (CPU)" if c["memory"] is None else f"{c['memory'] / 2**20:,.0f} MiB"
    print(f"{name:27s}: {c['flops'] / 1e9:8.1f} GFLOPs, {memory:>12s} peak, {1000 * c['seconds']:7.1f} ms per update "
          f"({c['parameters'] / 1e6:.2f}M parameters)")
dual_cost, full_cost = costs["dual (D_S + D_T)"], costs["one 3D D, full resolution"]
cost_ratio = {"flops": full_cost["flops"] / dual_cost["flops"], "seconds": full_cost["seconds"] / dual_cost["seconds"],
              "memory": None if dual_cost["memory"] is None else full_cost["memory"] / dual_cost["memory"]}
print("the full-resolution 3D D costs " + ", ".join(f"{v:.2f}× the {k}" for k, v in cost_ratio.items() if v)
      + " of the dual pair")
minutes_cost = timer.lap("discriminator costs")

# %% [markdown]
# D_S's cost grows with k, not with the clip's length, and D_T's is a quarter of the full-resolution
# discriminator's. So the saving grows with the clip: at 16 frames D_S still looks at half of them, at DVD-GAN's 48
# frames at a sixth. (The frame size changes nothing here: both sides scale with the pixels.) FLOPs of one update on
# one clip pair, the same discriminator widths, for longer clips:

# %%
flops_by_frames = {}
for frames in (16, 32, 48):
    clip = torch.zeros(1, 1, frames, data.size, data.size, device=S.device)
    w = dvd_config.disc_width
    pair = {"D_S": SpatialDiscriminator(1, w), "D_T": TemporalDiscriminator(1, w, downsample=2)}
    one = {"D_T": TemporalDiscriminator(1, w, downsample=1)}
    dual_flops, full_flops = (count_flops(discriminator_update({k: v.to(S.device) for k, v in nets.items()}, clip,
                                                               clip, dvd_config.k_frames)) for nets in (pair, one))
    flops_by_frames[frames] = full_flops / dual_flops
    print(f"{frames:2d} frames: the full-resolution 3D D costs {full_flops / dual_flops:.2f}× the dual pair's FLOPs")

# %% [markdown]
# ## 4 · The training step
#
# One update of the two discriminators, then one of the generator (the package's `dvdgan_step`). The networks come
# from `trainer.forward_model` (the compiled networks, when the loop compiles), and G is called rather than asked to
# `sample`, so that a compiled forward would be what runs. R1 differentiates a gradient (a double backward), which
# compiled graphs do not support: it runs on the uncompiled networks of `trainer.model`, which share their weights.
# Written out, and checked the same way as chapter 03's: two copies of a tiny model, two steps each from the same
# random state, identical weights at the end.

# %%
def my_dvdgan_step(trainer, batch_) -> dict:
    G, D_S, D_T = (trainer.forward_model[k] for k in ("G", "D_S", "D_T"))
    k = dvd_recipe.k_frames
    real = batch_.video if hasattr(batch_, "video") else batch_              # (B, C, T, H, W)
    fake = G(G.sample_latents(real.shape[0], device=real.device))           # one z per clip, G's graph kept
    d_temporal = d_nonsaturating(D_T(real), D_T(fake.detach()))             # D_T applies φ itself
    real_k = sample_clip_frames(real, k)                                    # (B, C, k, H, W): k random frames
    d_spatial = d_nonsaturating(D_S(real_k), D_S(sample_clip_frames(fake.detach(), k)))
    d_loss = d_temporal + d_spatial
    if r1_due(trainer, dvd_recipe.r1_gamma, dvd_recipe.r1_every):             # lazy R1, on the uncompiled Ds
        eager = trainer.model
        d_loss = d_loss + dvd_recipe.r1_every * (r1_penalty(eager["D_T"], real, dvd_recipe.r1_gamma)
                                                 + r1_penalty(eager["D_S"], real_k, dvd_recipe.r1_gamma))
    trainer.optimize(d_loss, "disc")
    D_S.requires_grad_(False), D_T.requires_grad_(False)
    g_loss = g_nonsaturating(D_T(fake)) + g_nonsaturating(D_S(sample_clip_frames(fake, k)))
    trainer.optimize(g_loss, "gen")
    D_S.requires_grad_(True), D_T.requires_grad_(True)
    return {"d_temporal": d_temporal.detach(), "d_spatial": d_spatial.detach(), "g": g_loss.detach()}


# The loop's set-up, from the package: Adam for the generator side ("gen": G, and E where there is one) at lr_g and
# for the discriminators ("disc") at lr_d, no gradient clipping, fp32 unless amp=None (bf16 autocast on CUDA), an
# EMA of G when `ema_decay` is given (ema=False: none).
make_trainer = partial(make_gan_trainer, lr_g=lr_g, lr_d=lr_d, betas=betas)

# %%
# NBVAL_CHECK_OUTPUT
fixed_batch = MovingDigits(size=16, frames=16).batch(4, seed=3).video
weights = {}
for name, step_fn in [("mine", my_dvdgan_step), ("package", lambda tr, b: dvdgan_step(tr, b, dvd_recipe))]:
    torch.manual_seed(0)
    twin = build_dvdgan(dvd_configs["smoke"])
    torch.manual_seed(1)
    make_trainer(twin, step_fn, 2, lambda step: fixed_batch, ema=False, progress=False, measure_flops=False,
                 log_every=1).fit()                                      # 2 steps: the first with R1
    weights[name] = twin.state_dict()
for key in weights["mine"]:
    torch.testing.assert_close(weights["mine"][key], weights["package"][key])
print("two steps of my_dvdgan_step leave the same weights as vgcourse.gan.dvdgan.dvdgan_step")

# %% [markdown]
# ## 5 · Training: the dual pair, and one full-resolution 3D discriminator for the same FLOPs
#
# DVD-GAN trains for `dvd_minutes`; after its first `matched_steps` steps we keep a copy of its
# generator and the training FLOPs those steps took (the loop counts a step's FLOPs once, on its first step). Then the
# same generator, from the same initial weights, trains against the single full-resolution 3D discriminator for the
# same FLOPs. The cheaper discriminator buys its generator more steps: that, with what each discriminator can see, is
# the trade. FLOPs rather than minutes, because FLOPs do not depend on how busy the GPU is kept; both runs are eager
# in fp32. The matched comparison scores the two *live* generators: an EMA over a few hundred steps still carries a
# share of its random initial weights, e^(−steps/1000) at decay 0.999, and the run with fewer steps would pay more for
# it.

# %%
torch.manual_seed(0)
dual = build_dvdgan(dvd_config).to(S.device)
dvd_trainer = make_trainer(dual, lambda tr, b: dvdgan_step(tr, b, dvd_recipe), gan_steps,
                           data.stream(batch, seed=0, device=S.device), ema_decay=ema_decay,
                           log_every=pick(smoke=1, cpu=10, gpu=100), desc="DVD-GAN")
timer.start()
dvd_trainer.config.max_minutes = dvd_minutes                            # the whole budget bounds the first stretch
dvd_trainer.fit(matched_steps)
dual_matched = copy.deepcopy(dual["G"])                                 # the live generator (see below)
matched = {"steps": dvd_trainer.step, "minutes": dvd_trainer.summary.wall_time_s / 60,
           "flops": dvd_trainer.step * dvd_trainer.summary.flops_per_step}   # a plain step's FLOPs × steps
dvd_trainer.config.max_minutes = None if dvd_minutes is None else max(0.1, dvd_minutes - matched["minutes"])
dvd_summary = dvd_trainer.fit()
dvd_train_minutes = timer.lap("DVD-GAN training")

torch.manual_seed(0)
single = build_dvdgan(dvd_config, dual=False).to(S.device)
single_trainer = make_trainer(single, lambda tr, b: dvdgan_step(tr, b, dvd_recipe), gan_steps,
                              data.stream(batch, seed=0, device=S.device), ema_decay=ema_decay,
                              max_minutes=single_minutes, log_every=pick(smoke=1, cpu=10, gpu=100), desc="one 3D D")
single_trainer.fit(1)                                                   # its first step counts its FLOPs
single_steps = max(1, round(matched["flops"] / single_trainer.summary.flops_per_step))
single_summary = single_trainer.fit(single_steps)
single_flops = single_trainer.step * single_trainer.summary.flops_per_step
single_train_minutes = timer.lap("full-resolution 3D D training")

for name, s in [("DVD-GAN (dual)", dvd_summary), ("one 3D D", single_summary)]:
    print(f"{name:15s}: {s.steps} steps in {s.wall_time_s / 60:.2f} min, {num(s.samples_per_s, ',.0f')} clips/s, "
          f"MFU {num(s.mfu, '.1%')}, {num(s.flops_per_step / batch, '.3g')} FLOPs per clip")
print(f"for the same training FLOPs ({matched['flops']:.3g} dual, {single_flops:.3g} one 3D D): DVD-GAN's first "
      f"{matched['steps']} steps ({matched['minutes']:.2f} min), the 3D D's {single_summary.steps} "
      f"({single_summary.wall_time_s / 60:.2f} min, stopped by {single_summary.stopped_by})")

# %%
plot_curves(dvd_trainer.history, keys=["d_spatial", "d_temporal", "g_spatial", "g_temporal"], smooth=0.6,
            title="DVD-GAN losses")

# %% [markdown]
# ## 6 · Samples and scores
#
# DVD-GAN's EMA generator draws `n_gen` clips, and so do the two live generators of the matched comparison, each
# scored with the course's protocol beside the reference rows. Only a model past the floor (its fd below twice the
# shuffled-frame row by one standard error) has its samples shown: above it, what a generator draws is closer to
# noise than to clips, and a picture of it would teach nothing about DVD-GAN.

# %%
@torch.no_grad()
def generate(g, n: int, seed: int, chunk: int = 128) -> torch.Tensor:
    g.eval()
    gen = torch.Generator(S.device).manual_seed(seed)
    z = g.sample_latents(n, generator=gen)
    return torch.cat([g(z[i:i + chunk]).float().clamp(-1, 1).cpu() for i in range(0, n, chunk)])


evaluator = Evaluator(data, n_real=n_real, device=S.device)
rows = reference_rows(evaluator, n=n_gen)
samples = generate(dvd_trainer.ema.model, n_gen, seed=1)
gan_scores = {"DVD-GAN": score(evaluator, samples),                   # the matched pair: live generators
              f"dual, {matched['steps']} steps": score(evaluator, generate(dual_matched, n_gen, seed=1)),
              f"3D D, {single_summary.steps} steps": score(evaluator, generate(single["G"], n_gen, seed=1))}
print(format_rows(rows | gan_scores, ("fd", "frame_quality", "identity_consistency", "diversity",
                                      "motion_consistency", "speed_ratio")))
floor = floor_fd(rows)                                                # the floor for showing samples
passed = past_the_floor({"DVD-GAN": gan_scores["DVD-GAN"]}, floor)
minutes_gan_scores = timer.lap("GAN scores")

# %% [markdown]
# The real clips, and DVD-GAN's beside them where it is past the floor, as a static filmstrip (every other frame),
# then as videos:

# %%
filmstrip({f"real {i}": data.batch(3, seed=5).video[i] for i in range(3)}
          | ({f"DVD-GAN {i}": samples[i] for i in range(5)} if "DVD-GAN" in passed else {}))

# %%
# NBVAL_IGNORE_OUTPUT
side_by_side({"real": data.batch(8, seed=5).video}
             | ({"DVD-GAN (EMA)": samples[:8]} if "DVD-GAN" in passed else {}), nrow=4,
             scale=4 if data.size < 32 else 2)

# %% [markdown]
# The bars for DVD-GAN as a headline model (gpu profile): past the floor (fd below twice the shuffled-frame row), fd
# below the frozen-frame row, diversity at least 0.85 of real, frame quality within 15% of real; and the cost ratio,
# measured. Each is read with one standard error (`vgcourse.metrics.protocol.bar`); where the line is itself measured
# (the frozen row's fd, the real clips' frame quality scored clip by clip and averaged with `mean_se`), its error
# counts too. The floor is read as when samples are shown (`past_the_floor`: the model's error alone). Diversity, a
# spread over the whole set of clips, carries none here.

# %%
real_row, frozen_row = rows["real"], rows["frozen frames"]
dvd_scores = gan_scores["DVD-GAN"]
real_clips = data.batch(n_gen, seed=PROTOCOL.reference_seed).video     # the clips of the "real" row
quality = {name: mean_se(evaluator.digits_per_clip(v)["frame_quality"])  # (mean, se) over clips
           for name, v in [("DVD-GAN", samples), ("real", real_clips)]}
bars = {
    "DVD-GAN past the floor (fd below 2 × shuffled frames)": bar(dvd_scores["fd"], floor, dvd_scores["fd_se"]),
    "DVD-GAN fd below frozen frames": bar(dvd_scores["fd"], frozen_row["fd"], dvd_scores["fd_se"],
                                          frozen_row["fd_se"]),
    "DVD-GAN diversity ≥ 0.85 of real": bar(dvd_scores["diversity"], 0.85 * real_row["diversity"],
                                            lower_is_better=False),
    "DVD-GAN frame quality within 15% of real": bar(quality["DVD-GAN"][0], 0.85 * quality["real"][0],
                                                    quality["DVD-GAN"][1], 0.85 * quality["real"][1],
                                                    lower_is_better=False),
}
print(show_bars(bars))
matched_dual, matched_single = list(gan_scores.values())[1:]
matched_bar = bar(matched_dual["fd"], matched_single["fd"], matched_dual["fd_se"], matched_single["fd_se"])
matched_reading = {"met": "ahead", "not met": "behind", "not resolved": "level within one standard error"}[
    matched_bar["outcome"]]
past = [name for name, r in [("dual", matched_dual), ("one 3D D", matched_single)]
        if verdict(r["fd"], floor, r["fd_se"]) == "met"]
print(f"for the same training FLOPs: dual fd {matched_dual['fd']:.2f} ± {matched_dual['fd_se']:.2f} "
      f"({matched['steps']} steps), one 3D D {matched_single['fd']:.2f} ± {matched_single['fd_se']:.2f} "
      f"({single_summary.steps} steps): the dual pair's generator is {matched_reading}, with a discriminator "
      f"{cost_ratio['flops']:.2f}× cheaper in FLOPs; past the floor (fd < {floor:.1f}): "
      + (", ".join(past) if past else "neither, so this compares two early stages of training"))

# %% [markdown]
# # Part 2 · GAN + VAE: stochastic video prediction
#
# ## 7 · The predictor, its posterior and its three recipes
#
# Given x_0, x_1, predict x_2..x_11. At each step the predictor reads the previous frame and a latent z_{t−1}, and
# keeps a memory in two ConvGRUs. When it samples, the previous frame is a real one in the context, then its own
# prediction; in training it is always the true one (teacher forcing: SAVP's scheduled sampling starts there and
# takes 100,000 steps to hand the inputs over to the model, far more than these runs see). Its output follows
# SAVP's generator (after Finn et al. 2016's CDNA): from its bottleneck it predicts K = 4 normalised 5×5 kernels,
# each moves the previous frame's pixels by up to two pixels, and per-pixel masks mix the K moved copies with a
# generated image. It starts as "copy the last frame" (the kernels peaked at their centre) and learns to move.
#
# Written out, the move: each output pixel a weighted sum of the previous frame's 5×5 neighbourhood, by `unfold`:

# %%
# NBVAL_CHECK_OUTPUT
def my_cdna(image: torch.Tensor, kernels: torch.Tensor) -> torch.Tensor:
    """image (B, C, H, W), kernels (B, K, k, k) -> K moved copies (B, K, C, H, W), edges replicated."""
    b, c, h, w = image.shape
    k = kernels.shape[-1]
    padded = F.pad(image, (k // 2,) * 4, mode="replicate")
    patches = F.unfold(padded, k).view(b, c, k * k, h * w)                  # every pixel's k×k neighbourhood
    moved = torch.einsum("bcph,bqp->bqch", patches, kernels.flatten(2))      # weighted by each kernel
    return moved.view(b, -1, c, h, w)


image = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(0))
kernels = torch.softmax(torch.randn(2, 4, 25, generator=torch.Generator().manual_seed(1)), -1).view(2, 4, 5, 5)
torch.testing.assert_close(my_cdna(image, kernels), apply_cdna(image, kernels), rtol=1e-5, atol=1e-5)
print("my_cdna matches vgcourse.gan.video_prediction.apply_cdna")

# %% [markdown]
# The posterior encoder E reads each pair of consecutive true frames (x_{t−1}, x_t) and returns the mean and
# log-variance of q(z_{t−1} | x_{t−1}, x_t); a sample z = μ + σ ε carries gradients back into E
# (reparameterisation). The three recipes (Lee et al. 2018, eqs. (3)–(7)), on one network:
#
# | recipe | the latents in training | losses |
# |---|---|---|
# | VAE-only | posterior | λ₁ ‖x − x̂_post‖₁ + λ_KL Σ_t KL(q ‖ N(0, I)) |
# | GAN-only | prior N(0, I) | λ₁ ‖x − x̂_prior‖₁ + L_GAN(D, x̂_prior) (SAVP's ablation keeps the L1 term) |
# | hybrid (SAVP) | both | λ₁ ‖x − x̂_post‖₁ + λ_KL KL + L_GAN(D, x̂_prior) + L_GAN(D_vae, x̂_post) |
#
# with SAVP's weights λ₁ = 100, λ_KL = 0.1. At test time every recipe draws z from the prior. The hybrid's
# step written out, checked against the package's `prediction_step` as before:

# %%
def my_hybrid_step(trainer, batch_) -> dict:
    m, w = trainer.forward_model, MODES["hybrid"]
    G, E, D, D_vae = m["G"], m["E"], m["D"], m["D_vae"]
    c, frames = G.config.context_frames, G.config.frames
    real = (batch_.video if hasattr(batch_, "video") else batch_)[:, :, :frames]     # (B, C, T, H, W)
    context, future = real[:, :, :c], real[:, :, c:]
    mean, log_var = E(real)                                                  # q(z_{t-1} | x_{t-1}, x_t), (B, T-1, nz)
    recon = G(context, reparameterise(mean, log_var), real)                  # the future from posterior latents
    kl = 0.5 * (mean ** 2 + log_var.exp() - 1 - log_var).sum(-1).mean()      # KL to N(0, I)
    l1 = (recon - future).abs().mean()
    sample = G(context, G.prior_latents(real.shape[0], frames, device=real.device), real)   # ... from the prior
    clips = {"D_vae": torch.cat([context, recon], 2), "D": torch.cat([context, sample], 2)}
    nets = {"D_vae": D_vae, "D": D}
    d_loss = sum(d_nonsaturating(nets[n](real), nets[n](clips[n].detach())) for n in clips)
    trainer.optimize(d_loss, "disc")
    D.requires_grad_(False), D_vae.requires_grad_(False)
    g_loss = (w.l1_weight * l1 + w.kl_weight * kl + w.vae_gan_weight * g_nonsaturating(D_vae(clips["D_vae"]))
              + w.gan_weight * g_nonsaturating(D(clips["D"])))
    trainer.optimize(g_loss, "gen")
    D.requires_grad_(True), D_vae.requires_grad_(True)
    return {"l1": l1.detach(), "kl": kl.detach()}

# %%
# NBVAL_CHECK_OUTPUT
fixed_clips = MovingDigits(size=16, frames=16).batch(4, seed=3).video
weights = {}
for name, step_fn in [("mine", my_hybrid_step), ("package", lambda tr, b: prediction_step(tr, b, MODES["hybrid"]))]:
    torch.manual_seed(0)
    twin = build_predictor(pred_configs["smoke"], "hybrid")
    torch.manual_seed(1)
    make_trainer(twin, step_fn, 2, lambda step: fixed_clips, ema=False, progress=False, measure_flops=False,
                 log_every=1).fit()
    weights[name] = twin.state_dict()
for key in weights["mine"]:
    torch.testing.assert_close(weights["mine"][key], weights["package"][key], rtol=1e-5, atol=1e-6)
print("two steps of my_hybrid_step leave the same weights as vgcourse.gan.video_prediction.prediction_step")
for name, recipe_ in MODES.items():
    nets = build_predictor(pred_configs["gpu"], recipe_)
    print(f"{name:6s} (gpu sizes): " + ", ".join(f"{k} {count_parameters(v) / 1e6:.2f}M" for k, v in nets.items()))

# %% [markdown]
# ## 8 · Training the three recipes for the same minutes
#
# The same network, the same initial weights, the same data stream and optimizer (Adam, 5·10⁻⁴, β = (0.5, 0.999)),
# `pred_minutes` each. The GAN terms add discriminator updates and a second pass of the predictor, so the hybrid
# takes the fewest steps in its minutes.

# %%
def train_predictor(recipe_, desc: str):
    torch.manual_seed(0)
    model_ = build_predictor(pred_config, recipe_).to(S.device)
    trainer_ = make_trainer(model_, lambda tr, b: prediction_step(tr, b, recipe_), pred_steps,
                            data.stream(pred_batch, seed=0, device=S.device), lr_g=pred_lr, lr_d=pred_lr,
                            betas=pred_betas, ema=False, max_minutes=pred_minutes,
                            log_every=pick(smoke=1, cpu=5, gpu=50), desc=desc)
    return model_, trainer_.fit(), trainer_.history


predictors, pred_summaries, pred_histories = {}, {}, {}
for name in ("VAE-only", "GAN-only", "hybrid"):
    key = {"VAE-only": "vae", "GAN-only": "gan", "hybrid": "hybrid"}[name]
    predictors[name], pred_summaries[name], pred_histories[name] = train_predictor(MODES[key], name)
    print(f"{name:8s}: {pred_summaries[name].steps} steps in {pred_summaries[name].wall_time_s / 60:.2f} min, "
          f"{num(pred_summaries[name].samples_per_s, ',.0f')} clips/s")
minutes_predictors = timer.lap("predictors")

# %%
fig = Figure(figsize=(11, 3.2), layout="constrained")
axes = fig.subplots(1, 3)
for ax, (name, history) in zip(axes, pred_histories.items()):
    plot_curves(history, keys=[k for k in ("l1", "kl", "d") if k in history[0]], smooth=0.6, logy=True, ax=ax,
                title=name)
fig

# %% [markdown]
# ## 9 · Coverage, blur, spread and sharpness
#
# For `n_test` held-out clips, each recipe draws `n_samples` futures from the prior for the same two context
# frames. Against the true future:
#
# - **best-of-N PSNR / SSIM**: the sample nearest the truth (SAVP's measure of coverage: does some sample get it
#   right?);
# - **mean PSNR / SSIM** over the samples (a model that averages the possible futures into one blur scores well
#   here, which is why it is not a measure of quality);
# - **diversity**: the mean absolute pixel difference between two samples of one context;
# - **frame quality**: the frame probe's confidence that each predicted frame shows two crisp digits, read clip by
#   clip with the Evaluator's `digits_per_clip`, so that the recipes can be compared clip by clip.
#
# A last row, "copy the last frame", predicts that nothing moves.

# %%
@torch.no_grad()
def draw_futures(model_, context: torch.Tensor, n: int) -> torch.Tensor:
    """n futures per context from prior latents: (B, N, C, T − c, H, W), on the CPU."""
    g = model_["G"].eval()
    outs = []
    for i in range(n):
        z = g.prior_latents(context.shape[0], generator=torch.Generator(S.device).manual_seed(100 + i))
        outs.append(g(context, z).float().clamp(-1, 1).cpu())
    return torch.stack(outs, 1)


def prediction_scores(futures: torch.Tensor, truth: torch.Tensor) -> dict:
    """Per-clip numbers (B,) of N futures (B, N, C, T, H, W) against the truth (B, C, T, H, W)."""
    n = futures.shape[1]
    p = torch.stack([psnr(futures[:, i], truth) for i in range(n)], 1)      # (B, N)
    s = torch.stack([ssim(futures[:, i], truth) for i in range(n)], 1)
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    spread = (torch.stack([(futures[:, i] - futures[:, j]).abs().flatten(1).mean(1) for i, j in pairs], 1).mean(1)
              if pairs else torch.zeros(futures.shape[0]))
    return {"best_psnr": p.max(1).values, "mean_psnr": p.mean(1), "best_ssim": s.max(1).values,
            "mean_ssim": s.mean(1), "diversity": spread,
            "frame_quality": evaluator.digits_per_clip(futures[:, 0])["frame_quality"]}


test_clips = data.heldout(n_test, device=S.device).video[:, :, :pred_config.frames]
context, truth = test_clips[:, :, :pred_config.context_frames], test_clips[:, :, pred_config.context_frames:].cpu()
futures = {name: draw_futures(m, context, n_samples) for name, m in predictors.items()}
copy_last = context[:, :, -1:].cpu().expand_as(truth)[:, None]             # (B, 1, C, T, H, W): nothing moves
per_clip = {name: prediction_scores(f, truth) for name, f in futures.items()}
per_clip["copy the last frame"] = prediction_scores(copy_last, truth)
per_clip["true future"] = {"frame_quality": evaluator.digits_per_clip(truth)["frame_quality"]}

METRICS = ("best_psnr", "mean_psnr", "best_ssim", "mean_ssim", "diversity", "frame_quality")
summary_table = {name: {m: mean_se(v[m]) for m in METRICS if m in v} for name, v in per_clip.items()}  # (mean, se)
print(f"{'':20s}" + "".join(f"{m:>18s}" for m in METRICS))
for name, row in summary_table.items():
    print(f"{name:20s}" + "".join(f"{row[m][0]:10.3f} ± {row[m][1]:.3f}" if m in row else f"{'—':>18s}"
                                  for m in METRICS))
minutes_prediction_scores = timer.lap("prediction scores")

# %% [markdown]
# One context, the true future and two samples of each recipe (every frame; the two context frames first):

# %%
shown = 0
strip = {"truth": test_clips[shown].cpu()}
for name, f in futures.items():
    for i in range(min(2, n_samples)):
        strip[f"{name}, sample {i}"] = torch.cat([test_clips[shown, :, :pred_config.context_frames].cpu(),
                                                  f[shown, i]], 1)
filmstrip(strip, every=1, height=0.5)

# %% [markdown]
# ## Results
#
# The bars of this chapter, read with one standard error (they are meant for the gpu profile).

# %%
def paired(a: str, b: str, metric: str) -> tuple[float, float]:
    """Mean and standard error of per_clip[a][metric] − per_clip[b][metric], clip by clip."""
    return mean_se(per_clip[a][metric] - per_clip[b][metric])


fq_gain, fq_gain_se = paired("hybrid", "VAE-only", "frame_quality")
psnr_gain, psnr_gain_se = paired("hybrid", "GAN-only", "best_psnr")
bars["hybrid minus VAE-only, frame quality, above 0"] = bar(fq_gain, 0.0, fq_gain_se, lower_is_better=False)
bars["hybrid minus GAN-only, best-of-N PSNR (dB), above 0"] = bar(psnr_gain, 0.0, psnr_gain_se,
                                                                 lower_is_better=False)
print(show_bars(bars))
short = shortfalls(dvd_scores, real_row)                          # more than 10% short of real, worst first
print("where DVD-GAN's clips fall short of real ones: " + ("; ".join(short) if short else "nowhere by more than 10%"))
print(f"measured: one full-resolution 3D D costs {cost_ratio['flops']:.2f}× the FLOPs and {cost_ratio['seconds']:.2f}× "
      "the time" + ("" if cost_ratio["memory"] is None else f" and {cost_ratio['memory']:.2f}× the memory")
      + " of the dual pair per discriminator update")

results.record(
    "04_dvdgan_vaegan",
    {"headline": headline(dvd_scores, n_real=n_real, minutes=dvd_train_minutes,
                          samples_per_s=dvd_summary.samples_per_s, mfu=dvd_summary.mfu,
                          cost_ratio_flops=cost_ratio["flops"], cost_ratio_seconds=cost_ratio["seconds"],
                          cost_ratio_memory=cost_ratio["memory"],
                          hybrid_minus_vae_frame_quality=fq_gain, hybrid_minus_gan_best_psnr=psnr_gain),
     "gan_scores": gan_scores, "reference_rows": rows, "floor": floor, "samples_shown": passed,
     "discriminator_costs": costs,
     "cost_ratio_flops_by_frames": flops_by_frames,
     "matched": matched | {"single_steps": single_summary.steps, "single_flops": single_flops,
                           "single_minutes": single_summary.wall_time_s / 60,
                           "single_stopped_by": single_summary.stopped_by, "reading": matched_reading,
                           "past_the_floor": past},
     "prediction": summary_table, "prediction_paired": {"frame_quality_hybrid_minus_vae": [fq_gain, fq_gain_se],
                                                        "best_psnr_hybrid_minus_gan": [psnr_gain, psnr_gain_se]},
     "throughput": {name: {"steps": s.steps, "samples_per_s": s.samples_per_s, "mfu": s.mfu,
                           "flops_per_step": s.flops_per_step}
                    for name, s in [("DVD-GAN", dvd_summary), ("one 3D D", single_summary)]
                    + list(pred_summaries.items())},
     "bars": bars, "shortfalls": short},
    started=STARTED, train=dvd_summary.as_dict(), minutes=timer.minutes,
    config={"dvdgan": asdict(dvd_config), "dvd_recipe": asdict(dvd_recipe), "predictor": asdict(pred_config),
            "batch": batch, "lr_g": lr_g, "lr_d": lr_d, "betas": betas, "d_steps_per_g_step": 1,
            "ema_decay": ema_decay, "dvd_compiled": False,
            "dvd_precision": "bf16" if dvd_trainer.amp_dtype is not None else "fp32",
            "dvd_minutes": dvd_minutes, "matched_steps": matched_steps, "single_minutes_cap": single_minutes,
            "single_compiled": False, "pred_batch": pred_batch, "pred_lr": pred_lr, "pred_minutes": pred_minutes,
            "n_test": n_test, "n_samples": n_samples})

# %% [markdown]
# ## Claim check: "the hybrid gets the VAE's coverage and the GAN's sharpness"
#
# The survey's reading of GAN + VAE: the GAN brings image quality, the VAE the latent space. SAVP's version of it,
# tested here on one network, the same minutes and the same contexts: stated before measuring, the claim is
# **supported** if the hybrid's frame quality is above VAE-only's *and* its best-of-N PSNR above GAN-only's, each
# by at least one standard error of the clip-by-clip difference; **not supported** if either is *below* by more
# than one standard error; **not resolved** otherwise.

# %%
outcomes = [bars["hybrid minus VAE-only, frame quality, above 0"]["outcome"],
            bars["hybrid minus GAN-only, best-of-N PSNR (dB), above 0"]["outcome"]]
claim = ("supported" if all(o == "met" for o in outcomes) else
         "not supported" if any(gain < -se for gain, se in [(fq_gain, fq_gain_se), (psnr_gain, psnr_gain_se)])
         else "not resolved")
st = summary_table
print(f"claim {claim}:")
print(f"  frame quality: hybrid {st['hybrid']['frame_quality'][0]:.3f}, VAE-only "
      f"{st['VAE-only']['frame_quality'][0]:.3f}, GAN-only {st['GAN-only']['frame_quality'][0]:.3f} (true futures "
      f"{st['true future']['frame_quality'][0]:.3f})")
print(f"  best-of-{n_samples} PSNR: hybrid {st['hybrid']['best_psnr'][0]:.2f} dB, GAN-only "
      f"{st['GAN-only']['best_psnr'][0]:.2f}, VAE-only {st['VAE-only']['best_psnr'][0]:.2f} (copy the last frame "
      f"{st['copy the last frame']['best_psnr'][0]:.2f})")
print(f"  diversity: hybrid {st['hybrid']['diversity'][0]:.4f}, VAE-only {st['VAE-only']['diversity'][0]:.4f}, "
      f"GAN-only {st['GAN-only']['diversity'][0]:.4f}")

# %% [markdown]
# ## Exercises
#
# Each exercise has a stub to fill and a check from the package; run the check cell after editing.
#
# **1. What D_T sees.** Write `downsample_space(video, factor)`, DVD-GAN's φ: average-pool every frame of a clip
# (B, C, T, H, W) by `factor` in height and width, keeping every frame.

# %%
def downsample_space(video, factor):
    # YOUR CODE HERE
    raise NotImplementedError

# %%
# NBVAL_CHECK_OUTPUT
check("downsample_space", downsample_space)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `F.avg_pool3d` takes a kernel per dimension (T, H, W): pool time by 1. The reference answer:
# `solution("downsample_space")`.
# </details>
#
# **2. The KL term.** Write `kl_to_prior(mean, log_var)` for per-step posteriors (B, T, nz): the KL divergence of
# N(μ, σ²) from N(0, I), summed over the latent dimensions and averaged over clips and steps.

# %%
def kl_to_prior(mean, log_var):
    # YOUR CODE HERE
    raise NotImplementedError

# %%
# NBVAL_CHECK_OUTPUT
check("kl_to_prior", kl_to_prior)

# %% [markdown]
# <details><summary>Hint</summary>
#
# Per dimension, KL = ½ (μ² + σ² − 1 − log σ²) with σ² = exp(log_var). The reference answer:
# `solution("kl_to_prior")`.
# </details>
#
# **3. A hybrid without its KL term.** Write `hybrid_without_kl()`: the hybrid's recipe with λ_KL = 0, everything
# else kept. *Predict first*: the posterior still trains the predictor, but nothing pulls it towards the prior
# N(0, I) that test-time samples come from. Will the samples be more or less diverse than the hybrid's, nearer to
# the truth or further? Then the cell after the check trains it for the same minutes (with the reference answer if
# yours is not written yet) and scores it beside the hybrid.

# %%
def hybrid_without_kl():
    # YOUR CODE HERE
    raise NotImplementedError

# %%
# NBVAL_CHECK_OUTPUT
check("hybrid_without_kl", hybrid_without_kl)

# %%
no_kl = hybrid_without_kl() if check("hybrid_without_kl", hybrid_without_kl).passed else solution("hybrid_without_kl")()
predictors["hybrid, no KL"], pred_summaries["hybrid, no KL"], _ = train_predictor(no_kl, "hybrid, no KL")
per_clip["hybrid, no KL"] = prediction_scores(draw_futures(predictors["hybrid, no KL"], context, n_samples), truth)
for name in ("hybrid", "hybrid, no KL"):
    print(f"{name:14s}" + "".join(f"  {m} {per_clip[name][m].mean().item():.3f}" for m in METRICS))
minutes_exercise = timer.lap("exercise 3")

# %% [markdown]
# <details><summary>Hint</summary>
#
# `dataclasses.replace(MODES["hybrid"], kl_weight=0.0)`. The reference answer: `solution("hybrid_without_kl")`.
# </details>

# %%
print(f"notebook wall time: {(time.time() - STARTED) / 60:.1f} min in the {S.profile} profile")
