# %% [markdown]
# # 13 · Capstone: every family on one ruler
#
# **What this chapter builds.** A reading of the whole course. Chapters 01–12 each built one family of video
# generators from scratch, trained it on one GPU in minutes, and, where it generates moving digits, scored it with
# the same protocol: 384 generated clips of moving digits against the same 512 held-out clips, beside the same
# reference rows. Each chapter wrote what it measured to `notebooks/results/<chapter>.json`. This chapter reads
# those files and sets the families side by side: every headline model's Fréchet distance with its standard error,
# the training compute and minutes it took, which models got past the floor, which of them differ by more than their
# errors, and a ledger of the survey's claims as the chapters checked them, each with the outcome stated before it
# was measured. Then it trains four families again, side by side, for the same number of training FLOPs, and reads
# the survey's story of eras replacing each other at that one budget.
#
# **Where it sits in the history.** The survey tells a story of four eras, each replacing the last: GANs and VAEs
# (2016–2021), transformers over discrete tokens (2018–2023), diffusion, and diffusion transformers (2023–), the
# line that leads to Sora. A story of replacement makes claims: latent space is cheaper, transformers scale and
# train in parallel, diffusion lacks diversity, GANs drop modes, transformers struggle with time. The chapters turned
# each into a measurement that could come out three ways. Here they are read together.
#
# **What "the same budget" means here.** Every chapter ran within about ten minutes on one GPU (an H100 or an H200;
# each row names its device), and gave its headline model between about two and six of them (the minutes column
# below). In sections 1–4 the budget is one GPU for
# minutes, not one number of FLOPs: the table prints each model's training FLOPs, so a reader sees how far from
# matched they are. Section 5 matches the FLOPs.
#
# **Time per profile.** Sections 1–4 read the committed results of the gpu runs, so every profile prints the same
# tables. Section 5 trains; its sizes change with the profile (chosen with `pick`).
#
# | profile | sections 1–4 | section 5: four families | time |
# |---|---|---|---|
# | `smoke` | the committed gpu results | tiny models, two steps each | < 1 min on 2 CPU cores (checks only) |
# | `cpu` | the same | small models, 4·10¹² training FLOPs each | ≈ 8 min on 2 CPU cores |
# | `gpu` | the same | the chapters' sizes, 4·10¹⁵ training FLOPs each | ≈ 6 min on one GPU |

# %%
import time

STARTED = time.time()
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter

import vgcourse.display  # noqa: F401  (draws a returned Figure inline)
from vgcourse import results
from vgcourse.metrics.protocol import floor_fd, format_rows, past_the_floor, verdict
from vgcourse.nn.parameters import count_parameters
from vgcourse.profiles import setup
from vgcourse.record import BAR_TO_CLAIM, Claim, Entry, combined, difference, lookup, read_claim, read_entry
from vgcourse.results import num

S = setup(seed=0)          # prints profile, device, precision, compile, torch version

# %% [markdown]
# ## 1 · The ruler
#
# Chapter 00 calibrated the ruler. Its reference rows are what every number below is read against: real clips (fresh
# clips of the training split, never the held-out reference; the best a model can score at this n, since fd is biased
# upwards by a term that shrinks like 1/n), frozen frames (each clip's first frame repeated: perfect pictures, no
# motion), shuffled frames (perfect pictures, motion destroyed), noise and the mean video. The **floor** is twice the
# shuffled-frame row: a model above it has not yet learnt to draw digits that move, and the course shows no samples of
# it and reads no conclusion from it. A headline model aims below the frozen-frame row.

# %%
ruler = results.load("00_video_as_data")
rows = lookup(ruler, "metrics/reference_rows")
floor = floor_fd(rows)
print(f"the ruler: {lookup(ruler, 'metrics/headline/n_gen')} clips against {lookup(ruler, 'metrics/headline/n_real')} "
      f"held-out, run on {ruler['device']} ({ruler['profile']} profile)")
print(format_rows(rows, ("fd", "frame_quality", "identity_consistency", "motion_consistency", "diversity")))
print(f"the floor (twice shuffled frames): fd {floor:.1f}; the aim (frozen frames): fd "
      f"{rows['frozen frames']['fd']:.1f}")

# %% [markdown]
# ## 2 · Every family's headline model
#
# One entry per model: its family and era, the chapter that trained it, and where its numbers live in that chapter's
# results file (a path of keys, read by `vgcourse.record.lookup`). Chapter 01 works on single frames and chapter 07
# on captioned shapes, so neither has a row on the digits protocol; both appear in the claims below. Chapter 10's
# two U-Nets were trained for the same FLOPs, the autoencoder's counted against the latent side; VideoGPT's prior
# reads the tokens of the tokenizer that chapter 05 trained and shipped, whose FLOPs are not counted here.

# %%
ENTRIES = [
    Entry("GAN", "GAN + VAE", "TGAN (logistic + R1)", "02_tgan",
          flops="metrics/headline_train/train_flops", minutes="metrics/headline/minutes"),
    Entry("GAN", "GAN + VAE", "MoCoGAN", "03_mocogan", flops="train/train_flops", minutes="metrics/headline/minutes"),
    Entry("GAN", "GAN + VAE", "DVD-GAN", "04_dvdgan_vaegan", flops="train/train_flops",
          minutes="metrics/headline/minutes"),
    Entry("autoregressive", "transformers", "VideoGPT prior (VQ tokens)", "06_videogpt",
          flops="train/prior/train_flops", minutes="metrics/headline/minutes",
          sampling_ms="metrics/sampling/ms_per_clip_protocol"),
    Entry("diffusion", "diffusion", "DDPM U-Net (ancestral)", "08_ddpm_video", flops="train/train_flops",
          minutes="metrics/headline/minutes", sampling_ms="metrics/sampling_ms_per_clip/DDPM"),
    Entry("diffusion", "diffusion", "VP-SDE U-Net (predictor-corrector)", "09_score_sde", flops="train/train_flops",
          minutes="metrics/headline/minutes"),
    Entry("diffusion", "diffusion", "latent U-Net", "10_latent_conditional", scores="metrics/scores/latent U-Net",
          flops="metrics/flops/latent_total", minutes="metrics/headline/minutes"),
    Entry("diffusion", "diffusion", "pixel U-Net, same FLOPs", "10_latent_conditional",
          scores="metrics/scores/pixel U-Net", flops="metrics/flops/pixel"),
    Entry("DiT", "DiT", "DiT (21.8M, patch 4)", "11_dit", flops="train/main/train_flops",
          minutes="metrics/headline/minutes"),
    Entry("DiT", "DiT", "DiT, variable shapes", "12_sora_walt", flops="train/multi_shape/train_flops",
          minutes="metrics/headline/minutes"),
]
table = {e.model: read_entry(e) for e in ENTRIES}     # each a gpu run scored at the protocol's n (read_entry checks)
print(format_rows({"real": rows["real"], "frozen frames": rows["frozen frames"],
                   "shuffled frames": rows["shuffled frames"]} | table,
                  ("fd", "frame_quality", "identity_consistency", "motion_consistency", "diversity")))

# %% [markdown]
# The cost of each, and who is past the floor (`past_the_floor`: fd below the floor by one standard error):

# %%
passed = past_the_floor(table, floor)
print(f"\n{'model':36s}{'era':>14s}{'train PFLOPs':>14s}{'minutes':>9s}{'ms per clip':>13s}  device")
for name, r in table.items():
    pflops = None if r["train_flops"] is None else r["train_flops"] / 1e15
    mark = "✔" if name in passed else "✘"
    print(f"{mark} {name:34s}{r['era']:>14s}{num(pflops, '14.1f')}{num(r['minutes'], '9.2f')}"
          f"{num(r['sampling_ms'], '13.1f')}  {r['device']}")
print(f"past the floor: {len(passed)} of {len(table)}")

# %% [markdown]
# Each point below is one model: its training compute and the fd it reached, with its standard error. The lines are
# the reference rows. A point far to the right of another reached its fd with more compute; a point above the floor
# line is a model still learning to draw.

# %%
ERA_COLOURS = {"GAN + VAE": "C3", "transformers": "C2", "diffusion": "C0", "DiT": "C4"}
fig = Figure(figsize=(8, 4.6), layout="constrained")
ax = fig.subplots()
for name, r in table.items():
    if r["train_flops"] is None:
        continue
    ax.errorbar(r["train_flops"], r["fd"], yerr=r["fd_se"], fmt="o", color=ERA_COLOURS[r["era"]], capsize=3)
    right = r["train_flops"] > 3e16                                   # label the rightmost points on their left
    ax.annotate(name, (r["train_flops"], r["fd"]), textcoords="offset points", xytext=(-6 if right else 6, 4),
                ha="right" if right else "left", fontsize=7)
for label, value, style in [("floor", floor, "--"), ("shuffled frames", rows["shuffled frames"]["fd"], ":"),
                            ("frozen frames", rows["frozen frames"]["fd"], "-."), ("real", rows["real"]["fd"], "-")]:
    ax.axhline(value, color="grey", linestyle=style, linewidth=1)
    ax.text(0.99, value, label, transform=ax.get_yaxis_transform(), fontsize=7, ha="right", va="bottom",
            color="grey")
for era, colour in ERA_COLOURS.items():
    ax.plot([], [], "o", color=colour, label=era)
ax.set_xscale("log"), ax.set_yscale("log")
ax.set_yticks([3, 5, 10, 20, 40, 80], labels=["3", "5", "10", "20", "40", "80"])
ax.yaxis.set_minor_formatter(NullFormatter())
ax.set_xlabel("training FLOPs"), ax.set_ylabel("fd (384 against 512), lower is better")
ax.legend(fontsize=8, loc="lower left")
fig

# %% [markdown]
# ## 3 · Which differences are real
#
# Two models compare only when both are past the floor, and a difference counts only when it exceeds its standard
# error. Each fd's standard error is a jackknife over its own generated clips, the held-out clips held fixed, so the
# standard error of a difference is the two combined (`vgcourse.record.difference`): how much the difference would
# move with other generated clips, against the same held-out ones. Below: each model past the floor against the best
# one, with the ratio of their training FLOPs. These are not comparisons at matched FLOPs: each model had its
# chapter's minutes, and the ratio says how far apart their compute was. A difference reads as "this family, given a
# few minutes of one GPU, reached that much less", not as a ranking of the families at equal compute.

# %%
ranked = sorted(passed, key=lambda n: table[n]["fd"])
pairs = {}
if ranked:
    best = ranked[0]
    print(f"best on the ruler: {best} (fd {table[best]['fd']:.2f} ± {table[best]['fd_se']:.2f})")
    for name in ranked[1:]:
        d, se = difference(table[name]["fd"], table[name]["fd_se"], table[best]["fd"], table[best]["fd_se"])
        outcome = verdict(0.0, d, se)               # 'met': the best one is lower by at least one SE
        ratio = (None if None in (table[name]["train_flops"], table[best]["train_flops"])
                 else table[name]["train_flops"] / table[best]["train_flops"])
        pairs[name] = {"minus_best": d, "se": se, "resolved": outcome == "met", "flops_ratio": ratio}
        print(f"  {name:36s} {d:+7.2f} ± {se:4.2f}  {'behind' if outcome == 'met' else 'not resolved':>12s}"
              f"   FLOPs {num(ratio, '.2f')}× the best's")
below_frozen = [n for n in passed if verdict(table[n]["fd"], rows["frozen frames"]["fd"], table[n]["fd_se"]) == "met"]
print(f"below the frozen-frame row by one standard error: {below_frozen or 'none'}")

# %% [markdown]
# ## 4 · The survey's claims, as the chapters measured them
#
# Each chapter stated, before measuring, what would count as supported, not supported or not resolved (within one
# standard error), and recorded the outcome. A bar recorded as met or not met reads as supported or not supported;
# a claim of several parts is supported when every part is and not supported when any part is not. The ledger below
# reads those outcomes and the numbers they rest on; it types in no outcome of its own. A claim whose rule is one
# comparison can also be read from the number it rests on and that number's standard error, with the same rule
# (`measured=`): chapter 05's is read that way.

# %%
CLAIMS = [
    Claim("GAN + VAE", "a VAE's samples are blurrier than a GAN's", "01_vae_and_gan",
          "metrics/claims/vae_blurrier_than_gan",
          {"sharpness, VAE": "metrics/frame_rows/VAE samples/sharpness",
           "sharpness, DCGAN": "metrics/frame_rows/DCGAN samples/sharpness"}),
    Claim("GAN + VAE", "a GAN drops modes", "01_vae_and_gan", "metrics/claims/gan_drops_modes",
          {"class entropy, DCGAN": "metrics/frame_rows/DCGAN samples/class_entropy",
           "class entropy, real": "metrics/frame_rows/real frames/class_entropy"}),
    Claim("GAN + VAE", "singular-value clipping makes a WGAN train stably (TGAN)", "02_tgan",
          "metrics/claim_svc_stable", {"worse-seed fd, WGAN + SVC": "metrics/claim_bar/value",
                                       "worse-seed fd, logistic + R1": "metrics/claim_bar/line"}),
    Claim("GAN + VAE", "content and motion split: a shared content code keeps the digits, shared motion codes the "
          "paths (MoCoGAN)", "03_mocogan",
          ("metrics/bars/content agreement ≥ 0.8/outcome", "metrics/bars/trajectory correlation ≥ 0.8/outcome"),
          {"content agreement": "metrics/bars/content agreement ≥ 0.8/value",
           "trajectory correlation": "metrics/bars/trajectory correlation ≥ 0.8/value"}),
    Claim("GAN + VAE", "a GAN+VAE hybrid gets the VAE's coverage and the GAN's sharpness (SAVP)", "04_dvdgan_vaegan",
          ("metrics/bars/hybrid minus VAE-only, frame quality, above 0/outcome",
           "metrics/bars/hybrid minus GAN-only, best-of-N PSNR (dB), above 0/outcome"),
          {"frame quality, hybrid minus VAE-only": "metrics/prediction_paired/frame_quality_hybrid_minus_vae",
           "best-of-N PSNR, hybrid minus GAN-only": "metrics/prediction_paired/best_psnr_hybrid_minus_gan"}),
    Claim("transformers", "3D tokens reconstruct better than per-frame tokens at the same count", "05_vqvae_tokenizer",
          evidence={"PSNR, 3D minus per-frame (dB)": "metrics/psnr_3d_minus_per_frame"},
          measured=("metrics/psnr_3d_minus_per_frame", "metrics/psnr_3d_minus_per_frame_se", 0.0, True)),
    Claim("transformers", "transformers struggle with spatio-temporal dynamics", "06_videogpt",
          "metrics/claim_dynamics/outcome", {"motion consistency, real minus prior": "metrics/claim_dynamics/gap"}),
    Claim("transformers", "transformers scale (bigger prior, fewer bits at matched FLOPs)", "07_phenaki",
          "metrics/era_claims/scaling/outcome",
          {"bits, smaller minus larger": "metrics/era_claims/scaling/steps_down"}),
    Claim("transformers", "transformers train in parallel, faster than a recurrent prior", "07_phenaki",
          "metrics/era_claims/parallel/outcome",
          {"codes per second, GPT / GRU": "metrics/era_claims/parallel/speed_ratio"}),
    Claim("diffusion", "diffusion needs many network calls, and DDIM buys the speed back", "08_ddpm_video",
          "metrics/claim/outcome",
          {"fd ratio, DDIM 50 / ancestral": "metrics/headline/ddim_over_ddpm_fd"}),
    Claim("diffusion", "more sampler steps give better samples (every SDE sampler)", "09_score_sde",
          "metrics/claims/more NFE, better samples (all families)", {}),
    Claim("diffusion", "predictor-corrector beats reverse diffusion", "09_score_sde",
          "metrics/claims/PC beats reverse diffusion",
          {"fd, PC (100 steps, 200 calls)": "metrics/samplers/PC (RD + Langevin) (100 steps)/fd",
           "fd, reverse diffusion (200 steps)": "metrics/samplers/reverse diffusion (200 steps)/fd"}),
    Claim("diffusion", "the probability-flow ODE gives the clips back", "09_score_sde",
          "metrics/claims/ODE round trip gives the clips back",
          {"pixels back within tolerance": "metrics/headline/round_trip_pixels_back"}),
    Claim("diffusion", "latent space is cheaper (same FLOPs, better fd)", "10_latent_conditional",
          "metrics/headline/latent_claim",
          {"fd latent": "metrics/headline/fd", "fd pixel": "metrics/headline/fd_pixel"}),
    Claim("diffusion", "diffusion lacks diversity", "10_latent_conditional", "metrics/headline/diversity_claim",
          {"diversity at s = 1, as a share of real clips'": "metrics/cfg_sweep/1.0/diversity"}),
    Claim("DiT", "DiT scales (bigger model or smaller patch, better fd at matched FLOPs)", "11_dit",
          "metrics/headline/scaling_claim", {"why": "metrics/scaling_study/why"}),
]
ledger = [read_claim(c) for c in CLAIMS]


def show(value) -> str:
    """A number, a pair (value, SE) or a list of them, printed short."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        if len(value) == 2 and all(isinstance(v, (int, float)) for v in value):
            return f"{value[0]:.3g} ± {value[1]:.2g}"
        return "[" + ", ".join(show(v) for v in value) + "]"
    return str(value)


for era in ERA_COLOURS:
    print(era)
    for item in (i for i in ledger if i["era"] == era):
        evidence = "; ".join(f"{k} {show(v)}" for k, v in item["evidence"].items())
        reason = f" ({item['reason']})" if item["reason"] else ""
        print(f"  {item['outcome']:>13s}{reason}: {item['claim']} [ch. {item['chapter'][:2]}]"
              + (f"\n{'':17s}{evidence}" if evidence else ""))
tally = {o: sum(i["outcome"] == o for i in ledger) for o in ("supported", "not supported", "not resolved")}
print(f"\n{len(ledger)} claims: " + ", ".join(f"{n} {o}" for o, n in tally.items()))

# %% [markdown]
# **Reading it.** Three things hold for every row of this chapter.
#
# - *A claim is only as good as its models.* An outcome read from models above the floor is recorded as not
#   resolved with that reason: a model that has not learnt to draw digits cannot tell us which way of drawing them is
#   cheaper. Where a chapter's models were past the floor, its outcome stands for these minutes and this data, and
#   no further: a small model, trained for minutes, on 32×32 digits.
# - *Minutes are not FLOPs, and FLOPs are not quality.* The families spend their compute differently: a GAN's step
#   trains two networks, a prior needs a tokenizer first, a diffusion model pays again at sampling time, once per
#   step. The table's columns keep those apart.
# - *Not supported is a finding.* A claim that failed its stated test in this setting tells the learner what the
#   claim needs (more compute, more data, a different measure) before it holds; it does not show the survey wrong.

# %% [markdown]
# ## 5 · One budget, four families
#
# The record compares each family at its own chapter's compute. Here four of them train again, side by side, for
# **the same training FLOPs** (`contest_budget`), each with its chapter's recipe: MoCoGAN (chapter 03), the GPT
# prior over the shipped tokenizer's codes (chapter 06, unconditional here; the tokenizer was trained once, in
# chapter 05, and its FLOPs are not counted), the DDPM U-Net (chapter 08, on videos only) and the DiT (chapter 11).
# `vgcourse.train.fit_to_flops` runs each until its measured FLOPs reach the budget, and moves the end of its
# learning-rate decay there. At a budget this small a model takes a few hundred to a few thousand steps, where an
# average of the weights over a thousand steps would still be mostly its initial weights, so every family samples
# from its live weights. Every run is eager (compiling four models would cost minutes of the budget's time, not of
# its FLOPs), with a time cap as a guard: a run stopped by the cap did not spend the budget and is not matched. One
# family's steps are not all alike: MoCoGAN adds its R1 penalty every fourth step (about half a step more each
# time), and the loop's counted step is a plain one, so its budget is read in the mean FLOPs of four steps
# (`fit_to_flops(..., cycle=4)`). (On a CPU, PyTorch's FLOP counter does not see the attention kernel, so there the
# two transformers' attention is not counted; on a GPU it is.)
#
# Stated before measuring, the survey's story of eras replacing each other, read at this one budget: for each step
# of the story (GAN → autoregressive transformer → diffusion U-Net → DiT), **supported** if the later family's fd
# is below the earlier one's by one standard error of the difference, both past the floor and both runs matched;
# **not supported** if it is above by one; **not resolved** otherwise. The story is supported when every step is,
# not supported when any step is not.

# %% [markdown]
# The piece that matches the budget, written out: the loop counts the FLOPs of its first step on the real work
# (forward and backward, by PyTorch's FLOP counter), so one step tells how many steps the budget buys; the cosine
# decay is moved to end there (`retarget`, as a run bounded by minutes does), then the loop runs on. Checked against
# the package's `fit_to_flops` on two copies of a tiny model: the same steps, the same weights.

# %%
# NBVAL_CHECK_OUTPUT
import torch
from torch import nn

from vgcourse.train import fit_to_flops, make_trainer
from vgcourse.train.schedules import retarget


def my_fit_to_flops(trainer, budget: float):
    if trainer.summary.flops_per_step is None:
        trainer.fit(trainer.step + 1)                               # step 1 measures a step's FLOPs
    steps = max(trainer.step, int(budget // trainer.summary.flops_per_step))   # the last step within the budget
    for schedule_ in trainer.schedulers.values():
        retarget(schedule_, steps)                                  # the learning-rate decay ends there too
    return trainer.fit(steps)


x_check = torch.randn(4, 8)


def tiny_trainer():
    torch.manual_seed(0)
    return make_trainer(nn.Linear(8, 1), lambda step: x_check, 10_000, lambda m, x: m(x).pow(2).mean(), lr=1e-2,
                        warmup=1, decay_to=0.1, progress=False, log_every=1)


budget_ = 12.5 * tiny_trainer().fit(1).flops_per_step                 # twelve and a half steps' FLOPs
twins = {}
for name, fit in [("mine", my_fit_to_flops), ("package", fit_to_flops)]:
    trainer_ = tiny_trainer()                                           # fresh: its first step counts the FLOPs
    twins[name] = (fit(trainer_, budget_).steps, trainer_.model.weight.detach().clone())
assert twins["mine"][0] == twins["package"][0] == 12
torch.testing.assert_close(twins["mine"][1], twins["package"][1])
print("my_fit_to_flops stops where vgcourse.train.fit_to_flops does (12 steps for 12.5 steps' FLOPs), same weights")

# %%
from vgcourse.autoregressive import (
    GPT,
    TokenBatches,
    encode_dataset,
    load_tokenizer_if_shipped,
    prior_loss,
    sample_videos,
    videogpt_digits,
)
from vgcourse.diffusion import VPrediction, cosine_schedule, ddim_sample_chunked, diffusion_loss, linear_schedule
from vgcourse.diffusion.unet import VideoUNet, video_unet_small
from vgcourse.display import filmstrip
from vgcourse.dit import DiT, DiTConfig
from vgcourse.gan import MoCoGANConfig, MoCoGANRecipe, build_mocogan, make_gan_trainer, mocogan_step
from vgcourse.metrics import PROTOCOL, score
from vgcourse.metrics.protocol import reference_rows
from vgcourse.profiles import pick
from vgcourse.train import TrainConfig, Trainer, warmup_cosine

contest_budget = pick(smoke=None, cpu=4e12, gpu=4e15)   # training FLOPs per family (None: two steps each)
contest_cap = pick(smoke=None, cpu=1.5, gpu=2.5)        # minutes: a guard on any one run
n_gen_c, n_real_c = pick(smoke=8, cpu=64, gpu=PROTOCOL.n_gen), pick(smoke=32, cpu=256, gpu=PROTOCOL.n_real)
n_codes = pick(smoke=64, cpu=2048, gpu=65_536)          # training clips encoded once for the prior
log_every_c = pick(smoke=1, cpu=25, gpu=100)
data = PROTOCOL.dataset()                               # 32×32, 16 frames, 2 digits: the size the tokenizer reads
stream = data.stream(pick(smoke=2, cpu=8, gpu=64), seed=0, device=S.device)   # clips per step for MoCoGAN and both
                                                                               # diffusion models, as their chapters
linear_T, cosine_T = linear_schedule(1000).to(S.device), cosine_schedule(1000).to(S.device)
WIDE = dict(smoke=0, cpu=1, gpu=2)                      # which of each family's three sizes below


def run(trainer: Trainer, cycle: int = 1) -> dict:
    """Train to the budget (two steps without one); what the contest records of the run. ``cycle``: the period of a
    step that varies (`fit_to_flops` then counts the mean step over one period)."""
    summary = fit_to_flops(trainer, contest_budget, cycle) if contest_budget else trainer.fit(2)
    return {"steps": summary.steps, "minutes": summary.wall_time_s / 60, "train_flops": summary.train_flops,
            "stopped_by": summary.stopped_by, "parameters": count_parameters(trainer.model)}


def mocogan() -> tuple[dict, torch.Tensor]:
    """Chapter 03's MoCoGAN: non-saturating loss, R1 every 4 steps, Adam (0, 0.99) at 2e-4 for both players, fp32."""
    width = [(4, 4), (16, 16), (128, 64)][WIDE[S.profile]]
    config = MoCoGANConfig(image_size=32, frames=16, channels=1, content_dim=50, motion_dim=16, noise_dim=10,
                           gen_width=width[0], gen_norm="group", disc_width=width[1], disc_norm="none")
    recipe = MoCoGANRecipe(loss="nonsaturating", image_frames=4, r1_gamma=1.0, r1_every=4)
    torch.manual_seed(0)
    model = build_mocogan(config).to(S.device)
    trainer = make_gan_trainer(model, lambda tr, b: mocogan_step(tr, b, recipe), 1_000_000, stream, lr_g=2e-4,
                               lr_d=2e-4, betas=(0.0, 0.99), ema=False, amp=False, max_minutes=contest_cap,
                               log_every=log_every_c, desc="MoCoGAN")
    record = run(trainer, cycle=recipe.r1_every)                    # R1 every 4th step: count a mean step
    with torch.no_grad():
        g = torch.Generator(S.device).manual_seed(1)
        clips = torch.cat([model["G"].eval().sample(min(128, n_gen_c - i), generator=g).float().clamp(-1, 1).cpu()
                           for i in range(0, n_gen_c, 128)])
    return record, clips


def gpt_prior() -> tuple[dict, torch.Tensor]:
    """Chapter 06's prior, unconditional: AdamW (0.9, 0.95), weight decay 0.1 on matrices, 8e-4, warm-up, cosine to
    a tenth, batch 256 clips, over the codes of `n_codes` clips encoded once by the shipped tokenizer."""
    tokenizer = load_tokenizer_if_shipped(device=S.device)
    if tokenizer is None:
        raise FileNotFoundError("the contest's prior needs chapter 05's shipped tokenizer in data/weights/")
    codes, _ = encode_dataset(tokenizer, data, n_codes, device=S.device)
    sizes = [dict(n_layer=2, n_head=2, n_embd=32), dict(n_layer=2, n_head=4, n_embd=64), {}][WIDE[S.profile]]
    config = videogpt_digits(vocab_size=tokenizer.cfg.codebook_size, grid=tuple(codes.shape[1:]), num_classes=0,
                             **sizes)
    torch.manual_seed(0)
    prior = GPT(config).to(S.device)
    optimizer = prior.configure_optimizers(0.1, 8e-4)
    cap = 1_000_000
    no_labels = torch.zeros(len(codes), dtype=torch.long, device=codes.device)   # an unconditional prior
    trainer = Trainer(prior, optimizer, TokenBatches(codes, no_labels, pick(smoke=2, cpu=16, gpu=256), seed=0),
                      TrainConfig(steps=cap, max_minutes=contest_cap, log_every=log_every_c, desc="GPT prior"),
                      loss_fn=prior_loss,
                      schedulers={"main": warmup_cosine(optimizer, pick(smoke=1, cpu=20, gpu=200), cap, final=0.1)})
    record = run(trainer)
    clips, _, _ = sample_videos(prior, tokenizer, n=n_gen_c, seed=1)
    return record, clips.float().clamp(-1, 1).cpu()


def diffusion_samples(model, schedule) -> torch.Tensor:
    """n_gen_c clips by DDIM, 50 steps at η = 1 (fresh noise at every step, as chapters 08 and 11 sample)."""
    shape = (n_gen_c, data.channels, data.frames, data.size, data.size)
    return ddim_sample_chunked(model.eval(), shape, schedule, pick(smoke=2, cpu=20, gpu=50), chunk=192, eta=1.0,
                               generator=torch.Generator(S.device).manual_seed(1)).clamp(-1, 1).cpu()


def unet() -> tuple[dict, torch.Tensor]:
    """Chapter 08's U-Net (levels 32/16/8), ε-prediction on the linear schedule, AdamW 5e-4, warm-up, cosine."""
    config = [video_unet_small(frames=16, base_channels=8, norm_groups=4, heads=2),
              video_unet_small(frames=16, base_channels=16, norm_groups=8, heads=2),
              video_unet_small(frames=16, base_channels=64, norm_groups=32)][WIDE[S.profile]]
    torch.manual_seed(0)
    model = VideoUNet(config).to(S.device)
    trainer = make_trainer(model, stream, 1_000_000, lambda m, b: diffusion_loss(m, b.video, linear_T), lr=5e-4,
                           warmup=pick(smoke=1, cpu=25, gpu=250), decay_to=0.1, minutes=contest_cap,
                           log_every=log_every_c, desc="DDPM U-Net")
    record = run(trainer)
    return record, diffusion_samples(model, linear_T)


def dit_config() -> DiTConfig:
    """Chapter 11's DiT (8 blocks of 384, patch 4, one-frame tubelets; patch 8 on a CPU, as chapter 11 there)."""
    depth, width, heads = [(1, 32, 2), (2, 64, 4), (8, 384, 6)][WIDE[S.profile]]
    return DiTConfig(input_size=32, frames=16, in_channels=1, num_classes=0, temporal_patch=1,
                     patch_size=pick(smoke=8, cpu=8, gpu=4), depth=depth, hidden_size=width, num_heads=heads)


def dit(config: DiTConfig | None = None) -> tuple[dict, torch.Tensor]:
    """A DiT (default: `dit_config()`) with chapter 11's recipe: v-prediction on the cosine schedule, AdamW 3e-4,
    β = (0.9, 0.99), warm-up, cosine to a tenth."""
    torch.manual_seed(0)
    model = VPrediction(DiT(config or dit_config()), cosine_T).to(S.device)
    trainer = make_trainer(model, stream, 1_000_000, lambda m, b: diffusion_loss(m, b.video, cosine_T, pixels=True),
                           lr=3e-4, warmup=pick(smoke=1, cpu=20, gpu=200), decay_to=0.1, betas=(0.9, 0.99),
                           minutes=contest_cap, log_every=log_every_c, desc="DiT")
    record = run(trainer)
    return record, diffusion_samples(model, cosine_T)


FAMILIES = {"MoCoGAN": ("GAN + VAE", mocogan), "GPT prior": ("transformers", gpt_prior),
            "DDPM U-Net": ("diffusion", unet), "DiT": ("DiT", dit)}
contest, contest_clips = {}, {}
for name, (era, train_and_sample) in FAMILIES.items():
    contest[name], contest_clips[name] = train_and_sample()
    contest[name]["era"] = era
    print(f"{name:11s} {contest[name]['parameters'] / 1e6:6.2f}M parameters, {contest[name]['steps']:6d} steps in "
          f"{contest[name]['minutes']:.2f} min ({contest[name]['stopped_by']}), "
          f"{num(contest[name]['train_flops'], '.3g')} training FLOPs")

# %% [markdown]
# The four, scored with the protocol beside the reference rows at the same n, and the story's steps read:

# %%
evaluator_c = PROTOCOL.evaluator(S.device, n_real=n_real_c)
rows_c = reference_rows(evaluator_c, n=n_gen_c)
floor_c = floor_fd(rows_c)
for name, clips in contest_clips.items():
    contest[name] |= score(evaluator_c, clips)
print(format_rows(rows_c | contest, ("fd", "frame_quality", "identity_consistency", "motion_consistency",
                                     "diversity")))
contest_passed = past_the_floor(contest, floor_c)
matched_runs = [n for n, r in contest.items() if contest_budget and r["stopped_by"] == "steps"]
story = {}
for earlier, later in zip(list(contest), list(contest)[1:]):
    d, se = difference(contest[later]["fd"], contest[later]["fd_se"], contest[earlier]["fd"], contest[earlier]["fd_se"])
    readable = all(n in contest_passed and n in matched_runs for n in (earlier, later))
    step = verdict(d, 0.0, se) if readable else "not resolved"       # 'met': the later family is lower
    story[f"{earlier} -> {later}"] = {"later_minus_earlier": d, "se": se, "readable": readable,
                                      "outcome": BAR_TO_CLAIM[step]}
    print(f"{earlier} -> {later}: fd {d:+.2f} ± {se:.2f} -> {story[f'{earlier} -> {later}']['outcome']}"
          + ("" if readable else " (a model above the floor, or a run not matched)"))
story_claim = combined([s["outcome"] for s in story.values()])          # every step supported, or any not
print(f"-> each era improves on the last, at {num(contest_budget, '.2g')} training FLOPs each: {story_claim}")

# %% [markdown]
# Samples of the families past the floor, two clips each (every other frame); a family above it draws closer to
# noise than to digits, and is named above instead of shown.

# %%
shown = {f"{name} {i}": contest_clips[name][i] for name in contest_passed for i in range(2)}
filmstrip(shown) if shown else print("no family is past the floor at this budget")

# %% [markdown]
# **Reading it.** One budget asks one question: which family learns most from a fixed, small amount of compute, on
# 32×32 digits. It does not ask which family is best. A family whose case rests on scale (the DiT: no built-in
# notion of locality, so it must learn what a convolution is given) can lose at a small budget and still win at a
# large one; chapter 11's scaling study asks that question at matched FLOPs, and the ledger above says what it could
# read (a study whose models are above the floor reads "not resolved"). A run that the time cap stopped did not spend
# the budget, and its step of the story reads "not resolved" for that reason alone.

# %% [markdown]
# ## Results
#
# The table, the pairwise differences and the ledger go to `results/13_capstone.json`; its headline counts the
# families past the floor and the claims by outcome.

# %%
results.record("13_capstone", {
    "headline": {"models": len(table), "past_the_floor": len(passed), "below_frozen_frames": len(below_frozen),
                 "best": ranked[0] if ranked else None,
                 "best_fd": table[ranked[0]]["fd"] if ranked else None,
                 "best_fd_se": table[ranked[0]]["fd_se"] if ranked else None,
                 "claims_supported": tally["supported"], "claims_not_supported": tally["not supported"],
                 "claims_not_resolved": tally["not resolved"], "contest_story": story_claim},
    "floor": floor, "table": table, "past_the_floor": passed, "differences_from_best": pairs, "claims": ledger,
    "contest": {"budget_flops": contest_budget, "floor": floor_c, "models": contest, "past_the_floor": contest_passed,
                "story": story, "outcome": story_claim},
}, started=STARTED)

# %% [markdown]
# ## Exercises
#
# Fill in each stub, run the cell, and the check says *pass*, what is wrong, or *not attempted yet*.
# `vgcourse.exercises.solution("name")` returns the reference solution; try first.
#
# **1. The error of a difference.** Two independent estimates a ± se_a and b ± se_b: return a − b and its
# standard error.

# %%
from vgcourse.exercises import check, solution


def difference_with_se(a: float, se_a: float, b: float, se_b: float) -> tuple[float, float]:
    # YOUR CODE HERE: variances add for independent estimates
    raise NotImplementedError


check("difference_with_se", difference_with_se)

# %% [markdown]
# **2. Three outcomes.** A claim's measured value, the line it must beat and the value's standard error: return
# "supported" when the value beats the line by at least one standard error, "not supported" when it misses by more
# than one, "not resolved" in between. `lower_is_better` says which side beats.

# %%
def claim_outcome(value: float, line: float, se: float, lower_is_better: bool = True) -> str:
    # YOUR CODE HERE
    raise NotImplementedError


check("claim_outcome", claim_outcome)

# %% [markdown]
# **3. Predict, then see: a stricter line.** The course shows a model's samples when its fd is below the floor by
# one standard error. Suppose the line were the frozen-frame row instead: a model would have to draw motion at least
# as well as a still picture. Before running the next cell, predict from the table which models would pass. Then
# write `below(table, line)`: the names whose fd is below `line` by at least one of their standard errors, in the
# table's order.

# %%
def below(table: dict[str, dict], line: float) -> list[str]:
    # YOUR CODE HERE: table maps a name to {'fd': ..., 'fd_se': ..., ...}
    raise NotImplementedError


check("below", below)

# %%
for label, line in [("the floor", floor), ("frozen frames", rows["frozen frames"]["fd"]),
                    ("real clips", rows["real"]["fd"])]:
    try:
        names = below(table, line)
    except NotImplementedError:
        names = None
    print(f"below {label} ({line:.1f}): {'(fill in `below` first)' if names is None else names or 'none'}")

# %% [markdown]
# **4. Predict, then see: a coarser DiT.** Patches twice as wide a side hold four times the pixels each, so a clip
# is a quarter of the tokens: attention's cost falls by more than four, the rest by about four, and the same budget
# buys about five times the steps (on the GPU; on a CPU, where the FLOP counter misses attention, about three), each
# seeing the clip at a coarser grain. Before running, predict: at the contest's budget, does the DiT's fd go down
# (more steps win) or up (coarser tokens lose)? Write `coarser(config)`: the same DiT with twice the patch size,
# everything else kept. The cell after it trains that DiT with the contest's recipe and budget and scores it beside
# the contest's DiT.

# %%
from dataclasses import replace  # noqa: F401  (for your answer)


def coarser(config: DiTConfig) -> DiTConfig:
    # YOUR CODE HERE: dataclasses.replace(...) with the patch size doubled
    raise NotImplementedError


check("coarser_dit", coarser)

# %%
coarse_fn = coarser if check("coarser_dit", coarser).passed else solution("coarser_dit")
coarse_record, coarse_clips = dit(coarse_fn(dit_config()))
coarse = coarse_record | score(evaluator_c, coarse_clips)
d_coarse, se_coarse = difference(coarse["fd"], coarse["fd_se"], contest["DiT"]["fd"], contest["DiT"]["fd_se"])
print(f"patch {coarse_fn(dit_config()).patch_size}: {coarse['steps']} steps ({coarse['stopped_by']}), fd "
      f"{coarse['fd']:.2f} ± {coarse['fd_se']:.2f}; patch {dit_config().patch_size}: {contest['DiT']['steps']} steps, "
      f"fd {contest['DiT']['fd']:.2f} ± {contest['DiT']['fd_se']:.2f}; coarser minus finer {d_coarse:+.2f} ± "
      f"{se_coarse:.2f}")

# %%
print(f"chapter wall time: {(time.time() - STARTED) / 60:.1f} min")
