# %% [markdown]
# # 07 · Phenaki: text to video of any length
#
# **What this chapter builds.** Phenaki's two stages and its one trick. First a **causal C-ViViT** tokenizer: the
# first frame of a clip is cut into patches on its own, the later frames into tubelets of four frames; a spatial
# transformer mixes the patches of each time step, then a temporal transformer mixes time steps *causally*, so the
# codes of the first steps never depend on later frames; a vector quantizer turns each token into a code. Then a
# **masked transformer** (MaskGIT) over those codes, conditioned on a caption: trained to fill in randomly masked
# codes, it writes a whole clip in 12 parallel steps instead of one step per code, and classifier-free guidance
# sharpens how closely it follows the caption. The trick: because the tokenizer is causal, the last frames of a clip
# can be **encoded again on their own** and given to the masked transformer as the start of a new clip, so a video
# grows chunk by chunk, each chunk under its own caption: a story told by a sequence of prompts.
#
# We build the patch embedding, the causal temporal attention, the masked-token loss, one decoding step and the
# guided logits in plain view, check each against the package, train the package's versions on captioned shapes
# ("a red square moves left"), and read what they draw back with the course's attribute detector.
#
# **Where it sits in the history.** The Transformer era (the survey's §2.1–2.2):
#
# - Chang, Zhang, Jiang, Liu & Freeman 2022 (**MaskGIT**): a bidirectional transformer trained to predict masked
#   image tokens (a cosine mask schedule); decoding fixes the most confident predictions a few at a time, 8–12 steps
#   for 256 tokens.
# - Ho & Salimans 2022 (**classifier-free guidance**): one network, trained with the condition sometimes dropped,
#   extrapolates from its unconditional to its conditional prediction.
# - Villegas et al. 2023 (**Phenaki**): a causal C-ViViT tokenizer (after ViViT's tubelets, Arnab et al. 2021) and a
#   MaskGIT conditioned on T5 text embeddings; minutes-long videos from a sequence of prompts, by extension.
# - Chapter 06's GPT prior writes the same kind of codes one at a time; chapter 12's diffusion transformers continue
#   clips in pixel space with clean context, the same idea on another family.
#
# **Time per profile.** The same code runs in every profile; only sizes change (chosen below with `pick`).
#
# | profile | tokenizer | masked transformer | training | time |
# |---|---|---|---|---|
# | `smoke` | tiny (32 wide, 32 codes) | 2 × 32 | 2 + 2 steps | < 1 min on 2 CPU cores (checks only) |
# | `cpu` | 64 wide, 256 codes | 4 × 128 | 2 + 4 + 0.5 min, batch 16 | ≈ 8 min on 2 CPU cores |
# | `gpu` | 256 wide, 512 codes (6.5M) | 8 × 384 (15M) | 2 + 4 + 2 min, batch 64 / 128, compiled | ≈ 8.5 min, a GPU |

# %%
import math
import time
from dataclasses import asdict

import torch
import torch.nn.functional as F
from einops import rearrange
from matplotlib.figure import Figure

from vgcourse.profiles import pick, setup

STARTED = time.time()
S = setup(seed=0)          # prints profile, device, precision, compile, torch version

# %%
from vgcourse import results
from vgcourse.autoregressive import (
    GPT,
    GPTConfig,
    GRUPrior,
    MaskGITConfig,
    TextMaskGIT,
    TokenBatches,
    cosine_schedule,
    decode_schedule,
    decode_step,
    extend,
    flops_per_token,
    gru_flops_per_token,
    gru_matching,
    heldout_bits_per_clip,
    prior_loss,
)
from vgcourse.data import CaptionedShapes, caption, tokenize
from vgcourse.data.shapes import DIRECTION_NAMES
from vgcourse.diffusion.conditioning import object_captions
from vgcourse.display import filmstrip, plot_curves, side_by_side
from vgcourse.exercises import check, solution
from vgcourse.metrics import attribute_accuracy, attribute_consistency, mean_se, psnr, verdict
from vgcourse.metrics.corruptions import freeze_frames, shuffle_frames
from vgcourse.nn import CaptionEncoder, count_parameters
from vgcourse.results import PartTimer, num, timed
from vgcourse.tokenizers import CViViT, CViViTConfig, code_counts, usage_and_perplexity, vq_loss
from vgcourse.train import TrainConfig, Trainer, warmup_cosine

timer = PartTimer(STARTED)  # minutes of each part of the chapter, printed as it goes
cuda = S.device.type == "cuda"

# %% [markdown]
# ## Sizes for this profile
#
# The data is captioned shapes at 32 × 32: one coloured square, circle or triangle (10 px) moving 0.4 px a frame
# left, right, up or down, with its caption. A clip has 17 frames, 1 + 4 × 4: the tokenizer's first frame and four
# tubelets of four frames, so 5 × 8 × 8 = 320 codes. Training clips are 17-frame windows, at random offsets, of
# 48-frame paths that stay inside the frame, so that a clip continued to 48 frames can stay in view and a
# continuation starts from the kind of window the model saw. On cpu and gpu the two trainings are bounded by minutes
# (`max_minutes`, compilation included): the loop stops at the last step that fits and ends the learning-rate decay
# there.

# %%
window, long_frames, speed = 17, 48, 0.4
paths = CaptionedShapes(size=32, frames=long_frames, object_size=10, speed=speed)   # 48-frame paths, in frame
tok_cfg = pick(smoke=CViViTConfig(in_channels=3, image_size=32, patch_size=8, temporal_patch=4, dim=32, heads=2,
                                  spatial_depth=1, temporal_depth=1, codebook_size=32, embedding_dim=8),
               cpu=CViViTConfig(in_channels=3, image_size=32, patch_size=4, temporal_patch=4, dim=64, heads=2,
                                spatial_depth=1, temporal_depth=1, codebook_size=256, embedding_dim=16),
               gpu=CViViTConfig(in_channels=3, image_size=32, patch_size=4, temporal_patch=4, dim=256, heads=4,
                                spatial_depth=2, temporal_depth=2, codebook_size=512, embedding_dim=32))
width, layers, heads, text_dim = pick(smoke=(32, 2, 2, 16), cpu=(128, 4, 4, 64), gpu=(384, 8, 6, 128))
tok_minutes, gen_minutes = pick(smoke=None, cpu=2.0, gpu=2.0), pick(smoke=None, cpu=4.0, gpu=4.0)
steps = pick(smoke=2, cpu=100_000, gpu=100_000)      # a cap: on cpu and gpu the time budget decides
tok_batch, gen_batch = pick(smoke=(2, 2), cpu=(16, 16), gpu=(64, 128))
tok_lr, gen_lr, warmup = 1e-3, pick(smoke=1e-3, cpu=1e-3, gpu=6e-4), pick(smoke=1, cpu=50, gpu=300)
p_uncond, decode_steps = 0.1, 12                    # caption dropped in 10% of clips; 12 decoding steps
guidance_grid = (1.0, 2.0, 3.0)                      # guidance scales tried on validation prompts (§5)
n_val = pick(smoke=4, cpu=32, gpu=96)                # validation prompts that choose the scale
n_gen = pick(smoke=8, cpu=64, gpu=384)               # clips generated and read back (the protocol's n)
n_long = pick(smoke=4, cpu=16, gpu=128)              # clips extended to 48 frames, each way
log_every = pick(smoke=1, cpu=20, gpu=100)
print(f"clips: {window} frames of 32×32 (windows of {long_frames}-frame paths), {speed} px a frame")
print(f"tokenizer: dim {tok_cfg.dim}, {tok_cfg.spatial_depth}+{tok_cfg.temporal_depth} blocks, patch "
      f"{tok_cfg.patch_size}, tubelets of {tok_cfg.temporal_patch}, {tok_cfg.codebook_size} codes; masked "
      f"transformer {layers} × {width}; minutes {tok_minutes} + {gen_minutes}, batches {tok_batch} / {gen_batch}")

# %%
def windows(video: torch.Tensor, frames: int, generator: torch.Generator) -> torch.Tensor:
    """A random window of ``frames`` frames from each clip (B, C, T, H, W) -> (B, C, frames, H, W)."""
    b, c, t, h, w = video.shape
    start = torch.randint(0, t - frames + 1, (b,), generator=generator).to(video.device)           # (B,)
    index = (start[:, None] + torch.arange(frames, device=video.device))[:, None, :, None, None]   # (B, 1, F, 1, 1)
    return video.gather(2, index.expand(b, c, frames, h, w))


def shape_stream(batch: int, seed: int):
    """Training batches: (17-frame windows (B, 3, 17, 32, 32), caption tokens (B, 12)), fresh at every step."""
    draw = paths.stream(batch, seed=seed, device=S.device)

    def batch_at(step: int):
        b = draw(step)
        return windows(b.video, window, torch.Generator().manual_seed(seed * 100_003 + step)), \
            tokenize(b.captions).to(S.device)

    return batch_at


sample_batch = paths.batch(4, seed=1)
print(sample_batch.captions)
filmstrip({cap[:28]: v for cap, v in zip(sample_batch.captions, sample_batch.video)}, every=3)

# %% [markdown]
# ## 1 · The causal C-ViViT tokenizer
#
# A clip of 1 + n·p_t frames (here p_t = 4) becomes (1 + n) time steps of H/p × W/p tokens (Phenaki, §2.1):
#
# - the **first frame** is cut into p × p patches, each flattened and mapped by its own linear embedding;
# - the **remaining frames** are cut into tubelets of p_t × p × p pixels, with a second linear embedding.
#
# So a one-frame clip (an image) is tokenized by the first embedding alone, and the first time step's tokens are
# made from the first frame only. By hand, against the package's `patchify`:

# %%
# NBVAL_CHECK_OUTPUT
def my_patchify(model: CViViT, x: torch.Tensor) -> torch.Tensor:
    """x (B, C, 1 + n·pt, H, W) -> tokens (B, 1 + n, H/p, W/p, D)."""
    p, pt = model.cfg.patch_size, model.cfg.temporal_patch
    first = rearrange(x[:, :, :1], "b c 1 (h p) (w q) -> b 1 h w (c p q)", p=p, q=p)            # p × p patches
    rest = rearrange(x[:, :, 1:], "b c (t r) (h p) (w q) -> b t h w (c r p q)", r=pt, p=p, q=p)  # tubelets
    return torch.cat([model.embed_first(first), model.embed_rest(rest)], dim=1)


torch.manual_seed(0)
demo_cfg = CViViTConfig(in_channels=3, image_size=32, patch_size=4, temporal_patch=4, dim=64, heads=4,
                        spatial_depth=1, temporal_depth=1, codebook_size=64, embedding_dim=8)
demo = CViViT(demo_cfg).eval()
x = paths.batch(2, seed=2).video[:, :, :window]                           # (2, 3, 17, 32, 32)
torch.testing.assert_close(my_patchify(demo, x), demo.patchify(x))
print(f"clip {tuple(x.shape)} -> tokens {tuple(demo.patchify(x).shape)}: the first frame alone, then "
      f"{(window - 1) // demo_cfg.temporal_patch} tubelets of {demo_cfg.temporal_patch} frames")
print("my_patchify matches vgcourse.tokenizers.CViViT.patchify")

# %% [markdown]
# Positions are a learned vector per spatial position plus a sine-cosine vector of the time step. Then a **spatial
# transformer** (each time step's 64 tokens attend to each other) and a **causal temporal transformer**: each
# spatial position attends along time to its own and *earlier* time steps only. The causal temporal attention by
# hand (tokens regrouped so that each spatial position is one sequence over time, a lower-triangular mask), against
# the package's attention with the 'temporal' step and `causal=True`:

# %%
# NBVAL_CHECK_OUTPUT
def my_causal_temporal_attention(attn, z: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """z (B, t·h·w, D) in (t, h, w) order -> each position attends over time steps ≤ its own: (B, t·h·w, D)."""
    t, h, w = grid
    seq = rearrange(z, "b (t h w) d -> (b h w) t d", t=t, h=h)                   # one sequence per position
    q, k, v = rearrange(attn.qkv(seq), "n t (three k d) -> three n k t d", three=3, k=attn.heads)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])                      # (N, heads, t, t)
    scores = scores.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), float("-inf"))  # step i sees ≤ i
    out = rearrange(scores.softmax(-1) @ v, "n k t d -> n t (k d)")
    return rearrange(attn.proj(out), "(b h w) t d -> b (t h w) d", h=h, w=w)


grid = demo.latent_shape(window, 32, 32)                                           # (5, 8, 8)
z = torch.randn(2, math.prod(grid), demo_cfg.dim, generator=torch.Generator().manual_seed(0))
block = demo.enc_temporal[0]
with torch.no_grad():
    torch.testing.assert_close(my_causal_temporal_attention(block.attn, z, grid), block.attn(z, grid),
                               rtol=1e-4, atol=1e-5)
print(f"my_causal_temporal_attention matches the C-ViViT's temporal attention on a {grid} grid")

# %% [markdown]
# What the causality buys: change every frame after the first 1 + 4k and the codes of the first k + 1 time steps
# stay exactly the same (the package's test asserts it on random clips; here on a real clip and an untrained
# tokenizer, which is enough, since it is a property of the wiring).

# %%
# NBVAL_CHECK_OUTPUT
with torch.no_grad():
    codes_x = demo.encode(x)
    for k in (1, 2, 3):
        y_ = x.clone()
        y_[:, :, demo.frames_for(k):] = paths.batch(2, seed=9).video[:, :, :window - demo.frames_for(k)]
        codes_y = demo.encode(y_)
        same = [bool(torch.equal(codes_x[:, s], codes_y[:, s])) for s in range(grid[0])]
        print(f"frames ≥ {demo.frames_for(k):2d} replaced: time steps unchanged {same}")

# %% [markdown]
# ## 2 · Training the tokenizer
#
# VQ with an EMA codebook and dead-code restarts (chapter 05), trained with L2 + commitment (`vq_loss`; Phenaki adds
# image and video (I3D) perceptual losses and a GAN loss for sharper textures). AdamW, warm-up then cosine decay, bf16
# autocast and `torch.compile` on the GPU, fresh batches at every step.

# %%
timer.start()
torch.manual_seed(0)
tokenizer = CViViT(tok_cfg).to(S.device)
tok_opt = torch.optim.AdamW(tokenizer.parameters(), lr=tok_lr, weight_decay=0.0, fused=cuda)
tok_stream = shape_stream(tok_batch, seed=0)
tok_trainer = Trainer(tokenizer, tok_opt, lambda step: tok_stream(step)[0],
                      TrainConfig(steps=steps, max_minutes=tok_minutes, compile=S.compile, log_every=log_every,
                                  desc="C-ViViT"),
                      loss_fn=lambda m, video: vq_loss(m, video),
                      schedulers={"main": warmup_cosine(tok_opt, warmup, steps, final=0.05)},
                      model_config=asdict(tok_cfg))
tok_summary = tok_trainer.fit()
tokenizer.eval()
timer.lap("tokenizer")
tok_params = count_parameters(tokenizer)
print(f"C-ViViT: {tok_params / 1e6:.2f}M parameters, {tok_summary.steps} steps, "
      f"{tok_summary.samples_per_s or 0:.0f} clips/s")
plot_curves(tok_trainer.history, keys=["psnr"], smooth=0.5, title="C-ViViT: batch PSNR (dB)")

# %% [markdown]
# The tokenizer bounds everything after it: the masked transformer can only choose codes, and the detector reads the
# decoder's pixels. Held-out clips through it, read back against their captions:

# %%
heldout = paths.heldout(n_gen, device=S.device)
real = heldout.video[:, :, :window]                                   # the first 17 frames of held-out paths
labels, prompt_tokens = heldout.labels, tokenize(heldout.captions).to(S.device)
with torch.no_grad():
    recon, vq = tokenizer(real)
recon = recon.clamp(-1, 1)
use = usage_and_perplexity(code_counts(vq.indices, tok_cfg.codebook_size))


def accuracy_se(acc: float, n: int) -> float:
    """The binomial standard error of an accuracy over n clips."""
    return math.sqrt(max(acc * (1 - acc), 1e-12) / n)


recon_acc = attribute_accuracy(recon, labels)
print(f"held-out reconstructions: PSNR {psnr(recon, real).mean().item():.2f} dB, codebook usage "
      f"{float(use['usage']):.2f}, perplexity {float(use['perplexity']):.0f} of {tok_cfg.codebook_size}")
print("attributes read back from the reconstructions: "
      + "  ".join(f"{k} {v:.3f}" for k, v in recon_acc.items()))

# %%
# NBVAL_IGNORE_OUTPUT
side_by_side({"held-out": real[:4], "through the C-ViViT": recon[:4]}, nrow=2, scale=3)

# %%
filmstrip({"held-out 0": real[0], "C-ViViT 0": recon[0], "held-out 1": real[1], "C-ViViT 1": recon[1]})

# %% [markdown]
# ## 3 · The masked transformer: loss and one decoding step
#
# MaskGIT (Chang et al. 2022, §3.1) trains on masked codes: per clip draw r ~ U(0, 1), replace ⌈γ(r)·N⌉ of the N
# codes by a [MASK] token, with the cosine schedule γ(r) = cos(πr/2) (§3.3), and minimise the cross-entropy of the true
# codes **at the masked positions only** (eq. (1)); every position sees every other (no causal mask). The caption
# enters as one extra token before the codes: chapter 10's `CaptionEncoder` (word embeddings, one transformer layer,
# a mean pool) gives a vector, a linear map makes it a token, and in 10% of the training clips a learned *null*
# token replaces it, so the same network also learns the unconditional model. By hand, against the package:

# %%
# NBVAL_CHECK_OUTPUT
def my_masked_loss(model: TextMaskGIT, codes: torch.Tensor, captions: torch.Tensor,
                   mask: torch.Tensor) -> torch.Tensor:
    """codes (B, N) long, captions (B, L), mask (B, N) bool -> the mean cross-entropy of the masked codes."""
    logits = model.logits(codes.masked_fill(mask, model.mask_id), captions)      # (B, N, K)
    return F.cross_entropy(logits[mask], codes[mask])                             # eq. (1): masked codes only


torch.manual_seed(0)
tiny_cfg = MaskGITConfig(vocab_size=64, grid=(5, 4, 4), n_layer=2, n_head=2, n_embd=32)
tiny = TextMaskGIT(tiny_cfg, CaptionEncoder(dim=16, layers=1, heads=2), text_dim=16).eval()  # eval: no dropout
g = torch.Generator().manual_seed(0)
codes = torch.randint(0, 64, (3, 80), generator=g)
mask = tiny.random_mask(3, torch.device("cpu"), generator=g)                    # ⌈γ(r)·N⌉ codes per clip
caps = tokenize([caption(0, 0, 0), caption(1, 1, 1), caption(2, 2, 2)])
torch.testing.assert_close(my_masked_loss(tiny, codes, caps, mask), tiny(codes, caps, mask=mask)[1])
print(f"masked per clip: {mask.sum(1).tolist()} of 80; my_masked_loss matches TextMaskGIT's loss")

# %% [markdown]
# **The training step in plain view**: draw the mask (⌈γ(r)·N⌉ codes per clip, r ~ U(0, 1), never a given code),
# take the masked loss above (in training mode the model also drops each clip's caption with probability 0.1), its
# gradient by `.backward()`, the gradient clipped to norm 1 and one AdamW step. Two such steps must leave the same
# weights as two steps of the package's `Trainer` (which trains the chapter's model below) from the same start and
# the same random draws.

# %%
# NBVAL_CHECK_OUTPUT
def my_train_step(model: TextMaskGIT, optimizer, codes: torch.Tensor, captions: torch.Tensor,
                  maskable: torch.Tensor | None = None, max_norm: float = 1.0) -> torch.Tensor:
    mask = model.random_mask(codes.shape[0], codes.device, maskable)              # (B, N) bool
    loss = my_masked_loss(model, codes, captions, mask)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()                                                                # ∂loss/∂θ for every weight
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)                   # the whole gradient to norm <= 1
    optimizer.step()                                                               # θ ← AdamW(θ, ∂loss/∂θ)
    return loss.detach()


check_batches = [(torch.randint(0, 64, (3, 80), generator=torch.Generator().manual_seed(10 + i)), caps)
                 for i in range(2)]                                               # batch i for step i
step_weights = {}
for name in ("mine", "package"):
    torch.manual_seed(0)
    twin = TextMaskGIT(tiny_cfg, CaptionEncoder(dim=16, layers=1, heads=2), text_dim=16).train()
    optimizer = torch.optim.AdamW(twin.parameters(), lr=1e-3)
    torch.manual_seed(1)                                                           # the same mask and caption draws
    if name == "mine":
        for codes_, caps_ in check_batches:
            my_train_step(twin, optimizer, codes_, caps_)
    else:
        Trainer(twin, optimizer, lambda step: check_batches[step],
                TrainConfig(steps=2, amp=False, measure_flops=False, progress=False, log_every=1),
                loss_fn=lambda m, b: m(b[0], b[1])[1]).fit()
    step_weights[name] = twin.state_dict()
for key in step_weights["mine"]:
    torch.testing.assert_close(step_weights["mine"][key], step_weights["package"][key], rtol=1e-5, atol=1e-6)
print("two steps of my_train_step leave the same weights as two steps of Trainer with TextMaskGIT's loss")

# %% [markdown]
# Decoding (§3.2) starts from all [MASK]. At step t of T: predict every masked code, sample one per position, score
# each by its probability (its *confidence*), keep the most confident and mask the rest again, so that
# ⌊γ((t + 1)/T)·N⌋ stay masked (eq. (4)). The authors add Gumbel noise to the confidences, scaled down as decoding
# goes, so that early steps do not always keep the same likeliest codes; without it (`choice_temperature=0`), one
# step by hand against the package's `decode_step`:

# %%
# NBVAL_CHECK_OUTPUT
def my_decode_step(logits, ids, mask_id, t, steps, unknown, generator):
    """One step without the choice noise: sample, keep the most confident, re-mask the rest on schedule."""
    b, n = ids.shape
    masked = ids == mask_id
    probs = logits.float().softmax(-1)                                                   # (B, N, K)
    sampled = torch.multinomial(probs.flatten(0, 1), 1, generator=generator).view(b, n)
    sampled = torch.where(masked, sampled, ids)                                          # fixed codes stay
    confidence = probs.gather(-1, sampled[..., None])[..., 0].log().masked_fill(~masked, float("inf"))
    still = math.floor(float(cosine_schedule((t + 1) / steps)) * int(unknown[0]))       # ⌊γ((t+1)/T)·n⌋
    still = min(still, int(masked.sum(1)[0]) - 1) if t < steps - 1 else 0
    order = confidence.argsort(1)                                                        # least confident first
    out = sampled.clone()
    out.scatter_(1, order[:, :still], mask_id)
    return out


ids = torch.full((1, 80), tiny.mask_id)
unknown = (ids == tiny.mask_id).sum(1)
with torch.no_grad():
    logits = tiny.logits(ids, caps[:1])
mine = my_decode_step(logits, ids, tiny.mask_id, 0, decode_steps, unknown, torch.Generator().manual_seed(1))
theirs = decode_step(logits, ids, tiny.mask_id, 0, decode_steps, unknown, choice_temperature=0.0,
                     generator=torch.Generator().manual_seed(1))
assert torch.equal(mine, theirs)
print(f"step 1 of {decode_steps}: {int((mine == tiny.mask_id).sum())} of 80 codes still masked; my_decode_step "
      f"matches decode_step")
print(f"codes still masked after each of the {decode_steps} steps (of 320): {decode_schedule(320, decode_steps)}")

# %% [markdown]
# **Classifier-free guidance** (Ho & Salimans 2022) on logits: with the caption, ℓ(c), and with the null token,
# ℓ(∅), decode from ℓ(∅) + s (ℓ(c) − ℓ(∅)); s = 1 is the conditional model, s > 1 exaggerates what the caption
# changes. The package computes both halves in one batch:

# %%
# NBVAL_CHECK_OUTPUT
s_check = 3.0
with torch.no_grad():
    cond, uncond = tiny.logits(codes, caps), tiny.logits(codes, None)
    torch.testing.assert_close(uncond + s_check * (cond - uncond), tiny.guided_logits(codes, caps, s_check),
                               rtol=1e-4, atol=1e-4)
print(f"ℓ(∅) + {s_check:g} (ℓ(c) − ℓ(∅)) matches TextMaskGIT.guided_logits")

# %% [markdown]
# ## 4 · Training the text-conditioned masked transformer
#
# The tokenizer is frozen; each batch is encoded on the fly (fp32, outside the autocast, so that training sees the
# same codes as the extension will), and the masked transformer trains on the codes and the captions, compiled,
# in bf16 on the GPU.
#
# **Continuation examples.** Extension asks the model to fill in the last 2 time steps of a clip whose first 3 are
# given. So in 30% of training clips the first 3 steps (frames 0–8) are given, never masked, and the loss falls on the
# rest (`maskable`: the given codes stay visible, as in MaskGIT's inpainting and outpainting). A prompt sequence asks
# for more: the caption of a chunk may contradict the context's motion. Phenaki's captioned videos contain such
# events; our shapes never turn. So half of the continuation examples **turn around** at frame 8 — the window's frames
# after it are those before it in reverse order (time-mirrored, so the motion is real motion) — and carry the caption
# of the new direction. The model never learns to *generate* a turn from scratch: in these clips the turn lies in the
# given frames' future only.

# %%
timer.start()
grid = tokenizer.latent_shape(window, 32, 32)
gen_cfg = MaskGITConfig(vocab_size=tok_cfg.codebook_size, grid=grid, n_layer=layers, n_head=heads, n_embd=width)
torch.manual_seed(0)
model = TextMaskGIT(gen_cfg, CaptionEncoder(dim=text_dim, layers=1, heads=4 if text_dim % 4 == 0 else 2),
                    text_dim=text_dim, p_uncond=p_uncond).to(S.device)
p_context, p_turn = 0.3, 0.5                     # continuation examples; the share of them that turn around
given_steps = 3                                  # time steps of codes given in a continuation: frames 0-8
flip = torch.tensor([1, 0, 3, 2])                # left <-> right, up <-> down (DIRECTION_NAMES order)
draw = paths.stream(gen_batch, seed=1, device=S.device)


@torch.no_grad()
def code_batch(step: int):
    """(codes (B, 5, 8, 8), caption tokens (B, 12), maskable (B, N)): a training batch of the masked transformer."""
    b = draw(step)
    g_ = torch.Generator().manual_seed(1_000_003 + step)
    video = windows(b.video, window, g_)                                       # (B, 3, 17, 32, 32)
    n = video.shape[0]
    given = torch.rand(n, generator=g_) < p_context                            # (B,) continuation examples
    turn = given & (torch.rand(n, generator=g_) < p_turn)                      # (B,) ... that turn around
    at = tokenizer.frames_for(given_steps) - 1                                 # frame 8, the context's last
    mirrored = torch.arange(window).where(torch.arange(window) <= at, 2 * at - torch.arange(window))  # 0..8, 7..0
    video = torch.where(turn.to(S.device)[:, None, None, None, None], video[:, :, mirrored], video)
    direction = b.labels["direction"][:, 0].cpu()
    direction = torch.where(turn, flip[direction], direction)                  # the caption of the new direction
    tokens_ = tokenize(object_captions(b.labels | {"direction": direction}))   # the first object's caption
    maskable = torch.ones(n, *grid, dtype=torch.bool)
    maskable[given, :given_steps] = False                                      # given steps: never masked
    return tokenizer.encode(video), tokens_.to(S.device), maskable.flatten(1).to(S.device)


turn_demo = code_batch(0)
print(f"a batch: {int((~turn_demo[2].all(1)).sum())} of {gen_batch} clips are continuation examples")


gen_opt = torch.optim.AdamW(model.parameters(), lr=gen_lr, betas=(0.9, 0.99), weight_decay=0.01, fused=cuda)
gen_trainer = Trainer(model, gen_opt, code_batch,
                      TrainConfig(steps=steps, max_minutes=gen_minutes, compile=S.compile, log_every=log_every,
                                  desc="text MaskGIT"),
                      loss_fn=lambda m, b: m(b[0], b[1], maskable=b[2])[1],
                      schedulers={"main": warmup_cosine(gen_opt, warmup, steps, final=0.1)},
                      model_config=asdict(gen_cfg))
gen_summary = gen_trainer.fit()
model.eval()
timer.lap("masked transformer")
gen_params = count_parameters(model)
tokens_per_s = (gen_summary.samples_per_s or 0) * gen_cfg.block_size
print(f"text MaskGIT: {gen_params / 1e6:.1f}M parameters, {gen_summary.steps} steps, "
      f"{gen_summary.samples_per_s or 0:.0f} clips/s = {tokens_per_s:,.0f} tokens/s, MFU "
      f"{'n/a' if gen_summary.mfu is None else f'{gen_summary.mfu:.1%}'}")
plot_curves(gen_trainer.history, keys=["loss"], smooth=0.5, title="masked-token cross-entropy")

# %% [markdown]
# ## 5 · Text to video, read back by the detector
#
# Each clip is written from its caption in 12 decoding steps, read back by the analytic detector (colour, shape,
# direction from pixels) and scored right when all three match its caption.
#
# **Choosing the guidance scale, then measuring.** Guidance trades diversity for obedience, and the best scale depends
# on the model: a strong push can sharpen the caption's words and also distort the shapes it draws. So the scale is
# chosen first, among s = 1, 2, 3, on validation prompts (other draws and seeds than the test prompts'),
# and the bar is then read once on the held-out test captions. Beside the chosen scale, s = 1 (the conditional
# model itself) and the same idea of reference rows as on moving digits, at the same n: the real clips, their frames
# shuffled (right colour and shape, the direction lost), frozen (no motion) and noise. The bar: attribute accuracy
# at least 0.9, met when beaten by one binomial standard error.

# %%
timer.start()


@torch.no_grad()
def generate(captions_: torch.Tensor, s: float, seed: int, chunk: int = 128) -> torch.Tensor:
    g_ = torch.Generator(S.device).manual_seed(seed)
    out = []
    for i in range(0, len(captions_), chunk):
        with torch.autocast(S.device.type, dtype=torch.bfloat16, enabled=cuda):
            codes_ = model.generate(y=captions_[i:i + chunk], steps=decode_steps, guidance=s, generator=g_)
        out.append(tokenizer.decode_indices(codes_).float().clamp(-1, 1))   # the decoder in fp32
    return torch.cat(out)


val = paths.batch(n_val, seed=77, device=S.device)                     # validation prompts (training draw)
val_acc = {s: attribute_accuracy(generate(tokenize(val.captions).to(S.device), s, seed=2), val.labels)
           ["attribute_accuracy"] for s in guidance_grid}
guidance = max(guidance_grid, key=lambda s: (val_acc[s], -s))          # ties: the weaker guidance
print(f"validation prompts (n = {n_val}), attribute accuracy by guidance scale: "
      + ", ".join(f"s = {s:g}: {a:.3f}" for s, a in val_acc.items()) + f" -> s = {guidance:g}")

t2v = {s: generate(prompt_tokens, s, seed=1) for s in dict.fromkeys((1.0, guidance))}   # the test captions
gshuffle = torch.Generator().manual_seed(0)
rows = {"real": real, "shuffled frames": shuffle_frames(real, gshuffle), "frozen frames": freeze_frames(real),
        "noise": torch.randn(real.shape, generator=gshuffle).clamp(-1, 1).to(S.device),
        "tokenizer reconstructions": recon, "Phenaki, s = 1": t2v[1.0], f"Phenaki, s = {guidance:g}": t2v[guidance]}
scores = {}
print(f"{'':26s} {'colour':>7s} {'shape':>7s} {'direction':>9s} {'all three':>15s}   (n = {n_gen})")
for name, video in rows.items():
    acc = attribute_accuracy(video, labels, by_shape=True)
    acc["attribute_accuracy_se"] = accuracy_se(acc["attribute_accuracy"], n_gen)
    scores[name] = acc
    print(f"{name:26s} {acc['colour_accuracy']:7.3f} {acc['shape_accuracy']:7.3f} {acc['direction_accuracy']:9.3f} "
          f"{acc['attribute_accuracy']:7.3f} ± {acc['attribute_accuracy_se']:.3f}")
for name in ("tokenizer reconstructions", f"Phenaki, s = {guidance:g}"):
    print(f"shape accuracy by shape, {name}: "
          + ", ".join(f"{k} {v:.2f}" for k, v in scores[name]["shape_accuracy_by_shape"].items()))
head = scores[f"Phenaki, s = {guidance:g}"]
t2v_bar = verdict(head["attribute_accuracy"], 0.9, head["attribute_accuracy_se"], lower_is_better=False)
print(f"bar: attribute accuracy ≥ 0.9 at s = {guidance:g}: {t2v_bar}")
timer.lap("text to video")

# %%
# NBVAL_IGNORE_OUTPUT
side_by_side({"caption → video, s = 1": t2v[1.0][:6], f"s = {guidance:g}": t2v[guidance][:6]}, nrow=3, scale=3)

# %% [markdown]
# The same clips as a static filmstrip (every other frame), with the caption each was asked for:

# %%
filmstrip({heldout.captions[i][2:]: t2v[guidance][i] for i in range(6)})

# %% [markdown]
# ## 6 · Longer than training: extension and a prompt sequence
#
# Phenaki's extension (§2.3): decode a clip, take its last 9 frames (1 + 2·4), **encode them again on their own**
# (the first of them now a first frame, so the causal tokenizer gives them 3 time steps of codes), fix those codes,
# mask the other 2 steps and decode them under a caption; append the 8 new frames; repeat. Four chunks take a
# 17-frame clip to 48 frames (the last chunk cut short), nearly 3× the training length.
#
# Two runs, both measured on all 48 frames:
#
# - **one caption**: held-out clips' first 17 frames continued under their own caption (their 48-frame paths stay
#   in view), against the real 48-frame clips;
# - **a prompt sequence**: the model's own text-to-video clips continued with the direction word flipped at every
#   chunk ("… moves right", then "… moves left", then "right", then "left"): the object should turn at every seam.
#   The path doubles back, so it stays in view. Each chunk is read by the detector (its 8 new frames and the frame
#   before them) against its own caption; the same clips continued under their *first* caption, read against the
#   sequence's captions, are the control: they should fail chunks 1 and 3, whose caption differs from the first.
#
# Identity consistency (`attribute_consistency`): the fraction of frames whose colour and shape, each frame read
# alone, are the clip's most common; bar ≥ 0.9.

# %%
timer.start()
context = 1 + 2 * tok_cfg.temporal_patch                               # 9 frames: 3 time steps of codes
flip_ = flip.to(S.device)
n_ = min(n_long, n_gen)
first_labels = {k: v[:n_] for k, v in labels.items()}


def tokens_of(labels_: dict) -> torch.Tensor:
    return tokenize(object_captions(labels_)).to(S.device)


chunk_labels = [first_labels]                                          # chunk 0: the text-to-video clip
for i in range(4):
    previous = chunk_labels[-1]
    chunk_labels.append(previous | {"direction": flip_[previous["direction"]]})
chunk_tokens = [tokens_of(lab) for lab in chunk_labels]


def run_extension(start: torch.Tensor, prompts, seed: int) -> tuple[torch.Tensor, list[int]]:
    """extend() in fp32: the context is encoded again exactly as the training clips were."""
    return extend(model, tokenizer, start, prompts, frames=long_frames, context=context, steps=decode_steps,
                  guidance=guidance, generator=torch.Generator(S.device).manual_seed(seed))


long = {}
long["one caption (real start)"], seams = run_extension(real[:n_], prompt_tokens[:n_], seed=2)
long["prompt sequence (own clips)"], _ = run_extension(t2v[guidance][:n_], chunk_tokens[1:], seed=3)
long["first caption only (control)"], _ = run_extension(t2v[guidance][:n_], chunk_tokens[0], seed=3)
long["real 48-frame clips"] = heldout.video[:n_]
ident = {name: mean_se(attribute_consistency(v)) for name, v in long.items()}      # (mean, SE) over clips
bounds = [0] + seams + [long_frames]


def chunk_accuracy(video: torch.Tensor) -> list[dict]:
    """Each chunk's frames (its first chunk: frames 0-16; later: the frame before the seam and the new ones), read
    against that chunk's caption; each dict also holds ``attribute_correct`` (n,), clip by clip."""
    out = []
    for i, (a, b) in enumerate(zip(bounds[:-1], bounds[1:])):
        out.append(attribute_accuracy(video[:, :, max(a - 1, 0):b], chunk_labels[i], per_clip=True))
    return out


chunks = {name: chunk_accuracy(long[name]) for name in ("prompt sequence (own clips)", "first caption only (control)")}
correct = {name: [c.pop("attribute_correct") for c in per] for name, per in chunks.items()}   # (n_,) bools a chunk
print(f"{n_} clips extended from {window} to {long_frames} frames; seams at frames {seams}")
print(f"{'':30s} {'identity (48 frames)':>22s}")
for name, (m, se) in ident.items():
    print(f"{name:30s} {m:14.3f} ± {se:.3f}")
print(f"\nper chunk, against that chunk's caption (direction flipped at every seam), n = {n_} each:")
for name, per in chunks.items():
    print(f"{name:30s} all three: " + "  ".join(f"{c['attribute_accuracy']:.2f}" for c in per)
          + "   direction: " + "  ".join(f"{c['direction_accuracy']:.2f}" for c in per))
followed = torch.stack(correct["prompt sequence (own clips)"][1:], 1).float()  # (n_, 4): the chunks after a seam
follow_acc, follow_se = mean_se(followed.mean(1))    # over clips: a clip's chunks are read from one continuation
identity_48, identity_48_se = ident["prompt sequence (own clips)"]
identity_bar = verdict(identity_48, 0.9, identity_48_se, lower_is_better=False)
print(f"\nflipped chunks follow their caption: {follow_acc:.3f} ± {follow_se:.3f}; identity of the 48-frame "
      f"prompt-sequence clips {identity_48:.3f} ± {identity_48_se:.3f}: bar ≥ 0.9 {identity_bar}")
timer.lap("extension")

# %%
# NBVAL_IGNORE_OUTPUT
side_by_side({"one caption": long["one caption (real start)"][:4],
              "prompt sequence": long["prompt sequence (own clips)"][:4]}, nrow=2, scale=3)

# %% [markdown]
# The prompt-sequence clips as filmstrips, every third frame, the direction asked of each chunk in the label (the
# seams are printed above):

# %%
def turns(i: int) -> str:
    return " → ".join(DIRECTION_NAMES[int(lab["direction"][i, 0])] for lab in chunk_labels)


filmstrip({turns(i): long["prompt sequence (own clips)"][i] for i in range(4)}, every=3)

# %% [markdown]
# ## 7 · Decoding time
#
# MaskGIT's cost is its number of steps, not its number of codes: 12 forward passes (24 rows with guidance at s ≠ 1)
# write all 320 codes of a clip, where chapter 06's GPT makes one pass per code (with a KV cache, each a short one).
# Measured here at the protocol's batch, the decoder included, after one warm-up call:

# %%
def time_decoding(n: int, steps_: int) -> float:
    """Seconds per clip to write n clips (batches of 128) with ``steps_`` decoding steps, at the chosen scale."""
    generate(prompt_tokens[:min(n, 8)], guidance, seed=0)              # warm-up

    @torch.no_grad()
    def write_all():
        g_ = torch.Generator(S.device).manual_seed(0)
        for i in range(0, n, 128):
            with torch.autocast(S.device.type, dtype=torch.bfloat16, enabled=cuda):
                c_ = model.generate(y=prompt_tokens[i:i + 128], steps=steps_, guidance=guidance, generator=g_)
            tokenizer.decode_indices(c_)
    return timed(write_all)[1] / n                                   # synchronised on CUDA before and after


decode_s = time_decoding(n_gen, decode_steps)
print(f"{decode_steps} steps: {1e3 * decode_s:.2f} ms per clip ({n_gen} clips, batches of 128, s = {guidance:g}, "
      f"{S.device_name})")

# %% [markdown]
# ## 8 · Two claims of the era, measured on these codes
#
# The survey tells the transformer era (§2.1–2.2) as a story of two properties: transformers **scale** (a bigger model,
# given the compute, models the data better), and they **train in parallel** over all positions of a sequence,
# where a recurrent network must compute position i after position i − 1. Both are claims about priors over codes,
# so we measure them on this chapter's codes: clips encoded once by the frozen tokenizer, and chapter 06's GPT, a
# causal transformer over the 320 codes of a clip (unconditional here), read by its bits per code on held-out clips,
# clip by clip, so that two priors compare with the standard error of their paired difference.
#
# - **Scaling**, at matched training FLOPs: three GPTs of growing width and depth, each given the same FLOPs
#   (`flops_per_token` × codes seen: the smaller ones see more codes). Stated before measuring: **supported** if each
#   larger prior reads fewer held-out bits per code than the next smaller one by one standard error; **not
#   supported** if a larger one reads more by one standard error; **not resolved** otherwise.
# - **Parallel against recurrent**, at equal parameters and on the same codes: a GRU prior (Cho et al. 2014; the
#   package's `GRUPrior`, with the interface of `GPT`) with the middle GPT's parameter count (`gru_matching`), and
#   that GPT again, each trained for the same steps on the same batches. Both cost 6N FLOPs per code over their
#   non-embedding parameters N; the GPT's attention adds 12·layers·width·L more, so the GPT does the larger work. All
#   these runs are fp32 (TF32 matrix products on the GPU), since PyTorch's GRU runs in bf16 only with a recent cuDNN.
#   Stated before measuring: **supported** if the GPT trains at least 10% more codes per second than the GRU, **not
#   supported** if the GRU is 10% faster, **not resolved** between (each speed is measured once, over hundreds of
#   steps, so a material margin stands in for a standard error). Their held-out bits are read beside it.

# %%
timer.start()
n_train_codes, n_val_codes = pick(smoke=(32, 8), cpu=(1024, 128), gpu=(32768, 1024))
claim_batch, claim_lr = pick(smoke=8, cpu=16, gpu=128), 1e-3
scale_sizes = pick(smoke=[(1, 16, 2), (1, 24, 2), (2, 32, 2)], cpu=[(1, 32, 2), (2, 48, 2), (2, 64, 4)],
                   gpu=[(2, 128, 4), (4, 192, 4), (6, 256, 4)])      # (layers, width, heads), smallest first
largest_steps = pick(smoke=2, cpu=60, gpu=600)                          # the FLOPs budget: the largest's steps
pair_steps = pick(smoke=2, cpu=100, gpu=800)                            # GPT against GRU, the same codes each
claim_cap = pick(smoke=None, cpu=0.3, gpu=1.2)                          # minutes, a cap on any one run


@torch.no_grad()
def encode_clips(n: int, seed: int) -> torch.Tensor:
    """(n, 5, 8, 8) codes of n fresh 17-frame windows, encoded by the frozen tokenizer in fp32, 256 at a time."""
    draw_ = paths.stream(256, seed=seed, device=S.device)
    out = []
    for i in range(0, n, 256):
        video = windows(draw_(i // 256).video, window, torch.Generator().manual_seed(seed + i))
        out.append(tokenizer.encode(video)[: n - i].to(torch.int16))
    return torch.cat(out)


train_codes = encode_clips(n_train_codes, seed=50)
val_codes = encode_clips(n_val_codes, seed=60)
no_labels = torch.zeros(n_train_codes, dtype=torch.long, device=S.device)
print(f"codes: {tuple(train_codes.shape)} for training ({n_train_codes * gen_cfg.block_size:,} codes), "
      f"{tuple(val_codes.shape)} held out")


def train_prior(prior: torch.nn.Module, steps_: int, desc: str) -> dict:
    """Train a prior on `train_codes` with the chapter's loop (AdamW, warm-up, cosine decay to a tenth, fp32 and
    eager, so that GPT and GRU run at one precision); read its held-out bits per code, clip by clip. Returns what the
    claim checks need."""
    opt = torch.optim.AdamW(prior.parameters(), lr=claim_lr, betas=(0.9, 0.95), weight_decay=0.0, fused=cuda)
    trainer_ = Trainer(prior, opt, TokenBatches(train_codes, no_labels, claim_batch, seed=7),
                       TrainConfig(steps=steps_, max_minutes=claim_cap, amp=False, compile=False,
                                   log_every=log_every, desc=desc),
                       loss_fn=prior_loss, schedulers={"main": warmup_cosine(opt, min(50, steps_), steps_, final=0.1)})
    summary_ = trainer_.fit()
    per_clip = heldout_bits_per_clip(prior, val_codes, None)
    speed = None if summary_.samples_per_s is None else summary_.samples_per_s * gen_cfg.block_size
    return {"params": count_parameters(prior), "steps": summary_.steps, "stopped_by": summary_.stopped_by,
            "minutes": summary_.wall_time_s / 60, "codes_per_s": speed, "per_clip": per_clip,
            "bits": per_clip.mean().item(), "bits_se": mean_se(per_clip)[1]}


vocab = tok_cfg.codebook_size
scale_cfgs = [GPTConfig(vocab_size=vocab, grid=grid, n_layer=n, n_head=h, n_embd=d) for n, d, h in scale_sizes]
budget = largest_steps * claim_batch * gen_cfg.block_size * flops_per_token(scale_cfgs[-1])    # training FLOPs
scaling = {}
for cfg_ in scale_cfgs:
    steps_ = max(1, round(budget / (claim_batch * gen_cfg.block_size * flops_per_token(cfg_))))
    torch.manual_seed(0)
    scaling[f"GPT {cfg_.n_layer} × {cfg_.n_embd}"] = train_prior(GPT(cfg_).to(S.device), steps_,
                                                                 f"GPT {cfg_.n_layer} × {cfg_.n_embd}")
middle = scale_cfgs[1]
gru_cfg = gru_matching(scaling[f"GPT {middle.n_layer} × {middle.n_embd}"]["params"], vocab, grid, n_layer=2)
torch.manual_seed(0)
pair = {"GPT": train_prior(GPT(middle).to(S.device), pair_steps, "GPT, pair"),
        "GRU": train_prior(GRUPrior(gru_cfg).to(S.device), pair_steps, "GRU, pair")}
pair["GPT"]["flops_per_code"], pair["GRU"]["flops_per_code"] = flops_per_token(middle), gru_flops_per_token(gru_cfg)
timer.lap("claims of the era")
print(f"scaling, {budget:.3g} training FLOPs each (uniform: {math.log2(vocab):.0f} bits per code):")
for name, r in scaling.items():
    print(f"  {name:12s} {r['params'] / 1e6:5.2f}M parameters, {r['steps']:5d} steps ({r['stopped_by']}), "
          f"{r['bits']:.3f} ± {r['bits_se']:.3f} bits per code")
print(f"parallel against recurrent, {pair_steps} steps of {claim_batch} clips each:")
for name, r in pair.items():
    print(f"  {name}: {r['params'] / 1e6:.2f}M parameters, {r['flops_per_code'] / 1e6:.1f} MFLOPs per code, "
          f"{r['steps']} steps ({r['stopped_by']}) in {r['minutes']:.2f} min, "
          f"{num(r['codes_per_s'], ',.0f')} codes/s, "
          f"{r['bits']:.3f} ± {r['bits_se']:.3f} bits per code")

# %% [markdown]
# The two readings, each against its statement:

# %%
def paired(a: dict, b: dict) -> tuple[float, float]:
    """Mean and standard error of a's held-out bits minus b's, clip by clip."""
    return mean_se(a["per_clip"] - b["per_clip"])


runs = list(scaling.values())
steps_down = [paired(small, large) for small, large in zip(runs, runs[1:])]     # > 0: the larger one is better
step_verdicts = [verdict(d, 0.0, se, lower_is_better=False) for d, se in steps_down]
matched = all(r["stopped_by"] == "steps" for r in runs)                 # a time cap would break the FLOPs match
scaling_claim = ("not resolved" if not matched else "supported" if all(v == "met" for v in step_verdicts)
                 else "not supported" if "not met" in step_verdicts else "not resolved")
names = list(scaling)
for (small, large), (d, se), v in zip(zip(names, names[1:]), steps_down, step_verdicts):
    print(f"{small} minus {large}: {d:+.3f} ± {se:.3f} bits per code ({v})")
print(f"-> transformers scale (at matched FLOPs, on these codes): {scaling_claim}"
      + ("" if matched else " (a run was stopped by its time cap, so the FLOPs are not matched)"))

speeds = (pair["GPT"]["codes_per_s"], pair["GRU"]["codes_per_s"])
speed_ratio = None if None in speeds else speeds[0] / speeds[1]
parallel_claim = ("not resolved" if speed_ratio is None or 1 / 1.1 < speed_ratio < 1.1
                  else "supported" if speed_ratio >= 1.1 else "not supported")
bits_gap = paired(pair["GRU"], pair["GPT"])                                     # > 0: the GPT is better
print(f"GPT against GRU at equal parameters: {num(speed_ratio, '.2f')}× the codes per second; held-out bits, GRU "
      f"minus GPT, {bits_gap[0]:+.3f} ± {bits_gap[1]:.3f} -> trains faster in parallel: {parallel_claim}")

fig = Figure(figsize=(5.5, 3.2), layout="constrained")
ax = fig.subplots()
ax.plot([r["params"] / 1e6 for r in runs], [r["bits"] for r in runs], "o-", label="GPT, matched FLOPs")
ax.errorbar([r["params"] / 1e6 for r in runs], [r["bits"] for r in runs], yerr=[r["bits_se"] for r in runs],
            fmt="none", color="C0")
ax.plot([pair["GRU"]["params"] / 1e6], [pair["GRU"]["bits"]], "s", color="C3",
        label=f"GRU, {pair_steps} steps")
ax.plot([pair["GPT"]["params"] / 1e6], [pair["GPT"]["bits"]], "^", color="C2", label=f"GPT, {pair_steps} steps")
ax.set_xscale("log"), ax.set_xlabel("parameters (M)"), ax.set_ylabel("held-out bits per code")
ax.legend(fontsize=8)
fig

# %% [markdown]
# **Reading it.** At matched FLOPs a smaller prior sees more codes, so scaling is not won by default: a model too
# big for its budget is still learning what a smaller one has learnt. On a GPU the GRU's time steps run one after
# another (each layer's 320 steps in order), while the GPT's 320 positions are one batch of matrix products. How
# much that is worth depends on the machine (how much it can do at once), which is why the statement names the
# speed measured on the machine that ran it.
#
# ## 9 · Results
#
# Bars (gpu profile): text-to-video attribute accuracy ≥ 0.9 and identity consistency of the 48-frame clips ≥ 0.9,
# each met when beaten by one standard error.

# %%
minutes = (tok_summary.wall_time_s + gen_summary.wall_time_s) / 60
bars = {"attribute accuracy >= 0.9": t2v_bar, "identity consistency (48 frames) >= 0.9": identity_bar}
for name, outcome in bars.items():
    print(f"{'✔' if outcome == 'met' else '✘'} {name}: {outcome}")
results.record(
    "07_phenaki",
    {"headline": {"attribute_accuracy": head["attribute_accuracy"],
                  "attribute_accuracy_se": head["attribute_accuracy_se"],
                  "identity_consistency": identity_48, "identity_consistency_se": identity_48_se,
                  "prompt_following": follow_acc, "prompt_following_se": follow_se,
                  "n_gen": n_gen, "minutes": round(minutes, 2), "tokens_per_s": tokens_per_s,
                  "mfu": gen_summary.mfu, "decode_ms_per_clip": 1e3 * decode_s},
     "text_to_video": scores, "guidance_validation": {f"s={s:g}": a for s, a in val_acc.items()},
     "identity_48": {k: {"mean": m, "se": se} for k, (m, se) in ident.items()},
     "chunks": chunks, "seams": seams, "bars": bars,
     "tokenizer": {"psnr": psnr(recon, real).mean().item(), "usage": float(use["usage"]),
                   "perplexity": float(use["perplexity"]), "parameters": tok_params},
     "parameters": gen_params, "parts_minutes": timer.minutes,
     "era_claims": {"scaling": {name: {k: v for k, v in r.items() if k != "per_clip"} for name, r in scaling.items()}
                    | {"budget_flops": budget, "steps_down": steps_down, "outcome": scaling_claim},
                    "parallel": {name: {k: v for k, v in r.items() if k != "per_clip"} for name, r in pair.items()}
                    | {"gru_config": asdict(gru_cfg), "speed_ratio": speed_ratio, "bits_gru_minus_gpt": bits_gap,
                       "outcome": parallel_claim}}},
    started=STARTED, train={"tokenizer": tok_summary.as_dict(), "maskgit": gen_summary.as_dict()},
    config={"tokenizer": asdict(tok_cfg), "maskgit": asdict(gen_cfg), "text_dim": text_dim, "p_uncond": p_uncond,
            "guidance": guidance, "decode_steps": decode_steps, "batches": [tok_batch, gen_batch],
            "lr": [tok_lr, gen_lr], "minutes": [tok_minutes, gen_minutes], "n_long": n_, "context": context})

# %% [markdown]
# ## Claim check: variable-length video from a sequence of prompts
#
# Phenaki's claim: it "generates variable-length video from a sequence of prompts", the story changing with the prompt
# while the objects stay themselves. Stated before measuring, on the prompt-sequence run of §6: **supported** if the
# flipped chunks follow their captions (attribute accuracy ≥ 0.9 by one standard error over clips, each clip's share
# of its chunks after a seam read right) *and* the 48-frame clips keep identity (≥ 0.9 by one SE); **not supported**
# if either misses its bar by more than one SE;
# **not resolved** otherwise. The control row (the same clips continued under their first caption) must read far lower
# on chunks 1 and 3, whose caption differs from the first, or the direction read back would not be the prompt's doing.

# %%
follow_bar = verdict(follow_acc, 0.9, follow_se, lower_is_better=False)
against_first = chunks["first caption only (control)"][1::2]           # chunks 1, 3: caption ≠ the first one
control = sum(c["attribute_accuracy"] for c in against_first) / len(against_first)
claim = ("supported" if follow_bar == "met" and identity_bar == "met"
         else "not supported" if "not met" in (follow_bar, identity_bar) else "not resolved")
print(f"flipped chunks follow their caption: {follow_acc:.3f} ± {follow_se:.3f} ({follow_bar}); control, first caption "
      f"kept: {control:.3f}; identity over 48 frames {identity_48:.3f} ± {identity_48_se:.3f} ({identity_bar}) "
      f"-> claim {claim}")

# %% [markdown]
# **Reading it.** The masked transformer writes 320 codes in 12 passes, and the causal tokenizer is what lets it
# continue: the last frames of any clip, its own or a real one, become the start of a new clip. Whether a turn is
# followed is a harder question than whether a clip is continued. The model saw turns only as continuation examples
# of real clips, one turn each, at one place in the window; a prompt sequence asks for a turn after every chunk, on
# its own drawings, re-encoded: any error of one chunk becomes the given context of the next. Classifier-free
# guidance, where the chosen scale is above 1, pushes the caption's side against the context's momentum; the control
# row (the same clips, the first caption kept) measures how much of the turning is the caption's doing.
#
# ## Exercises
#
# Each exercise has a stub to fill and a check from the package; run the check cell after editing.
#
# **1. The loss on masked codes.** From logits (B, N, K), the true codes (B, N) and the mask (B, N), a bool tensor
# that is True where the code was replaced by [MASK], return the mean cross-entropy over the masked codes only.

# %%
def masked_token_loss(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # YOUR CODE HERE
    raise NotImplementedError


# %%
# NBVAL_CHECK_OUTPUT
check("masked_token_loss", masked_token_loss)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `F.cross_entropy(logits[mask], targets[mask])`: indexing with the bool mask keeps the (M, K) logits and the (M,)
# codes of the M masked positions, and the cross-entropy averages over them (`my_masked_loss` in §3). The reference
# answer: `solution("masked_token_loss")`.
# </details>

# %%
# NBVAL_CHECK_OUTPUT
check("masked_token_loss", solution("masked_token_loss"))   # the reference answer, through the same check

# %% [markdown]
# **2. Guided logits.** From the logits with the caption, ℓ(c), and without it, ℓ(∅) (the same shape), and the scale
# s, return ℓ(∅) + s (ℓ(c) − ℓ(∅)).

# %%
def guided_logits(cond: torch.Tensor, uncond: torch.Tensor, guidance: float) -> torch.Tensor:
    # YOUR CODE HERE
    raise NotImplementedError


# %%
# NBVAL_CHECK_OUTPUT
check("guided_logits", guided_logits)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `uncond + guidance * (cond - uncond)`: s = 1 gives ℓ(c), s = 0 gives ℓ(∅), and s > 1 moves past ℓ(c), away from
# ℓ(∅). The reference answer: `solution("guided_logits")`.
# </details>

# %%
# NBVAL_CHECK_OUTPUT
check("guided_logits", solution("guided_logits"))   # the reference answer, through the same check

# %% [markdown]
# **3. The schedule, and fewer steps.** How many of n codes are still masked after step t (counted from 0) of T?
# Use the cosine schedule at r = (t + 1)/T, rounded down, as in §3.

# %%
def still_masked(n: int, t: int, steps: int) -> int:
    # YOUR CODE HERE
    raise NotImplementedError


# %%
# NBVAL_CHECK_OUTPUT
check("still_masked", still_masked)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `math.floor(math.cos(math.pi / 2 * (t + 1) / steps) * n)`, in float64 (`math`, or the package's
# `cosine_schedule`), not with a float32 tensor: at r = 2/3 the product is exactly n/2, and float32 rounds it just
# below. After the last step it is 0. The reference answer: `solution("still_masked")`.
# </details>

# %%
# NBVAL_CHECK_OUTPUT
check("still_masked", solution("still_masked"))   # the reference answer, through the same check

# %% [markdown]
# Now change the recipe and predict before you run: decode the same captions in 4 steps and in 24 instead of 12.
# **Predict** the attribute accuracy and the time per clip of each. Then run:

# %%
few = pick(smoke=8, cpu=32, gpu=128)
for steps_ in (4, decode_steps, 24):
    g_ = torch.Generator(S.device).manual_seed(4)
    with torch.no_grad(), torch.autocast(S.device.type, dtype=torch.bfloat16, enabled=cuda):
        c_ = model.generate(y=prompt_tokens[:few], steps=steps_, guidance=guidance, generator=g_)
    video_ = tokenizer.decode_indices(c_).float().clamp(-1, 1)
    acc = attribute_accuracy(video_, {k: v[:few] for k, v in labels.items()})
    print(f"{steps_:2d} steps: attribute accuracy {acc['attribute_accuracy']:.3f} ± "
          f"{accuracy_se(acc['attribute_accuracy'], few):.3f}, {1e3 * time_decoding(few, steps_):.2f} ms per clip")

# %% [markdown]
# <details><summary>What to look for</summary>
#
# The time grows in proportion to the steps. The cosine schedule fixes few codes early and many late: of the 320 codes
# of a gpu-profile clip, 4 steps fix 25 in the first (from the caption alone) and 122 in the last, all at once and
# independently of each other (`decode_schedule(320, 4)` gives the masked counts after each step). Codes fixed
# together may each be likely alone and still not agree (two halves of different shapes); more steps make each group
# smaller and let later codes see the earlier ones. Whether steps past 12 still pay shows in the last two rows:
# compare their difference with its standard error. </details>

# %%
print(f"chapter wall time: {(time.time() - STARTED) / 60:.1f} min; parts (min): {timer.minutes}")
