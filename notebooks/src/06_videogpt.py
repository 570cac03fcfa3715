# %% [markdown]
# # 06 · VideoGPT, NÜWA, CogVideo: a GPT over space-time tokens
#
# **What this chapter builds.** The second stage of VideoGPT: a GPT that writes a clip one token at a time. A VQ-VAE
# tokenizer (chapter 05's, loaded from the weights the course ships) turns every 16-frame clip into a 4 × 8 × 8
# grid of codes; we encode the training clips once and train a causal transformer on the flattened grids, with a
# position for each (t, h, w) cell and a class token that says which two digits the clip shows. We build the causal
# block, the next-token loss and the training step by hand and check each against the package, train the package's
# 26M-parameter prior compiled in bf16, sample with a key-value cache (and measure what the cache saves), decode the
# codes back to pixels and score the clips with the course's protocol. Then two descendants: NÜWA's 3D nearby
# attention, as a mask over the token grid, with its cost as the grid grows, and CogVideo's dual-channel attention
# (a frozen spatial channel beside a trained temporal one), written and checked but not trained.
#
# **Where it sits in the history.** The Transformer era of the survey (§2.1–2.2), after chapter 05's tokenizers:
#
# - Chen et al. 2020 (**Image GPT**) and Esser, Rombach & Ommer 2021 (**VQ-GAN + transformer**) showed that a GPT over
#   pixels or image codes draws images; Weissenborn et al. 2020 (**Video Transformer**) modelled video pixels
#   autoregressively, at great cost.
# - Yan, Zhang, Abbeel & Srinivas 2021 (**VideoGPT**, this chapter): a VQ-VAE with 3D convolutions and axial
#   attention, then a GPT over the flattened space-time codes, with learned positions per axis and conditioning by a
#   class token or by the codes of given frames.
# - Wu et al. 2022 (**NÜWA**): one 3D transformer for images and videos, whose tokens attend only to a nearby box of
#   cells in time, height and width (3D nearby attention, §5 here).
# - Hong et al. 2023 (**CogVideo**): a 9B-parameter video GPT built on a pretrained text-to-image GPT (CogView2), with
#   dual-channel attention and a frame-rate token (§6 here: the dual channel checked, not trained).
# - Masked transformers (MaskGIT, Phenaki, chapter 07) then drew all tokens in a few parallel steps instead of one
#   at a time; diffusion (chapters 08–12) took over the field.
#
# **Time per profile.** The same code runs in every profile; only sizes change (chosen below with `pick`).
#
# | profile | tokenizer | prior | training | time |
# |---|---|---|---|---|
# | `smoke` | tiny (16 channels, 32 codes) | 2 layers × 32 | 2 + 2 steps | under 1 min on 2 CPU cores (checks only) |
# | `cpu` | 32 channels, 512 codes | 4 layers × 128 | 2 min + 3 min | ≈ 5 min on 2 CPU cores |
# | `gpu` | 64 channels, 512 codes, 1.1M (shipped) | 8 layers × 512, 26M | 5.5 min, compiled | ≈ 9 min on one H100 |
#
# The smoke profile only checks that everything runs; the cpu profile draws blurred digits; the committed outputs
# come from the gpu profile.

# %%
import copy
import math
import time
from dataclasses import asdict

import torch
import torch.nn.functional as F
from einops import rearrange
from matplotlib.figure import Figure

from vgcourse.profiles import exact_fp32, pick, setup

STARTED = time.time()
S = setup(seed=0)          # prints profile, device, precision, compile, torch version

# %%
from vgcourse import results
from vgcourse.autoregressive import (
    GPT,
    NUM_PAIRS,
    DualChannelAttention,
    GPTConfig,
    TokenBatches,
    encode_dataset,
    flops_per_token,
    gpt_tiny,
    heldout_bits,
    load_tokenizer_if_shipped,
    pair_digits,
    pair_label,
    prior_loss,
    sample_videos,
    videogpt_digits,
)
from vgcourse.autoregressive.videogpt import TOKENIZER_NAME
from vgcourse.checkpoint import shipped_hashes
from vgcourse.display import filmstrip, plot_curves, show_video
from vgcourse.exercises import check, solution
from vgcourse.metrics import PROTOCOL, psnr, reference_rows, score, track_centroids, verdict
from vgcourse.metrics.disentanglement import digit_sets
from vgcourse.metrics.protocol import format_rows, headline, mean_se
from vgcourse.metrics.tracking import motion_stats
from vgcourse.nn import Attention, Block, count_parameters, nearby_mask, nearby_pairs, pair_flops
from vgcourse.results import PartTimer, seconds_per_call
from vgcourse.tokenizers import VQVideoAutoencoder, vq_digits, vq_loss, vq_tiny
from vgcourse.train import TrainConfig, Trainer, warmup_cosine

timer = PartTimer(STARTED)  # minutes of each part of the chapter, printed as it goes

# %% [markdown]
# ## Sizes for this profile
#
# Everything that changes between profiles is chosen here, in plain view. The data is the course's protocol: moving
# digits at 32 × 32, 16 frames, 2 digits, scored on 384 generated clips against the 512-clip held-out reference. On
# the GPU the prior's training is bounded by minutes (`max_minutes`, compilation included), as is the tokenizer's
# where it has to be trained; the loop plans the last step that fits and ends the learning-rate decay there.

# %%
data = PROTOCOL.dataset()                                    # moving digits, 32×32, 16 frames, 2 digits
frames, size = data.frames, data.size
tokenizer_config = pick(smoke=vq_tiny(downsample=(4, 4, 4)),
                        cpu=vq_digits(hidden_channels=32, norm_groups=8, heads=2), gpu=vq_digits())
tok_minutes = pick(smoke=None, cpu=2.0, gpu=1.5)             # the tokenizer's budget
tok_batch, tok_lr = pick(smoke=2, cpu=8, gpu=64), pick(smoke=1e-3, cpu=2e-3, gpu=1e-3)
n_train = pick(smoke=64, cpu=4_096, gpu=196_608)             # training clips encoded once for the prior
n_val = pick(smoke=16, cpu=512, gpu=2_048)                   # held-out clips encoded, for held-out bits per token
prior_sizes = dict(smoke=dict(n_layer=2, n_head=2, n_embd=32), cpu=dict(n_layer=4, n_head=4, n_embd=128),
                   gpu=dict(n_layer=8, n_head=8, n_embd=512))  # gpu: VideoGPT's BAIR prior size
prior_minutes = pick(smoke=None, cpu=3.0, gpu=5.5)           # the prior's budget
batch = pick(smoke=4, cpu=32, gpu=256)                       # clips (of 256 codes) per step
lr, warmup, weight_decay = pick(smoke=1e-3, cpu=1e-3, gpu=8e-4), pick(smoke=1, cpu=50, gpu=200), 0.1
steps = pick(smoke=2, cpu=100_000, gpu=100_000)              # a cap; on cpu and gpu the time budget decides
log_every = pick(smoke=1, cpu=10, gpu=50)
n_gen = pick(smoke=4, cpu=32, gpu=PROTOCOL.n_gen)            # generated clips scored (the protocol's n)
n_real = pick(smoke=32, cpu=256, gpu=PROTOCOL.n_real)        # held-out reference clips
n_cond = pick(smoke=4, cpu=45, gpu=450)                      # class-conditioned clips (10 per distinct pair on gpu)
n_cond_val = pick(smoke=4, cpu=45, gpu=90)                   # validation clips that choose the guidance scale
p_uncond, guidance_grid = 0.1, (1.0, 2.0, 3.0)               # label dropout in training; guidance scales tried
n_speed = pick(smoke=2, cpu=8, gpu=64)                       # clips for the cached vs uncached timing
print(f"data: {data}")
print(f"tokenizer: {tokenizer_config.hidden_channels} channels, downsample {tokenizer_config.downsample}, "
      f"{tokenizer_config.codebook_size} codes; prior {prior_sizes[S.profile]}; {n_train:,} training clips encoded; "
      f"batch {batch}, lr {lr:g}; {n_gen} generated clips against {n_real} held-out")

# %% [markdown]
# The data: two handwritten digits bouncing off the walls (chapter 00). Each clip carries the classes of its two
# digits, which §4 uses as the class.

# %%
# NBVAL_IGNORE_OUTPUT
show_video(data.batch(8, seed=1).video, nrow=4, caption="real clips")

# %% [markdown]
# ## 1 · Tokens: the VQ-VAE of chapter 05
#
# The prior models codes, so the tokenizer comes first. If the course ships a trained tokenizer
# (`data/weights/tokenizer_moving_digits_vq.pt`, its sha256 listed in `data/weights/SHA256SUMS`), it is loaded and its
# hash checked (a file that does not match stops the notebook with an error that says so); otherwise we train one
# with chapter 05's recipe: VideoGPT's objective ‖x − x̂‖²/0.06 + β‖z − sg[e]‖², an EMA codebook with dead-code
# restarts, AdamW, bf16 and `torch.compile` on the GPU. Chapter 05 explains each piece.

# %%
timer.start()
tokenizer = load_tokenizer_if_shipped(device=S.device)
tok_summary = None
if tokenizer is None and S.profile == "gpu":   # the gpu profile's minutes are planned for the shipped tokenizer
    raise FileNotFoundError(f"data/weights/{TOKENIZER_NAME}.pt is missing: build chapter 05 and ship its tokenizer "
                            "(README, maintainers' section) before chapter 06's gpu run")
if tokenizer is not None and tokenizer.cfg != vq_digits():
    raise ValueError(f"the shipped tokenizer's config {asdict(tokenizer.cfg)} is not chapter 05's vq_digits(); "
                     "this chapter's sizes and text are written for vq_digits()")
if tokenizer is None:
    torch.manual_seed(0)
    tokenizer = VQVideoAutoencoder(tokenizer_config).to(S.device)
    tok_opt = torch.optim.AdamW(tokenizer.parameters(), lr=tok_lr, weight_decay=0.0, fused=S.device.type == "cuda")
    tok_trainer = Trainer(tokenizer, tok_opt, data.stream(tok_batch, seed=0, device=S.device),
                          TrainConfig(steps=steps, max_minutes=tok_minutes, compile=S.compile, log_every=log_every,
                                      desc="tokenizer"),
                          loss_fn=lambda model, b: vq_loss(model, b.video),
                          schedulers={"main": warmup_cosine(tok_opt, pick(smoke=1, cpu=20, gpu=100), steps,
                                                            final=0.05)},
                          model_config=asdict(tokenizer_config))
    tok_summary = tok_trainer.fit()
    print(f"tokenizer trained: {tok_summary.steps} steps in {tok_summary.wall_time_s / 60:.2f} min")
    source = "trained here"
else:
    source = f"shipped (sha256 {shipped_hashes()[TOKENIZER_NAME][:12]}, checked)"
tokenizer = tokenizer.eval()
grid = tokenizer.latent_shape(frames, size, size)            # (t, h, w) codes of a clip
timer.lap("tokenizer")
print(f"tokenizer {source}: {count_parameters(tokenizer) / 1e6:.2f}M parameters, "
      f"code grid {grid} = {math.prod(grid)} codes of {tokenizer.cfg.codebook_size}")

# %% [markdown]
# A prior can draw no better clips than the decoder makes from codes, so we score the tokenizer's reconstructions of
# held-out clips by the protocol, beside the reference rows (real clips, shuffled frames, frozen frames, noise, the
# mean video) at the same number of clips. This is the floor under the prior's fd.

# %%
timer.start()
evaluator = PROTOCOL.evaluator(S.device, n_real=n_real)
rows = reference_rows(evaluator, n=n_gen)
heldout = data.batch(n_gen, seed=7, split="heldout", device=S.device)


@torch.no_grad()
def reconstruct(video: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    return torch.cat([tokenizer(x)[0].float().clamp(-1, 1) for x in video.split(chunk)])


recon = reconstruct(heldout.video)
recon_psnr = psnr(recon, heldout.video).double()
tok_scores = score(evaluator, recon)
timer.lap("reference rows and the tokenizer's reconstructions")
print(f"held-out PSNR {recon_psnr.mean():.2f} ± {recon_psnr.std() / len(recon_psnr) ** 0.5:.2f} dB")
print(format_rows(rows | {"reconstructions": tok_scores},
                  metrics=("fd", "frame_quality", "identity_consistency", "motion_consistency")))

# %% [markdown]
# Then the training clips are encoded once, on the device, with the label of each (§4): the prior trains on batches
# of codes drawn from this set and never runs the tokenizer again. A few held-out clips are encoded too, to measure
# the prior's likelihood on clips it never saw.

# %%
timer.start()
train_codes, train_labels = encode_dataset(tokenizer, data, n_train, chunk=1024, seed=1, device=S.device)
val_codes, val_labels = encode_dataset(tokenizer, data, n_val, chunk=1024, seed=2, split="heldout", device=S.device)
timer.lap("encoding")
print(f"training codes {tuple(train_codes.shape)} ({train_codes.numel():,} tokens), held-out {tuple(val_codes.shape)}")
print("the first clip's first latent frame:\n", train_codes[0, 0].cpu())

# %% [markdown]
# ## 2 · The prior: a GPT over the flattened grid
#
# VideoGPT flattens the t × h × w grid in raster order (t, then h, then w) into a sequence x₁ … x_L (L = 256 here)
# and factorises the likelihood as p(x) = ∏ᵢ p(xᵢ | x₍<ᵢ₎) (Yan et al. 2021, §3.2). A transformer with causal
# self-attention gives every position the logits of its code from the codes before it; the input at position i is
# code i − 1 (a start token at i = 0), plus a learned embedding of the (t, h, w) cell of code i. VideoGPT learns one
# table per axis and combines them; ours sums a vector for t, one for h and one for w, T + H + W vectors instead of
# T·H·W.
#
# ### The causal block, by hand
#
# Attention (Vaswani et al. 2017, eq. (1)) with the causal mask: softmax(QKᵀ/√d + M) V, where M is −∞ above the
# diagonal, so that position i reads positions ≤ i only. The pre-LN block (GPT-2) adds it to the residual stream, then
# an MLP: x ← x + attn(LN(x)); x ← x + mlp(LN(x)).

# %%
# NBVAL_CHECK_OUTPUT
def my_causal_attention(attn: Attention, x: torch.Tensor) -> torch.Tensor:
    """Causal multi-head self-attention on tokens x (B, L, D) with the layer's projections."""
    q, k, v = rearrange(attn.qkv(x), "b l (three h d) -> three b h l d", three=3, h=attn.heads)  # (B, heads, L, d)
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])                                   # (B, heads, L, L)
    future = torch.ones(x.shape[1], x.shape[1], dtype=torch.bool).triu(1)                       # j > i
    weights = scores.masked_fill(future, float("-inf")).softmax(-1)                             # rows sum to 1
    return attn.proj(rearrange(weights @ v, "b h l d -> b l (h d)"))                            # (B, L, D)


def my_block(block: Block, x: torch.Tensor) -> torch.Tensor:
    x = x + my_causal_attention(block.attn, block.norm1(x))       # pre-LN attention branch
    return x + block.mlp(block.norm2(x))                          # pre-LN MLP branch


torch.manual_seed(0)
block = Block(32, 4, causal=True).eval()
x = torch.randn(2, 24, 32)
with torch.no_grad():
    torch.testing.assert_close(my_block(block, x), block(x), rtol=1e-5, atol=1e-5)
    later = x.clone()
    later[:, 10:] += 1.0                                          # change tokens 10 … 23
    torch.testing.assert_close(my_block(block, later)[:, :10], my_block(block, x)[:, :10])
print("my_block matches vgcourse.nn.Block(causal=True); outputs before position 10 ignore tokens from 10 on")

# %% [markdown]
# ### The next-token loss, by hand
#
# The prior's loss is the mean negative log-likelihood of each code given the codes before it and the class,
# −(1/L) Σᵢ log p(xᵢ | x₍<ᵢ₎, y), in nats per code (divide by ln 2 for bits). The class enters as the start token:
# one learned start vector per class (id K + 1 + y in the embedding table, after the K codes and a plain start
# token). By hand, through the package's embedding tables and our block:

# %%
# NBVAL_CHECK_OUTPUT
def my_prior_loss(gpt: GPT, codes: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """codes (B, t, h, w), labels y (B,) -> mean cross-entropy of each code given those before it (nats/code)."""
    target = codes.flatten(1)                                                       # (B, L) raster order
    start = gpt.config.vocab_size + 1 + y                                           # (B,) the class's start token
    ids = torch.cat([start[:, None], target[:, :-1]], dim=1)                        # input i = code i − 1
    h = gpt.tok_emb(ids) + gpt.pos(0, ids.shape[1])                                 # (B, L, D) + cell positions
    for blk in gpt.blocks:
        h = my_block(blk, h)
    logits = gpt.head(gpt.ln_f(h))                                                  # (B, L, K)
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())                  # −log p(x_i | x_<i, y)


torch.manual_seed(0)
check_gpt = GPT(gpt_tiny(vocab_size=32, grid=(2, 3, 4), num_classes=NUM_PAIRS)).eval()
check_codes, check_y = torch.randint(32, (3, 2, 3, 4)), torch.tensor([0, 17, 54])
with torch.no_grad():
    mine = my_prior_loss(check_gpt, check_codes, check_y)
    torch.testing.assert_close(mine, check_gpt(check_codes, check_y)[1])
    torch.testing.assert_close(mine, prior_loss(check_gpt, (check_codes, check_y))["loss"])
print(f"my_prior_loss matches GPT.forward and prior_loss: {mine.item():.3f} nats = {mine.item() / math.log(2):.3f} "
      f"bits per code at initialisation (uniform over 32 codes: {math.log2(32):.3f} bits)")

# %% [markdown]
# ### The training step, by hand
#
# One step: zero the gradients, the loss, its backward, the gradient clipped to norm 1, an AdamW step with weight
# decay on the matrices only (nanoGPT's two groups, `GPT.configure_optimizers`), and the learning-rate schedule.
# We take three steps by hand and three with the package's training loop, from the same weights on the same batches,
# and compare the weights after.

# %%
# NBVAL_CHECK_OUTPUT
def my_train_step(gpt: GPT, optimizer: torch.optim.Optimizer, batch_: tuple[torch.Tensor, torch.Tensor]) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss = prior_loss(gpt, batch_)["loss"]                          # the loss checked equal to my_prior_loss above
    loss.backward()
    torch.nn.utils.clip_grad_norm_(gpt.parameters(), 1.0)           # the loop's default clip
    optimizer.step()
    return loss.item()


check_batches = TokenBatches(torch.randint(32, (16, 2, 3, 4)), torch.randint(NUM_PAIRS, (16,)), 4, seed=0)
mine_gpt, loop_gpt = copy.deepcopy(check_gpt).train(), copy.deepcopy(check_gpt).train()
my_opt = mine_gpt.configure_optimizers(weight_decay, 1e-2, device_type="cpu")
for step in range(3):
    my_train_step(mine_gpt, my_opt, check_batches(step))
loop = Trainer(loop_gpt, loop_gpt.configure_optimizers(weight_decay, 1e-2, device_type="cpu"), check_batches,
               TrainConfig(steps=3, measure_flops=False, progress=False, amp=False), loss_fn=prior_loss)
loop.fit()
for (name, a), b in zip(mine_gpt.named_parameters(), loop_gpt.parameters()):
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=name)
print("three of my_train_step leave the same weights as three steps of vgcourse.train.Trainer")

# %% [markdown]
# ### Training the package's prior
#
# The gpu profile's prior is VideoGPT's BAIR prior size: 8 blocks of 512 channels, 8 heads, about 26M parameters.
# It trains compiled in bf16 at 256 clips (65,536 codes) a step, AdamW (β₂ = 0.95, weight decay 0.1 on matrices),
# a linear warm-up and a cosine decay to a tenth. The loop counts the FLOPs of a step, so it reports MFU; tokens per
# second are clips per second × 256. In one clip of ten the class is replaced by "no class" (the plain start token,
# `NO_CLASS`), so that the same network also learns the unconditional p(x): §4 uses it for classifier-free guidance.

# %%
cfg = pick(smoke=GPTConfig(**prior_sizes["smoke"], vocab_size=tokenizer.cfg.codebook_size, grid=grid,
                           num_classes=NUM_PAIRS),
           cpu=GPTConfig(**prior_sizes["cpu"], vocab_size=tokenizer.cfg.codebook_size, grid=grid,
                         num_classes=NUM_PAIRS),
           gpu=videogpt_digits(vocab_size=tokenizer.cfg.codebook_size, grid=grid))
torch.manual_seed(0)
prior = GPT(cfg).to(S.device)
n_params = count_parameters(prior)
optimizer = prior.configure_optimizers(weight_decay, lr)
trainer = Trainer(prior, optimizer, TokenBatches(train_codes, train_labels, batch, seed=0, p_uncond=p_uncond),
                  TrainConfig(steps=steps, max_minutes=prior_minutes, compile=S.compile, log_every=log_every,
                              desc="GPT prior"),
                  loss_fn=prior_loss, schedulers={"main": warmup_cosine(optimizer, warmup, steps, final=0.1)},
                  model_config=asdict(cfg))
print(f"prior: {n_params / 1e6:.2f}M parameters, {cfg.n_layer} layers × {cfg.n_embd}, {cfg.n_head} heads, "
      f"{flops_per_token(cfg) / 1e6:.0f} MFLOPs per token (6N + 12·layers·D·L)")
timer.start()
summary = trainer.fit()
timer.lap("prior")
prior = prior.eval()
tokens_per_s = None if summary.samples_per_s is None else summary.samples_per_s * cfg.block_size
train_bits = trainer.history[-1]["bits_per_token"]
val_bits = heldout_bits(prior, val_codes, val_labels)
epochs = summary.steps * batch / n_train
print(f"{summary.steps} steps in {summary.wall_time_s / 60:.2f} min ({epochs:.1f} passes over the encoded clips), "
      f"{'n/a' if tokens_per_s is None else f'{tokens_per_s:,.0f}'} tokens/s, "
      f"MFU {'n/a' if summary.mfu is None else f'{summary.mfu:.1%}'} on {summary.device}")
print(f"bits per token: {train_bits:.3f} on the last training batches, {val_bits:.3f} on {n_val:,} held-out clips "
      f"(uniform: {math.log2(cfg.vocab_size):.0f})")
plot_curves(trainer.history, keys=["bits_per_token"], smooth=0.5, title="prior: training bits per token")

# %% [markdown]
# What to look for: the bits per token fall fast while the prior learns which codes are common (the background),
# then slowly while it learns digits and motion; a held-out value close to the training one says the prior has not
# memorised its training clips.
#
# ## 3 · Sampling with a key-value cache
#
# Drawing a clip takes L = 256 steps, each sampling one code from softmax(logits / temperature) and feeding it back.
# Without a cache, step i runs the transformer on all i codes so far (nanoGPT's `generate`): the whole clip costs
# about L²/2 token-passes. The cache keeps every layer's keys and values of the codes already seen, so step i runs
# the transformer on the newest code only and attends to the cached keys: L token-passes in all. The logits are the
# same, which we check on held-out clips (full teacher-forced pass against one code at a time, in fp32), and time
# both ways.

# %%
with torch.no_grad(), exact_fp32():                               # exact fp32 for the comparison
    codes4, y4 = val_codes[:4].long().flatten(1), val_labels[:4]
    full_logits, _ = prior(codes4, y4)                             # (4, L, K) all positions at once
    ids = torch.cat([prior.start_ids(4, y4, S.device), codes4[:, :-1]], dim=1)
    cache = prior.new_cache()
    stepped = torch.cat([prior.logits(ids[:, i:i + 1], cache) for i in range(ids.shape[1])], dim=1)
cache_gap = (stepped - full_logits).abs().max().item()
torch.testing.assert_close(stepped, full_logits, rtol=1e-3, atol=1e-3)
print(f"cached logits equal the full pass: largest difference {cache_gap:.1e}")

speed_y = train_labels[:n_speed]
sample_videos(prior, tokenizer, y=speed_y[:2], seed=3)             # warm-up: first calls of the sampling kernels
_, cached_codes, cached_s = sample_videos(prior, tokenizer, y=speed_y, seed=3)
_, uncached_codes, uncached_s = sample_videos(prior, tokenizer, y=speed_y, seed=3, use_cache=False)
same_samples = (cached_codes == uncached_codes).float().mean().item()
print(f"{n_speed} clips: {1e3 * cached_s:.1f} ms per clip with the cache, {1e3 * uncached_s:.1f} ms without "
      f"({uncached_s / cached_s:.1f}x); {same_samples:.1%} of the codes drawn the same under one seed")

# %% [markdown]
# (Under bf16 the two ways round differently, so a few draws can fall on the other side of a sampling threshold and
# the clips part ways from there; in fp32 the package's test finds them identical.)
#
# Now the protocol's 384 clips. The prior is class-conditional, so to sample from the model's p(x) we draw a class
# from the data's own pair frequencies and then a clip given that class: p(x) = Σ_y p(y) p(x | y), an exact sample of
# the marginal. Temperature 1, no top-k: the model's own distribution.

# %%
timer.start()
asked = pair_label(data.batch(n_gen, seed=11).labels["classes"]).to(S.device)    # y ~ p(y), the data's pairs
samples, sample_codes, sample_s = sample_videos(prior, tokenizer, y=asked, seed=0)
gpt_scores = score(evaluator, samples)
timer.lap("sampling and scoring")
print(f"{n_gen} clips drawn in {sample_s * n_gen:.1f} s: {1e3 * sample_s:.1f} ms per clip (codes; decoding left out)")
try:  # chapter 08's committed gpu results, for scale
    ddpm_ms = results.load("08_ddpm_video")["metrics"]["sampling_ms_per_clip"]
    print(f"chapter 08 on its GPU: DDPM {ddpm_ms['DDPM']:.0f} ms per clip, DDIM with 50 steps {ddpm_ms['DDIM 50']:.0f}")
except (FileNotFoundError, KeyError):
    print("chapter 08's results are not here to compare with")
print(format_rows(rows | {"reconstructions": tok_scores, "VideoGPT prior": gpt_scores},
                  metrics=("fd", "frame_quality", "identity_consistency", "motion_consistency", "diversity")))


# %%
filmstrip({f"VideoGPT, clip {i}": samples[i] for i in range(min(4, n_gen))})

# %%
# NBVAL_IGNORE_OUTPUT
show_video(samples[:16], nrow=8, caption="samples of the GPT prior, decoded by the tokenizer")

# %% [markdown]
# ### Bars
#
# The bars of this chapter (meant for the gpu profile; smoke and cpu are far too short): fd below 6 and identity
# consistency at least 0.7, each beaten by one standard error (fd's jackknife SE; for the identity, the standard error
# of the mean over clips of each clip's own identity consistency).

# %%
identity, identity_se = mean_se(evaluator.digits_per_clip(samples)["identity_consistency"])   # clip by clip
bars = {"fd < 6": verdict(gpt_scores["fd"], 6.0, gpt_scores["fd_se"]),
        "identity consistency >= 0.7": verdict(identity, 0.7, identity_se, lower_is_better=False)}
for name, outcome in bars.items():
    print(f"{'✔' if outcome == 'met' else '✘'} {name}: {outcome}")
print(f"fd {gpt_scores['fd']:.2f} ± {gpt_scores['fd_se']:.2f} (frozen frames {rows['frozen frames']['fd']:.2f}, "
      f"reconstructions {tok_scores['fd']:.2f}); identity {identity:.3f} ± {identity_se:.3f}")

# %% [markdown]
# **Reading it.** The reconstructions' row is the floor: the prior's clips are decoded by the same decoder, so only
# the gap between the two rows is the prior's. Sampling costs one transformer pass per code, 256 sequential steps
# however many clips run in parallel; chapter 08's diffusion model takes 1000 denoising steps of a whole clip with
# its ancestral sampler, or 10 to 100 with DDIM (its times per clip are printed above).
#
# ## 4 · Conditioning: the class token, and the first frames
#
# Every clip was trained with its digit pair {a, b} as the start token, so asking for a pair is choosing the start
# token. We ask for each of the 45 pairs of two different digits equally often and read the clips back with the frame
# probe: a clip shows the asked digits when the two classes the probe ranks highest, in most frames, are the asked
# pair (the digit-set reading of `identity_consistency`). Pairs of one digit twice are left out: the probe reads a
# set of two classes. The same reading on real clips with known digits is the ceiling of this measure.
#
# **Classifier-free guidance, autoregressively.** The prior also knows p(x) (the clips trained without their class),
# so each step's logits can be pushed towards the class: ℓ(∅) + s (ℓ(y) − ℓ(∅)), both read on the codes drawn so far
# (Ho & Salimans 2022 on diffusion; the same trick on next-token logits is how autoregressive text-to-image models
# such as Parti sharpen their conditioning). s = 1 is the conditional prior itself. The scale is chosen among
# s = 1, 2, 3 on validation clips (other seeds, two per pair), then the bar is read once at the chosen scale.

# %%
timer.start()
pairs = pair_digits(torch.arange(NUM_PAIRS))                                      # (55, 2) digits a ≤ b
distinct = torch.arange(NUM_PAIRS)[pairs[:, 0] != pairs[:, 1]]                      # the 45 pairs a ≠ b
want_y = distinct.repeat(n_cond // len(distinct) + 1)[:n_cond].to(S.device)
val_y = distinct.repeat(n_cond_val // len(distinct) + 1)[:n_cond_val].to(S.device)


def asked_sets(y: torch.Tensor) -> torch.Tensor:
    """Pair ids (N,) -> the digit-set bitmask 2^a + 2^b that the frame probe's reading is compared with."""
    return (2 ** pair_digits(y.cpu())).sum(1)


def accuracy(videos: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    hit = (digit_sets(evaluator, videos) == asked_sets(y)).float()
    p = hit.mean().item()
    return p, math.sqrt(p * (1 - p) / len(hit))


val_acc = {s: accuracy(sample_videos(prior, tokenizer, y=val_y, seed=21, guidance=s)[0], val_y)[0]
           for s in guidance_grid}
guidance = max(guidance_grid, key=lambda s: (val_acc[s], -s))      # ties: the weaker guidance
print(f"validation clips (n = {len(val_y)}), asked digits shown by guidance scale: "
      + ", ".join(f"s = {s:g}: {a:.1%}" for s, a in val_acc.items()) + f" -> s = {guidance:g}")
cond_samples, _, guided_s = sample_videos(prior, tokenizer, y=want_y, seed=1, guidance=guidance)
plain_samples = cond_samples if guidance == 1.0 else sample_videos(prior, tokenizer, y=want_y, seed=1)[0]
cond_acc, cond_se = accuracy(cond_samples, want_y)
plain_acc, plain_se = accuracy(plain_samples, want_y)
real_batch = data.batch(4 * n_cond, seed=12, split="heldout", device=S.device)
keep = real_batch.labels["classes"][:, 0] != real_batch.labels["classes"][:, 1]
real_acc, real_se = accuracy(real_batch.video[keep][:n_cond], pair_label(real_batch.labels["classes"][keep][:n_cond]))
class_bar = verdict(cond_acc, 0.9, cond_se, lower_is_better=False)
timer.lap("class conditioning")
print(f"asked digits shown in {cond_acc:.1%} ± {cond_se:.1%} of {len(want_y)} clips at s = {guidance:g} "
      f"({1e3 * guided_s:.1f} ms per clip); without guidance {plain_acc:.1%} ± {plain_se:.1%}; real clips read the "
      f"same way: {real_acc:.1%} ± {real_se:.1%}; chance ≈ {1 / 45:.1%}")
print(f"{'✔' if class_bar == 'met' else '✘'} asked digits in >= 90% of clips: {class_bar}")
print("asked pairs of the first clips:", [tuple(pair_digits(want_y[i:i + 1].cpu())[0].tolist())
                                         for i in range(min(4, n_cond))])
filmstrip({f"asked, clip {i}": cond_samples[i] for i in range(min(4, n_cond))})

# %% [markdown]
# **First frames.** An autoregressive prior continues any prefix exactly: the codes of given frames are the first
# codes of the sequence, and sampling goes on from there (VideoGPT conditions on frames this way, and with a frame
# encoder read by cross-attention for BAIR). Our first latent frame covers the first four video frames, so we give the
# prior the codes of held-out clips' first latent frame, with their class, and let it draw the remaining twelve
# frames.

# %%
given = encode_dataset(tokenizer, data, 4, seed=7, split="heldout", device=S.device)
prefix = given[0][:, :1].flatten(1).long()                       # (4, h·w) codes of the first latent frame
continued, _, _ = sample_videos(prior, tokenizer, y=given[1], prefix=prefix, seed=2)
originals = data.batch(4, seed=7_000_000, split="heldout", device=S.device).video
filmstrip({f"{name}, clip {i}": video[i] for i in (0, 1)
           for name, video in {"held-out": originals, "continued": continued}.items()})

# %% [markdown]
# The first four frames of each continuation are decoded from the given codes, though not from them alone (the
# decoder's attention and convolutions along time let the prior's later codes touch them too), so they are close to
# the tokenizer's reconstruction of the given frames; what follows is the prior's guess, which must carry on the
# digits' identity and motion from four frames of evidence.
#
# ## 5 · NÜWA's 3D nearby attention
#
# Full causal attention costs L²/2 query-key pairs a layer; at 16 × 32 × 32 codes that is 134 million per layer.
# NÜWA (Wu et al. 2022, §3.2) lets each token attend only to a box of cells around it, |Δt| ≤ e_t, |Δh| ≤ e_h,
# |Δw| ≤ e_w, and, in its decoder, only to cells before it: a local, causal mask on the grid. Here that mask with
# extent (1, 2, 2), checked against its definition, and what it leaves of full attention's pairs as the grid grows.

# %%
# NBVAL_CHECK_OUTPUT
extent = (1, 2, 2)
small_grid = (3, 7, 7)
mask = nearby_mask(small_grid, extent)                                  # (147, 147) True = attend
cells = [(t, h, w) for t in range(3) for h in range(7) for w in range(7)]
by_hand = torch.tensor([[j <= i and all(abs(a - b) <= e for a, b, e in zip(cells[i], cells[j], extent))
                         for j in range(147)] for i in range(147)])
assert torch.equal(mask, by_hand) and nearby_pairs(small_grid, extent) == int(mask.sum())
print(f"grid {small_grid}: token (1, 3, 3) attends to {int(mask[cells.index((1, 3, 3))].sum())} cells; "
      f"{int(mask.sum())} pairs of {147 * 148 // 2} causal ones")

# %%
fig = Figure(figsize=(8, 2.4), layout="constrained")
centre = cells.index((1, 3, 3))
for t in range(3):
    ax = fig.add_subplot(1, 4, t + 1)
    ax.imshow(mask[centre].view(3, 7, 7)[t].float(), cmap="Blues", vmin=0, vmax=1)
    ax.set_title(f"token (1, 3, 3): keys at t={t}", fontsize=8)
    ax.set_xticks([]), ax.set_yticks([])
ax = fig.add_subplot(1, 4, 4)
ax.imshow(mask.float(), cmap="Blues")
ax.set_title("the whole (147, 147) mask", fontsize=8)
ax.set_xlabel("key"), ax.set_ylabel("query")
fig

# %% [markdown]
# The cost as the grid grows: pairs and attention FLOPs (the Q Kᵀ and A V products, 4·D FLOPs a pair, D = 512), and
# the measured time of one attention layer's forward, full causal (PyTorch's fused kernel) against the nearby mask
# given to the same `Attention`.

# %%
timer.start()
grids = pick(smoke=[(2, 4, 4), (4, 8, 8)], cpu=[(4, 8, 8), (8, 8, 8), (8, 16, 16)],
             gpu=[(4, 8, 8), (8, 16, 16), (16, 32, 32)])
width, heads, reps = pick(smoke=32, cpu=64, gpu=512), pick(smoke=2, cpu=4, gpu=8), pick(smoke=2, cpu=3, gpu=10)
layer = Attention(width, heads, causal=True).to(S.device).eval()


@torch.no_grad()
def time_layer(x: torch.Tensor, mask=None) -> float:
    """Seconds per call of the attention layer on x (1, L, width): the median of `reps` calls after two warm-ups."""
    return seconds_per_call(lambda: layer(x, mask=mask), repeats=reps, warmup=2)


cost = []
for g in grids:
    length = math.prod(g)
    x = torch.randn(1, length, width, device=S.device)
    with torch.autocast(S.device.type, dtype=torch.bfloat16, enabled=S.device.type == "cuda"):
        full_ms = 1e3 * time_layer(x)
        local_ms = 1e3 * time_layer(x, nearby_mask(g, extent, device=S.device))
    full_pairs, local_pairs = length * (length + 1) // 2, nearby_pairs(g, extent)
    cost.append({"grid": g, "tokens": length, "full_pairs": full_pairs, "nearby_pairs": local_pairs,
                 "full_gflops": pair_flops(full_pairs, 512) / 1e9, "nearby_gflops": pair_flops(local_pairs, 512) / 1e9,
                 "full_ms": full_ms, "nearby_ms": local_ms})
timer.lap("NÜWA cost")
print(f"{'grid':>14s}{'tokens':>8s}{'full GFLOPs':>13s}{'nearby GFLOPs':>15s}{'ratio':>8s}"
      f"{'full ms':>10s}{'masked ms':>11s}")
for c in cost:
    print(f"{str(c['grid']):>14s}{c['tokens']:8d}{c['full_gflops']:13.3f}{c['nearby_gflops']:15.3f}"
          f"{c['full_pairs'] / c['nearby_pairs']:8.1f}{c['full_ms']:10.2f}{c['nearby_ms']:11.2f}")

# %% [markdown]
# **Reading it.** The nearby box has a fixed number of cells, (2e_t + 1)(2e_h + 1)(2e_w + 1) = 75 at most here, half of
# them causal, so its pairs grow like L while full attention's grow like L²: the ratio grows with the grid, in
# proportion to L. The measured times tell the other half of the story: given as a mask to a dense kernel, the local
# pattern saves nothing, because the kernel still computes every score and then discards most of them (and a mask
# also takes it off the fused causal path). The saving in FLOPs turns into time only with a kernel that never visits
# the masked pairs; NÜWA gathers each token's neighbourhood, and block-sparse kernels skip masked tiles. At our 256
# codes a clip full attention is cheap, which is why the prior above uses it; we leave a quality comparison at equal
# minutes to the exercises' spirit rather than spend the chapter's minutes on it.
#
# ## 6 · CogVideo: dual-channel attention and the frame-rate token
#
# CogVideo (Hong et al. 2023) scales this recipe to text-to-video at 9B parameters, and adds two ideas, which this
# chapter describes and checks without training them:
#
# - **Dual-channel attention.** A pretrained text-to-image GPT (CogView2) is reused whole and frozen: its attention
#   layers become the *spatial channel*, run on each frame's tokens. Beside each one a new *temporal channel*
#   (attention across frames, in CogVideo a 3D local "swin" attention) is trained from scratch, and the two outputs are
#   mixed by a learned vector α: out = α ⊙ spatial + (1 − α) ⊙ temporal. Only the temporal channels and α learn,
#   so the image model's knowledge of appearance is kept while the video model learns motion, at a fraction of the
#   cost of training everything.
# - **The frame-rate token.** Training clips are sampled at different frame rates so that a clip of fixed length
#   always covers a whole action; a token at the start of the sequence says which rate, and at generation it controls
#   how fast things move. CogVideo also generates hierarchically: key frames first at a low rate, then a second model
#   fills the frames in between, conditioned on both ends.
#
# The dual channel is small enough to write and check here, on the package's `Attention`: the spatial channel is a
# causal mask that keeps each token inside its own frame, the temporal one a causal mask across frames (here NÜWA's
# nearby box, in the spirit of CogVideo's local 3D attention). We freeze the spatial channel with "pretrained"
# weights (a stand-in for CogView2's layer) and check which parameters a backward pass reaches. The frame-rate token
# needs no new machinery: it is one more learned prefix token, exactly like the class token of §4.

# %%
# NBVAL_CHECK_OUTPUT
def my_dual_channel(dual: DualChannelAttention, x: torch.Tensor) -> torch.Tensor:
    """x (B, L, D) -> α ⊙ spatial(x) + (1 − α) ⊙ temporal(x), each channel a masked causal attention."""
    t, h, w = dual.grid
    cell = torch.arange(t * h * w)
    same_frame = (cell[:, None] // (h * w)) == (cell[None] // (h * w))                      # (L, L)
    spatial = dual.spatial(x, mask=same_frame & (cell[None] <= cell[:, None]))               # within the frame
    temporal = dual.temporal(x, mask=nearby_mask(dual.grid, (1, 1, 1)))                       # across frames, nearby
    return dual.alpha * spatial + (1 - dual.alpha) * temporal


torch.manual_seed(0)
image_layer = Attention(32, 4, causal=True)                                   # stand-in for a pretrained layer
dual = DualChannelAttention(32, 4, (4, 3, 3), temporal_extent=(1, 1, 1)).freeze_spatial(image_layer.state_dict())
x = torch.randn(2, 36, 32)
torch.testing.assert_close(my_dual_channel(dual, x), dual(x))
dual(x).square().mean().backward()
trained = sorted({name.split(".")[0] for name, p in dual.named_parameters() if p.grad is not None})
frozen = sorted({name.split(".")[0] for name, p in dual.named_parameters() if p.grad is None})
print(f"my_dual_channel matches vgcourse.autoregressive.DualChannelAttention; gradients reach {trained}, "
      f"not {frozen}")

# %% [markdown]
# ## 7 · Claim check: do transformers struggle with spatio-temporal dynamics?
#
# The survey says that autoregressive transformers over tokens model appearance well but struggle with
# spatio-temporal dynamics. Here the test: the prior's **motion consistency** (the fraction of tracked steps that keep
# their velocity or bounce elastically) against the real clips' at the same n, clip by clip with standard errors, the
# speed ratio read beside it. Stated before measuring: the claim is **supported** if the prior's motion consistency is
# below the real clips' by more than a material gap of 0.05 (one step in twenty implausible) plus one standard error
# of the difference; **not supported** if the gap is below 0.05 by more than one standard error; **not resolved**
# otherwise. The tokenizer's reconstructions are read beside it, to tell the tokenizer's share from the prior's.

# %%
def motion_per_clip(videos: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per clip: motion consistency and speed (px/frame) of the tracked digits, (N,) each."""
    centers, visible = track_centroids(videos.float(), evaluator.objects_per_clip)
    stats = [motion_stats(centers[i:i + 1], visible[i:i + 1]) for i in range(len(videos))]
    return (torch.tensor([s["motion_consistency"] for s in stats], dtype=torch.float64),
            torch.tensor([s["speed"] for s in stats], dtype=torch.float64))


real_clips = data.batch(n_gen, seed=PROTOCOL.reference_seed, device=S.device).video
motion = {name: motion_per_clip(v) for name, v in
          [("real", real_clips), ("reconstructions", recon), ("VideoGPT prior", samples)]}
for name, (mc, speed) in motion.items():
    (m, m_se), (s, s_se) = mean_se(mc), mean_se(speed)
    print(f"{name:16s} motion consistency {m:.3f} ± {m_se:.3f}, speed {s:.2f} ± {s_se:.2f} px/frame")
(m_real, se_real), (m_gpt, se_gpt) = mean_se(motion["real"][0]), mean_se(motion["VideoGPT prior"][0])
gap, gap_se = m_real - m_gpt, math.hypot(se_real, se_gpt)
claim = {"met": "supported", "not met": "not supported", "not resolved": "not resolved"}[
    verdict(gap, 0.05, gap_se, lower_is_better=False)]
print(f"gap (real − prior) {gap:+.3f} ± {gap_se:.3f} against a material 0.05; speed ratio "
      f"{gpt_scores['speed_ratio']:.2f} (real row {rows['real']['speed_ratio']:.2f}) -> claim {claim}")

# %% [markdown]
# **Reading it.** A prior that draws each digit's next position from its past codes has to carry a velocity through
# 64 codes a latent frame, 4 video frames each; when it loses it, the tracker sees a digit jump or stall, and the
# motion consistency drops. Whatever the verdict, read it beside the reconstructions' row: whatever motion the
# tokenizer loses inside each 4-frame code, no prior over its codes can draw back.
#
# ## 8 · Results

# %%
minutes = (summary.wall_time_s + (tok_summary.wall_time_s if tok_summary else 0.0)) / 60
results.record(
    "06_videogpt",
    {"headline": headline(gpt_scores, n_real=n_real, minutes=minutes, tokens_per_s=tokens_per_s, mfu=summary.mfu,
                          bits_per_token=val_bits, sampling_ms_per_clip=1e3 * sample_s),
     "prior": {"parameters": n_params, "steps": summary.steps, "epochs": epochs, "train_bits_per_token": train_bits,
               "heldout_bits_per_token": val_bits, "minutes": summary.wall_time_s / 60, "train": summary.as_dict()},
     "tokenizer": {"source": source, "psnr": float(recon_psnr.mean()), "scores": tok_scores,
                   "train": tok_summary.as_dict() if tok_summary else None},
     "sampling": {"ms_per_clip_cached": 1e3 * cached_s, "ms_per_clip_uncached": 1e3 * uncached_s,
                  "speedup": uncached_s / cached_s, "same_codes": same_samples, "cache_logit_gap": cache_gap,
                  "ms_per_clip_protocol": 1e3 * sample_s},
     "class_conditioning": {"accuracy": cond_acc, "accuracy_se": cond_se, "n": len(want_y), "real_accuracy": real_acc,
                            "real_accuracy_se": real_se, "bar": class_bar, "guidance": guidance,
                            "validation_accuracy": {f"s={s:g}": a for s, a in val_acc.items()},
                            "unguided_accuracy": plain_acc, "unguided_accuracy_se": plain_se,
                            "guided_ms_per_clip": 1e3 * guided_s},
     "nuwa_cost": cost, "claim_dynamics": {"gap": gap, "gap_se": gap_se, "outcome": claim,
                                           "motion": {k: [mean_se(v[0]), mean_se(v[1])] for k, v in motion.items()}},
     "reference_rows": rows, "bars": bars | {"asked digits >= 90%": class_bar}, "parts_minutes": timer.minutes},
    started=STARTED, train={"prior": summary.as_dict(), "tokenizer": tok_summary.as_dict() if tok_summary else None},
    config={"prior": asdict(cfg), "tokenizer": asdict(tokenizer.cfg), "batch": batch, "lr": lr, "warmup": warmup,
            "weight_decay": weight_decay, "prior_minutes": prior_minutes, "tokenizer_minutes": tok_minutes,
            "n_train": n_train, "n_gen": n_gen, "n_real": n_real, "nuwa_extent": extent})

# %% [markdown]
# ## Exercises
#
# Each exercise has a stub to fill and a check from the package; run the check cell after editing.
#
# **1. Teacher forcing.** The output at position i predicts code i from the codes before it, so the input at i is
# code i − 1 and position 0 reads the start (class) token. Write the inputs from the codes (B, L) and the start ids
# (B,).

# %%
def shift_right(codes: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    # YOUR CODE HERE
    raise NotImplementedError


# %%
# NBVAL_CHECK_OUTPUT
check("shift_right", shift_right)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `torch.cat([start[:, None], codes[:, :-1]], dim=1)`. The reference answer: `solution("shift_right")`.
# </details>

# %%
# NBVAL_CHECK_OUTPUT
check("shift_right", solution("shift_right"))   # the reference answer, through the same check

# %% [markdown]
# **2. NÜWA's mask.** Write the 3D nearby causal mask of a grid (T, H, W) and an extent (e_t, e_h, e_w): (L, L) bool,
# True where query i may attend to key j.

# %%
def nearby_causal_mask(grid: tuple[int, int, int], extent: tuple[int, int, int]) -> torch.Tensor:
    # YOUR CODE HERE
    raise NotImplementedError


# %%
# NBVAL_CHECK_OUTPUT
check("nearby_causal_mask", nearby_causal_mask)

# %% [markdown]
# <details><summary>Hint</summary>
#
# The (t, h, w) of each token: `torch.stack(torch.meshgrid(*(torch.arange(n) for n in grid), indexing="ij"),
# -1).reshape(-1, 3)`; compare all pairs with broadcasting (`c[:, None] - c[None]`), `.abs() <= torch.tensor(extent)`,
# `.all(-1)` so that it holds on every axis, then `.tril()`. The reference answer: `solution("nearby_causal_mask")`.
# </details>

# %%
# NBVAL_CHECK_OUTPUT
check("nearby_causal_mask", solution("nearby_causal_mask"))   # the reference answer, through the same check

# %% [markdown]
# **3. Top-k, and what a sharper sampler buys.** Write top-k filtering: keep each row's k largest logits and set the
# others to −∞.

# %%
def top_k_logits(logits: torch.Tensor, k: int) -> torch.Tensor:
    # YOUR CODE HERE
    raise NotImplementedError


# %%
# NBVAL_CHECK_OUTPUT
check("top_k_logits", top_k_logits)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `kth = torch.topk(logits, k, dim=-1).values[:, -1:]`, then `logits.masked_fill(logits < kth, float("-inf"))`.
# The reference answer: `solution("top_k_logits")`.
# </details>

# %%
# NBVAL_CHECK_OUTPUT
check("top_k_logits", solution("top_k_logits"))   # the reference answer, through the same check

# %% [markdown]
# Now change the recipe and predict before you run: sample the same 384 classes with top-k = 16 at temperature 0.8
# instead of the model's full distribution. **Predict** what happens to the frame quality, the diversity and the fd.
# Then run:

# %%
sharp, _, _ = sample_videos(prior, tokenizer, y=asked, seed=0, temperature=0.8, top_k=min(16, cfg.vocab_size))
sharp_scores = score(evaluator, sharp)
print(format_rows({"T = 1, all codes": gpt_scores, "T = 0.8, top-16": sharp_scores},
                  metrics=("fd", "frame_quality", "diversity", "motion_consistency")))

# %% [markdown]
# <details><summary>What to look for</summary>
#
# Cutting the tail of each code's distribution removes the rare, often wrong, codes that blot a frame, so frames get
# cleaner (frame quality up); it also removes rare but right codes, so clips look more alike (diversity down). The fd
# compares whole distributions, so it rewards the first and punishes the second: which wins depends on how good the
# tail was. Whether either change shows at all at T = 0.8 and top-16, and in which direction, is what the two rows
# measure: compare the changes with the fd's standard error. Language models are sampled this way for the same
# trade.
# </details>

# %%
print(f"chapter wall time: {(time.time() - STARTED) / 60:.1f} min; parts (min): {timer.minutes}")
