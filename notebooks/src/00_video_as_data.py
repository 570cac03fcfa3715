# %% [markdown]
# # 00 · Video as data
#
# **What this chapter builds.** Everything the later chapters stand on: video tensors and their layout, the
# course's three generated datasets, tools to *watch* videos instead of printing tensors, and the course's one
# evaluation protocol: the metrics that score every model, the **reference rows** that every chapter prints beside
# its models (real clips, shuffled frames, frozen frames, pure noise, the mean video), the standard error that comes
# with every Fréchet distance, and the reason every chapter scores the same number of clips. It trains no model: it
# calibrates the ruler that the later chapters measure with, and shows that the ruler ranks videos as a person would.
#
# **Where it sits in the history.** The survey follows four eras: GAN + VAE (2016–2021), Transformers (2018–2023),
# Diffusion, and DiT (2023–). All of them generate the same object, a tensor with a time axis. Judging them needs
# more than image metrics:
#
# - Heusel et al. 2017 (**FID**) fitted Gaussians to an image network's features of real and of generated images
#   and measured the Fréchet distance between the two.
# - Unterthiner et al. 2018 (**FVD**) did the same with the features of a video network (I3D), so that motion
#   counts as well as the look of each frame.
# - Chong & Forsyth 2020 (*Effectively Unbiased FID*) showed that the distance estimated from N samples is biased
#   upwards by a term that shrinks like 1/N and depends on the generator: two models compare only at the same N.
#
# We cannot download I3D, so the course trains its own small *probe* networks on its own data and ships them in
# `data/weights/`.
#
# **Time per profile.** The same code runs in every profile; only the numbers of clips change (chosen with `pick`).
#
# | profile | clips per row against held-out clips | time |
# |---|---|---|
# | `smoke` | 16 against 32 | < 1 min on 2 CPU cores (checks only: too few clips for a meaningful fd) |
# | `cpu` | 128 against 256 | ≈ 2 min on 2 CPU cores |
# | `gpu` | 384 against 512 (the course's protocol) | ≈ 0.5 min on one H200 |
#
# The committed outputs come from the gpu profile: its numbers are the ones every later chapter is read against.

# %%
import time

STARTED = time.time()
import torch
from einops import rearrange

from vgcourse.profiles import pick, setup

S = setup(seed=0)

# %% [markdown]
# ## 1. A video is a 5-D tensor
#
# The course's canonical layout is **(B, C, T, H, W)**: batch, channels, time, height, width — the layout of
# `torch.nn.Conv3d`. Models see floats in **[-1, 1]**; the display sees **uint8 frames (T, H, W, C)**.
# Every model in the course reshapes this tensor in one of a few ways, and `einops` says each one in words:

# %%
# NBVAL_CHECK_OUTPUT
video = torch.zeros(8, 1, 16, 32, 32)  # 8 clips, 1 channel, 16 frames of 32×32
frames = rearrange(video, "b c t h w -> (b t) c h w")  # a 2D network sees every frame as an image
temporal = rearrange(video, "b c t h w -> (b h w) t c")  # temporal attention: one sequence per pixel
spatial = rearrange(video, "b c t h w -> (b t) (h w) c")  # spatial attention: one sequence per frame
tubelets = rearrange(video, "b c (t pt) (h p) (w q) -> b (t h w) (pt p q c)", pt=2, p=4, q=4)  # DiT/ViViT tokens
for name, x in [("frames", frames), ("temporal", temporal), ("spatial", spatial), ("tubelets", tubelets)]:
    print(f"{name:9s} {tuple(x.shape)}")

# %% [markdown]
# Each later chapter uses one of these. Note how many sequences temporal attention makes: B·H·W. At 64×64 with a
# batch of 32 that is 131,072 sequences, more than CUDA's grid limit of 65,535, which is why
# `vgcourse.nn.attention` splits such calls into chunks.
#
# Functions in the package check their inputs and say what was expected and what arrived:

# %%
# NBVAL_CHECK_OUTPUT
from vgcourse.video import check_video

for bad in [torch.zeros(16, 64, 64), torch.zeros(2, 1, 16, 64, 64, dtype=torch.uint8),
            torch.full((1, 1, 2, 4, 4), 255.0)]:
    try:
        check_video(bad)
    except (ValueError, TypeError) as err:
        print(f"{type(err).__name__}: {err}")

# %% [markdown]
# ## 2. Three datasets, generated on the device
#
# Nothing is downloaded. Each dataset renders clips batch by batch from a seed, on the training device:
#
# - **Moving digits** — the Moving MNIST recipe (Srivastava et al. 2015: two digits bouncing in a 64×64 box,
#   overlaid by a pixel-wise max) on the 1,797 real handwritten digits bundled with scikit-learn, shipped in
#   `data/digits.npz`. One instance in five is held out for evaluation.
# - **Bouncing balls** — discs with elastic wall bounces; labels are positions and velocities.
# - **Captioned shapes** — coloured shapes moving in a stated direction, each clip with a caption, optionally
#   with a panning camera over a textured background. For text-, motion- and camera-conditioned chapters.

# %%
from vgcourse.data import BouncingBalls, CaptionedShapes, MovingDigits

digits64 = MovingDigits(size=64, frames=16, digits=2)
batch = digits64.batch(8, seed=0, device=S.device)
print(digits64)
print("video", tuple(batch.video.shape), batch.video.dtype,
      "labels:", {k: tuple(v.shape) for k, v in batch.labels.items()})
print("digit classes of the first clip:", batch.labels["classes"][0].tolist())

# %%
# NBVAL_IGNORE_OUTPUT
from vgcourse.display import filmstrip, show_video

show_video(batch.video, fps=8, scale=2, nrow=8, caption="Moving digits, 64×64, 16 frames")

# %%
# NBVAL_IGNORE_OUTPUT
from vgcourse.display import side_by_side

balls = BouncingBalls(size=32, frames=16, balls=2).batch(4, seed=0)
shapes = CaptionedShapes(size=32, frames=16, camera_pan=True).batch(4, seed=0)
for text in shapes.captions:
    print(text)
side_by_side({"bouncing balls": balls.video.expand(-1, 3, -1, -1, -1),
              "captioned shapes, panning camera": shapes.video},
             fps=8, scale=3, nrow=4)

# %% [markdown]
# The same clips as a static picture, every other frame: it shows wherever the notebook is read, also where a GIF
# does not play.

# %%
from matplotlib.figure import Figure

filmstrip({"digits, clip 0": batch.video[0], "digits, clip 1": batch.video[1], "balls, clip 0": balls.video[0]}
          | {f"shapes, clip {i}": shapes.video[i] for i in range(2)})

# %% [markdown]
# Same seed, same clips — on the CPU or the GPU. The training loop asks the dataset for *batch number i*, so a
# resumed run sees exactly the data it would have seen:

# %%
# NBVAL_CHECK_OUTPUT
stream = digits64.stream(batch_size=4, seed=0)
print("batch 5 twice identical:", torch.equal(stream(5).video, stream(5).video))
print("batch 5 and 6 differ:  ", not torch.equal(stream(5).video, stream(6).video))
print("held-out set fixed:    ", torch.equal(digits64.heldout(4).video, digits64.heldout(4).video))

# %% [markdown]
# ## 3. Scrub through frames
#
# A widget to step through a clip frame by frame (drag the slider or press play). Its logic is a plain function,
# `vgcourse.display.frame_image`, which the tests call without a browser. Chapter 08 reuses it with a second
# slider over diffusion timesteps.

# %%
# NBVAL_IGNORE_OUTPUT
from vgcourse.display import VideoScrubber

scrubber = VideoScrubber(batch.video[0].cpu(), scale=4)
scrubber

# %% [markdown]
# A widget needs a running kernel (and, in JupyterLab, a trusted notebook); without them it shows as a line of text.
# The clip it scrubs, every frame, as a static picture:

# %%
filmstrip({"clip 0, frames 0–7": batch.video[0, :, :8], "frames 8–15": batch.video[0, :, 8:]}, every=1, height=0.9)

# %% [markdown]
# ## 4. Metrics that need no downloads
#
# | metric | reads | catches |
# |---|---|---|
# | `fd` ↓ | Fréchet distance of the video probe's features to the held-out set (an FVD proxy) | any change |
# | `frame_quality` | how crisply the frame probe sees K digits: Σ top-K p / (K + Σ other p) | blurry, noisy frames |
# | `identity_consistency` | frames whose digit set equals the clip's most common set | digits that morph |
# | `motion_consistency` | tracked steps that keep their velocity or bounce elastically | jumps, shuffled frames |
# | `speed_ratio` | tracked speed / real speed | frozen or too-fast motion |
# | `objects` | connected blobs per frame | noise, vanishing or splitting objects |
# | `class_coverage`, `class_entropy`, `diversity` | which digits appear; spread of features vs real | mode collapse |
# | `attribute_accuracy` | colour, shape, direction read back by analytic detectors | ignored conditioning |
#
# The **Fréchet distance** between Gaussians fitted to two feature sets (Heusel et al. 2017, eq. (2)):
#
# $$d^2 = \lVert\mu_1-\mu_2\rVert^2 + \operatorname{Tr}\big(\Sigma_1+\Sigma_2-2(\Sigma_1\Sigma_2)^{1/2}\big)$$
#
# Built here in plain view, then checked against the package's tested version:

# %%
# NBVAL_CHECK_OUTPUT
from vgcourse.metrics import frechet_distance_features


def my_frechet(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fréchet distance between Gaussians fitted to features a (N, D) and b (M, D)."""
    mu_a, mu_b = a.double().mean(0), b.double().mean(0)
    cov_a, cov_b = torch.cov(a.double().T), torch.cov(b.double().T)
    vals, vecs = torch.linalg.eigh(cov_a)
    root_a = vecs @ torch.diag(vals.clamp(min=0).sqrt()) @ vecs.T  # Σ_a^{1/2}
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()  # Tr (Σ_a Σ_b)^{1/2}
    return float((mu_a - mu_b).pow(2).sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


g = torch.Generator().manual_seed(0)
a, b = torch.randn(500, 16, generator=g), 1.5 * torch.randn(500, 16, generator=g) + 0.3
assert abs(my_frechet(a, b) - frechet_distance_features(a, b)) < 1e-9
print("my_frechet matches vgcourse.metrics.frechet_distance_features")

# %% [markdown]
# The probes are small CNNs trained by `python -m vgcourse.scripts.train_probes` on moving digits at 32×32 and
# 64×64 (1–3 digits). Their accuracy on held-out digits they never saw:

# %%
from vgcourse.metrics import probe_accuracy

for size in (32, 64):
    acc = probe_accuracy(size=size, n=pick(smoke=16, cpu=128, gpu=512), device=S.device)
    print(f"{size}×{size}: " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()))

# %% [markdown]
# ## 5. One protocol, and the reference rows
#
# Every chapter scores its models the same way, so that a number means the same in every chapter:
#
# - **the data**: moving digits at 32×32, 16 frames, two digits (`PROTOCOL.dataset()`);
# - **the reference**: `PROTOCOL.n_real` = 512 held-out clips, drawn with handwritten digits that no training clip
#   uses; `PROTOCOL.evaluator` fits the Gaussian of their probe features once;
# - **the model's side**: `PROTOCOL.n_gen` = 384 generated clips, scored by `score`, which adds the Fréchet
#   distance's standard error `fd_se` to every other metric;
# - **the reference rows**, from one call, `reference_rows(evaluator, n=PROTOCOL.n_gen)`, all at the same n and
#   all made from the same n real clips:
#   - **real**: fresh real clips, drawn with training digits (not the reference's): what a generator that draws
#     perfect training clips would score at this n;
#   - **shuffled frames**: every frame real, the order lost: motion must break, frame quality must not;
#   - **frozen frames**: the first frame held: real digits that never move;
#   - **noise**: N(0, 1) pixels clipped to [-1, 1]: what an untrained diffusion model draws;
#   - **mean video**: the pixel-wise mean of the clips, n times: what a model draws that ignores its input and
#     minimises a squared error.
#
# Two more corruptions of the same clips calibrate the frame metrics, scored the same way: **blurred** (σ = 1.5 px)
# and **noisy** (σ = 0.3): frames degraded, motion intact.

# %%
from vgcourse.metrics import PROTOCOL, add_noise, blur, score
from vgcourse.metrics.protocol import floor_fd, format_rows, reference_rows, verdict

n_gen = pick(smoke=16, cpu=128, gpu=PROTOCOL.n_gen)        # clips per row (a later chapter's generated clips)
n_real = pick(smoke=32, cpu=256, gpu=PROTOCOL.n_real)      # held-out reference clips
data = PROTOCOL.dataset()                                   # moving digits, 32×32, 16 frames, 2 digits
evaluator = PROTOCOL.evaluator(S.device, n_real=n_real)
rows = reference_rows(evaluator, n=n_gen)                   # real, shuffled, frozen, noise, mean video: one call

real = data.batch(n_gen, seed=PROTOCOL.reference_seed, device=S.device).video    # the clips the rows are made of
blurred, noisy = blur(real, 1.5), add_noise(real, 0.3, torch.Generator().manual_seed(1))
corrupted = {"blurred": score(evaluator, blurred), "noisy": score(evaluator, noisy)}
table = rows | corrupted

METRICS = ("fd", "frame_quality", "identity_consistency", "motion_consistency", "speed_ratio", "objects",
           "diversity")
print(f"{data}\n{n_gen} clips per row against {n_real} held-out clips; fd ± its standard error\n")
print(format_rows(table, METRICS))

# %%
from vgcourse.display import plot_metric_bars

fig = plot_metric_bars(table, metrics=["fd", "frame_quality", "identity_consistency", "motion_consistency",
                                       "speed_ratio"],
                       title=f"The reference rows and two corruptions: {n_gen} clips each against {n_real} held-out")
fig.axes[0].set(yscale="log", ylim=(1, None))        # noise and the mean video sit far above the rest
fig

# %% [markdown]
# Reading the table. Each row breaks one thing a person would notice, and each metric is built to catch some of
# them. Shuffling keeps every frame perfect, so frame quality must not move while motion consistency falls and the
# apparent speed rises (a digit jumps between random positions). Frozen clips have perfect "consistency" (nothing
# moves, nothing jumps) but a speed ratio of zero, which is why motion is read with two numbers. Blur and noise
# are meant to hurt frame quality and identity; noise also breaks the foreground into many small "objects". The
# unit tests (`tests/test_metrics.py`) assert these orderings on freshly generated data; the checks below read them
# from the table just computed:

# %%
def calibration_checks(table: dict) -> dict[str, bool]:
    real = table["real"]
    return {
        "real has the lowest fd": all(row["fd"] > real["fd"] for name, row in table.items() if name != "real"),
        "shuffling breaks motion": table["shuffled frames"]["motion_consistency"] < 0.5 * real["motion_consistency"],
        "shuffling keeps frame quality": abs(table["shuffled frames"]["frame_quality"] - real["frame_quality"]) < 0.02,
        "freezing stops motion": table["frozen frames"]["speed_ratio"] < 0.05,
        "blur hurts frames": table["blurred"]["frame_quality"] < real["frame_quality"] - 0.02,
        "noise hurts frames": table["noisy"]["frame_quality"] < real["frame_quality"] - 0.02,
    }


checks = calibration_checks(table)
for name, ok in checks.items():
    print(f"{'yes' if ok else 'NO':4s} {name}")

# %% [markdown]
# ## 6. What `score` and `reference_rows` compute, written out
#
# `score` runs the video probe over each clip to get its features (128 numbers a clip), fits a Gaussian to them, and
# measures the Fréchet distance of §4 between it and the Gaussian of the held-out clips' features
# (`evaluator.real_stats`, fitted once). Below, the rows' clips are made again from the same seed, exactly as
# `reference_rows` makes them, and each distance is checked equal to the package's.
#
# An fd from n clips is itself a random number: another n clips give another value. Its **standard error** comes
# from the jackknife (Quenouille 1956, Tukey 1958): leave clip i out, compute the distance θ₍ᵢ₎ from the other
# n − 1 clips, and
#
# $$\mathrm{SE} = \sqrt{\tfrac{n-1}{n}\textstyle\sum_{i=1}^{n} \big(\theta_{(i)} - \bar\theta\big)^2},
# \qquad \bar\theta = \tfrac{1}{n}\textstyle\sum_i \theta_{(i)}.$$
#
# The jackknife rather than the bootstrap: with about as many clips as features, a bootstrap resample repeats clips,
# which lowers the rank of the fitted covariance and inflates the distance; leaving one clip out does not.

# %%
# NBVAL_CHECK_OUTPUT
from vgcourse.metrics import corruptions, frechet_distance, gaussian_stats, jackknife_fd, jackknife_std


def fd_to_reference(features: torch.Tensor) -> float:
    """The Fréchet distance of clips' probe features (N, D) to the held-out reference, as `score` computes it."""
    return frechet_distance(*gaussian_stats(features), *evaluator.real_stats)


def my_reference_videos(real: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    """The clips of the five reference rows, made from n real clips (N, C, T, H, W) as `reference_rows` makes them."""
    g = torch.Generator().manual_seed(seed)
    return {"real": real, "shuffled frames": corruptions.shuffle_frames(real, g),
            "frozen frames": corruptions.freeze_frames(real),
            "noise": torch.randn(real.shape, generator=g).clamp(-1, 1).to(real.device),
            "mean video": real.mean(0, keepdim=True).expand_as(real).contiguous()}


def my_jackknife_se(features: torch.Tensor) -> float:
    """The jackknife standard error of fd_to_reference(features): each clip left out once."""
    n = features.shape[0]
    left_out = torch.tensor([fd_to_reference(torch.cat([features[:i], features[i + 1:]])) for i in range(n)])
    return float(((n - 1) / n * (left_out - left_out.mean()).pow(2).sum()).sqrt())


videos = my_reference_videos(real, PROTOCOL.reference_seed)
features = {name: evaluator.features(v) for name, v in videos.items()}          # {row: (n, 128)}
for name, f in features.items():
    assert abs(fd_to_reference(f) - rows[name]["fd"]) <= 1e-3 * max(1.0, rows[name]["fd"]), name
assert abs(my_jackknife_se(features["real"]) - rows["real"]["fd_se"]) <= 1e-3 * max(1e-3, rows["real"]["fd_se"])
print("fd_to_reference matches every reference row of vgcourse.metrics.reference_rows")
print("my_jackknife_se matches the real row's fd_se from vgcourse.metrics.score")

# %% [markdown]
# The rows' clips (the first of each, and the two corruptions of it), every other frame:

# %%
filmstrip({name: v[0] for name, v in videos.items()} | {"blurred": blurred[0], "noisy": noisy[0]}, height=0.5)

# %% [markdown]
# To compare two rows, or two models scored on paired clips, what matters is the standard error of their
# *difference*. Leave clip i out of both sets at once and the noise that the two share cancels. `jackknife_fd` does
# this for several sets paired clip by clip, as the rows are (each is made from the same real clips):

# %%
left_out = jackknife_fd(features, evaluator.real_stats)   # {row: (n,) fds with clip i left out of every row}
gaps = {name: (rows[name]["fd"] - rows["real"]["fd"], jackknife_std(left_out[name] - left_out["real"]))
        for name in features if name != "real"}
print(f"{'':18s}{'fd':>18s}{'minus real':>20s}")
for name in features:
    fd_text = f"{rows[name]['fd']:.2f} ± {rows[name]['fd_se']:.2f}"
    gap_text = "" if name == "real" else f"{gaps[name][0]:+.2f} ± {gaps[name][1]:.2f}"
    print(f"{name:18s}{fd_text:>18s}{gap_text:>20s}")

# %% [markdown]
# ## 7. Why every chapter scores the same number of clips
#
# The distance between two Gaussians fitted to *samples* is not the distance between the distributions. Even real
# clips, drawn from the very distribution of the reference, score above 0: the fitted mean misses the true one by a
# random vector whose expected squared length is Tr Σ / n, and the fitted covariance misses in a similar way. Both
# errors shrink like 1/n, so that
#
# $$\mathrm{fd}(n) \approx \mathrm{fd}_\infty + b / n,$$
#
# with a b that depends on what is scored (Chong & Forsyth 2020). The reference's own n (`n_real`) adds a bias of
# the same kind, fixed here because every chapter uses the same reference. Below, real clips and their frozen copies
# are scored at several n against the same held-out reference: several independent draws of clips at each n (their
# spread is the honest measure of how much fd varies), and the jackknife standard error of the first draw (what a
# chapter that scores once would report).

# %%
sweep_ns = pick(smoke=(4, 8, 16), cpu=(32, 64, 128, 256), gpu=(64, 96, 128, 192, 256, 384, 768))
draws = pick(smoke=2, cpu=3, gpu=10)                      # independent sets of clips at each n
sweep = {}
for n in sweep_ns:
    fds = {"real": [], "frozen frames": []}
    for r in range(draws):
        clips = data.batch(n, seed=10_000 * (r + 1) + n, device=S.device).video
        feats = {"real": evaluator.features(clips),
                 "frozen frames": evaluator.features(corruptions.freeze_frames(clips))}
        for name, f in feats.items():
            fds[name].append(fd_to_reference(f))
        if r == 0:                                        # the jackknife of one draw, paired between the two sets
            left = jackknife_fd(feats, evaluator.real_stats)
            se = {name: jackknife_std(v) for name, v in left.items()}
            se["frozen minus real"] = jackknife_std(left["frozen frames"] - left["real"])
    sweep[n] = {"fd": {name: torch.tensor(v, dtype=torch.float64) for name, v in fds.items()}, "se": se}

print(f"fd against the {n_real} held-out clips; mean and spread (sd) over {draws} draws of n clips, the jackknife "
      "SE of the first draw\n")
print(f"{'n':>5s}{'real fd':>10s}{'spread':>9s}{'SE':>7s}{'frozen fd':>12s}{'spread':>9s}{'SE':>7s}"
      f"{'frozen − real (1st draw)':>28s}")
for n, s in sweep.items():
    re_, fr = s["fd"]["real"], s["fd"]["frozen frames"]
    gap = f"{fr[0] - re_[0]:+.2f} ± {s['se']['frozen minus real']:.2f}"
    print(f"{n:5d}{re_.mean():10.2f}{re_.std():9.2f}{s['se']['real']:7.2f}{fr.mean():12.2f}{fr.std():9.2f}"
          f"{s['se']['frozen frames']:7.2f}{gap:>28s}")

# %%
inv_n = torch.tensor([1 / n for n in sweep_ns], dtype=torch.float64)
design = torch.stack([torch.ones_like(inv_n), inv_n], 1)                 # fd(n) ≈ fd_∞ + b / n, least squares
means = {name: torch.stack([sweep[n]["fd"][name].mean() for n in sweep_ns]) for name in ("real", "frozen frames")}
fits = {name: torch.linalg.lstsq(design, m[:, None]).solution[:, 0] for name, m in means.items()}   # (fd_∞, b)

fig = Figure(figsize=(11, 3.6), layout="constrained")
ax_n, ax_inv = fig.subplots(1, 2)
for i, (name, m) in enumerate(means.items()):
    spread = torch.stack([sweep[n]["fd"][name].std() for n in sweep_ns])
    ax_n.errorbar(sweep_ns, m, yerr=spread, marker="o", capsize=3, color=f"C{i}", label=f"{name} (± sd of draws)")
    for n in sweep_ns:
        ax_n.scatter([n] * draws, sweep[n]["fd"][name], s=6, color=f"C{i}", alpha=0.4)
    ax_inv.plot(inv_n, m, "o", color=f"C{i}", label=name)
    grid = torch.linspace(0, float(inv_n.max()), 50, dtype=torch.float64)
    ax_inv.plot(grid, fits[name][0] + fits[name][1] * grid, "-", color=f"C{i}", alpha=0.6,
                label=f"{float(fits[name][0]):.2f} + {float(fits[name][1]):.0f} / n")
ax_n.axvline(n_gen, color="gray", ls=":", label=f"this profile's n = {n_gen}")
ax_n.set(xscale="log", xlabel="n clips scored", ylabel="fd", title="fd of the same kind of clips, at several n")
ax_n.set_xticks(sweep_ns, [str(n) for n in sweep_ns], minor=False)
ax_n.minorticks_off()
ax_inv.set(xlabel="1 / n", ylabel="mean fd over the draws",
           title=r"the same means against 1 / n, and fd$_\infty$ + b / n")
for ax in (ax_n, ax_inv):
    ax.grid(alpha=0.3), ax.legend(fontsize=8)
fig

# %%
trace = float(evaluator.real_stats[1].trace())
n_small, n_check = sweep_ns[0], max(n for n in sweep_ns if n <= n_gen)
for name, (fd_inf, b) in fits.items():
    print(f"{name:14s} fd ≈ {fd_inf:.2f} + {b:.0f} / n: {fd_inf + b / n_small:.2f} expected at n = {n_small}, "
          f"{fd_inf + b / n_gen:.2f} at n = {n_gen}")
print(f"Tr Σ of the reference's features: {trace:.0f} (the fitted mean's share of the real row's b)")
gap_fit = [float((fits["frozen frames"][0] - fits["real"][0]) + (fits["frozen frames"][1] - fits["real"][1]) / n)
           for n in (n_small, n_gen)]
print(f"frozen minus real, from the fits: {gap_fit[0]:+.2f} at n = {n_small}, {gap_fit[1]:+.2f} at n = {n_gen}")
spread = sweep[n_check]["fd"]["real"].std().item()
print(f"at n = {n_check}: real fd varies by {spread:.2f} (sd) between {draws} independent draws; the jackknife SE of "
      f"one draw is {sweep[n_check]['se']['real']:.2f} (with {draws} draws the sd itself is uncertain by about "
      f"{100 / (2 * (draws - 1)) ** 0.5:.0f}%)")

# %% [markdown]
# What this means for the course: an fd is only compared with fds of the same n against the same reference. The same
# model scored on fewer clips reads higher, by b / n, and the gap between two rows changes with n as far as their b
# differ (printed above for real and frozen clips; a model's b can be far from both). So every chapter scores
# `PROTOCOL.n_gen` = 384 generated clips against the `PROTOCOL.n_real` = 512 held-out clips, and prints the
# reference rows computed again at that n, never copied from another n. The real row's fd_∞ need not be 0 either:
# its clips use training digits and the reference held-out ones, and the reference's own finite n adds a bias of its
# own. The table also checks the standard error: the jackknife SE of a single draw should be close to the spread
# between independent draws. At the protocol's n = 384 it is, for both rows, within the spread's own uncertainty
# (printed above); at other n the two can differ by more than that, since each SE there comes from one draw and each
# spread from a few.
#
# ## 8. The floor, the target, and how a bar is read
#
# Three rules that every later chapter applies, each read from the rows at the protocol's n:
#
# - **The floor** is twice the shuffled-frame row's fd. Every model whose samples a chapter shows scores below it.
#   Above it, samples are further from real video than clips whose every frame is real and whose order is random:
#   such a model draws noise or blobs, and comparing two of them says nothing.
# - **The target** of a chapter's headline model is the frozen-frame row: real digits that never move. Below it, a
#   model has learned something about motion, not only about frames.
# - **A bar is met** when the value beats it by at least one standard error, **not met** when it misses by more
#   than one, and **not resolved** in between: `verdict(value, bar, se)`. Not resolved is an answer, not a reason
#   to run again until the numbers agree.

# %%
floor, target = 2 * rows["shuffled frames"]["fd"], rows["frozen frames"]["fd"]
assert floor == floor_fd(rows)                  # the package's floor_fd, which the later chapters call
print(f"at n = {n_gen} against {n_real}: the floor (2 × shuffled frames) is fd {floor:.1f}, the target (frozen "
      f"frames) fd {target:.1f}\n")
print(f"{'':12s}{'fd':>16s}   {'below the target?':18s} below the floor?")
for name in ("real", "blurred", "noisy", "noise", "mean video"):
    s = table[name]
    fd_text = f"{s['fd']:.2f} ± {s['fd_se']:.2f}"
    print(f"{name:12s}{fd_text:>16s}   {verdict(s['fd'], target, s['fd_se']):18s} "
          f"{verdict(s['fd'], floor, s['fd_se'])}")

# %% [markdown]
# The bottom rows as videos: a real clip and the mean video of the clips above (every clip of that row is this one).

# %%
# NBVAL_IGNORE_OUTPUT
from vgcourse.display import side_by_side

side_by_side({"a real clip": videos["real"][0], "the mean video": videos["mean video"][0]}, fps=8, scale=4)

# %% [markdown]
# Compare the mean video's `frame_quality` with the real row's. A classifier's confidence can be fooled, as the
# Inception Score can be by images that are classified confidently yet look like nothing: the frame probe's belief on
# the mean video is printed below. No single number decides; the mean video has to be caught by the Fréchet
# distance, by diversity, by class coverage and by speed.

# %%
from vgcourse.metrics.probes import load_probe

probs = torch.sigmoid(load_probe("probe_moving_digits_frame", S.device)(videos["mean video"][:1]))
seen = probs[0].mean(0)
print("the frame probe's mean belief per class on the mean video:", [round(float(p), 2) for p in seen])
mean_row, real_row = table["mean video"], table["real"]
for key in ("frame_quality", "class_coverage", "diversity", "speed_ratio"):
    print(f"{key:15s} mean video {mean_row[key]:.3f}   real {real_row[key]:.3f}")

# %% [markdown]
# ## Claim check: "a video Fréchet distance sees motion, not only frames"
#
# FVD was proposed because image metrics score each frame alone and cannot see motion; its claim is that a
# distance on a video network's features is sensitive to temporal quality as well as to the frames. Tested here
# with the probe's features on the two rows whose every frame is real: stated before measuring, the claim is
# **supported** if shuffled frames *and* frozen frames both score a higher fd than the real clips they are made
# from, each by at least one standard error of the paired difference; **not supported** if either scores *lower*
# than real by more than one standard error; **not resolved** otherwise. Their frame quality is printed beside:
# a frame metric should not tell them from real clips.

# %%
outcomes = {name: verdict(gaps[name][0], 0.0, gaps[name][1], lower_is_better=False)
            for name in ("shuffled frames", "frozen frames")}
claim = ("supported" if all(o == "met" for o in outcomes.values()) else
         "not supported" if any(o == "not met" for o in outcomes.values()) else "not resolved")
print(f"claim {claim} (n = {n_gen} against {n_real}):")
for name, outcome in outcomes.items():
    print(f"  {name}: fd {rows[name]['fd']:.2f} against real {rows['real']['fd']:.2f}, difference "
          f"{gaps[name][0]:+.2f} ± {gaps[name][1]:.2f} ({outcome}); frame quality {rows[name]['frame_quality']:.3f} "
          f"against {rows['real']['frame_quality']:.3f}")

# %% [markdown]
# ## Results
#
# The numbers above go to `results/00_video_as_data.json`. Its headline holds the reference rows at the protocol's n,
# each fd with its standard error, and the floor that follows from them.

# %%
from vgcourse import results

ROW_KEYS = {"real": "real", "shuffled frames": "shuffled_frames", "frozen frames": "frozen_frames", "noise": "noise",
            "mean video": "mean_video"}
headline_numbers = {}
for name, key in ROW_KEYS.items():
    headline_numbers |= {f"{key}_fd": rows[name]["fd"], f"{key}_fd_se": rows[name]["fd_se"]}
headline_numbers |= {"floor_fd": floor, "n_gen": n_gen, "n_real": n_real}

results.record("00_video_as_data", {
    "headline": headline_numbers,
    "reference_rows": rows, "corruptions": corrupted, "calibration_checks": checks,
    "differences_from_real": {name: {"fd": d, "se": se} for name, (d, se) in gaps.items()},
    "fd_against_n": {str(n): {"real": s["fd"]["real"], "frozen_frames": s["fd"]["frozen frames"],
                              "jackknife_se": s["se"]} for n, s in sweep.items()},
    "fd_against_n_fit": {name: {"fd_inf": float(v[0]), "b": float(v[1])} for name, v in fits.items()},
    "claim": {"outcome": claim, "parts": outcomes},
}, started=STARTED, n_gen=n_gen, n_real=n_real, draws=draws)

# %% [markdown]
# ## Exercises
#
# Fill in each stub, run the cell, and the check says *pass*, what is wrong, or *not attempted yet*.
# `vgcourse.exercises.solution("name")` returns the reference solution; try first.
#
# **1. From model to display.** Turn a clip (C, T, H, W) in [-1, 1] into display frames (T, H, W, C) uint8.

# %%
from vgcourse.exercises import check


def to_display(clip: torch.Tensor) -> torch.Tensor:
    # YOUR CODE HERE: map [-1, 1] to [0, 255], round, uint8, then (C, T, H, W) -> (T, H, W, C)
    raise NotImplementedError


check("to_display", to_display)

# %% [markdown]
# **2. A corruption.** Shuffle the frames of every clip with its own random permutation (use `generator`).

# %%
def shuffle_frames(video: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    # YOUR CODE HERE: (B, C, T, H, W) -> the same shape, each clip's frames permuted
    raise NotImplementedError


check("shuffle_frames", shuffle_frames)

# %% [markdown]
# **3. The seed of a tracker.** Return the brightness-weighted centre of mass (y, x) of a frame (H, W) in [-1, 1],
# each pixel weighted by (frame + 1) / 2, in pixel indices (the pixel in row i, column j sits at (y, x) = (i, j)).
# The course's tracker (`vgcourse.metrics.track_centroids`) starts from such a centre of mass and then runs weighted
# k-means, with one difference in the weights: `vgcourse.data.foreground` sets pixels below 30 % brightness to zero
# and rescales the rest to [0, 1], so that the background weighs nothing.

# %%
def centroid(frame: torch.Tensor) -> torch.Tensor:
    # YOUR CODE HERE: weights (frame + 1) / 2; return torch.stack([y, x])
    raise NotImplementedError


check("centroid", centroid)

# %% [markdown]
# **4. Predict, then see: reversed time.** Play every clip backwards (`video.flip(2)`). Before running the next cell,
# predict which metrics should catch it, and whether the Fréchet distance does. (Hint: elastic bounces look the
# same backwards, and no digit changes shape.) The cell scores the reversed clips beside the real clips they come
# from, with the standard error of the difference.

# %%
reversed_clips = real.flip(2)                                              # (n, C, T, H, W), time backwards
reversed_row = score(evaluator, reversed_clips)
left = jackknife_fd({"real": features["real"], "reversed": evaluator.features(reversed_clips)}, evaluator.real_stats)
diff, diff_se = reversed_row["fd"] - rows["real"]["fd"], jackknife_std(left["reversed"] - left["real"])
print(format_rows({"real": rows["real"], "reversed time": reversed_row}, METRICS))
print(f"\nreversed minus real: fd {diff:+.2f} ± {diff_se:.2f}; above 0 by one standard error: "
      f"{verdict(diff, 0.0, diff_se, lower_is_better=False)}")

# %%
print(f"notebook wall time: {(time.time() - STARTED) / 60:.1f} min in the {S.profile} profile")
