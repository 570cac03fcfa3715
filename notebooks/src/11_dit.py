# %% [markdown]
# # 11 · DiT: diffusion transformers on spacetime patches
#
# **What this chapter builds.** A Diffusion Transformer (DiT) for video. A clip is cut into patches, one frame's
# p × p pixels each (tubelets of 1 × p × p), every patch becomes one token with a fixed sine-cosine position, and a
# stack of transformer blocks, steered by the noise level through **adaLN-Zero**, denoises the tokens; a final layer
# maps every token back to its pixels. We build the patching, the positions (the paper's 2D table for an image, a
# 3D one for a clip), one adaLN-Zero block and the whole forward pass by hand and check each against `vgcourse.dit`;
# check the package against the paper's 12 named models; write the v-prediction loss and the training step by hand
# and check them against the package's loop; then train the chapter's DiT (21.8M parameters, 8 blocks of width 384,
# patch 4, compiled) for most of the chapter's minutes and score its samples with the course's protocol. Around it:
# where the GPU's time goes (MFU, measured in a cell of its own), a **scaling study** of two model widths trained on
# the same number of FLOPs, what latent space would save, and the same training on many GPUs.
#
# **Where it sits in the history.** The survey's fourth stage: after GANs (chapters 01–04), autoregressive
# transformers over tokens (05–07) and diffusion U-Nets (08–10), the denoiser itself becomes a transformer.
#
# - Dosovitskiy et al. 2021 (**ViT**) cut images into patches and fed them to a plain transformer; Arnab et al. 2021
#   (**ViViT**) cut videos into tubelets.
# - Bao et al. 2023 (**U-ViT**) and Peebles & Xie 2023 (**DiT**) replaced the U-Net of latent diffusion with a
#   transformer; DiT conditioned every block through adaptive layer norm with zero-initialised gates (adaLN-Zero)
#   and showed that its image quality follows its compute (Gflops per forward pass), as language models' does.
# - Salimans & Ho 2022 trained diffusion models to predict **v** instead of the noise; Imagen Video (Ho et al. 2022)
#   did so for video. We use it here: it learns faster in short runs.
# - Ma et al. 2024 (**Latte**), Gupta et al. 2023 (**W.A.L.T**) and OpenAI's **Sora** (2024, "spacetime patches")
#   carried DiT to video; chapter 12 continues there.
#
# **Time per profile.** The same code runs in every profile; only sizes change (chosen below with `pick`).
#
# | profile | chapter's DiT | training | scaling study | time |
# |---|---|---|---|---|
# | `smoke` | 1 block of 32, patch 8 | 2 steps | 2 tiny models, a few steps | < 1 min on 2 CPU cores (checks only) |
# | `cpu` | 4 blocks of 128, patch 8 | 4 min | 2 models, about 1 min each | ≈ 7.5 min on 2 CPU cores |
# | `gpu` | 8 blocks of 384, patch 4 (21.8M) | 5.6 min, compiled, batch 64 | M 0.5 min, S on its FLOPs | ≈ 9 min |
#
# The smoke profile only checks that everything runs; the cpu profile draws blobs; the committed outputs come from
# the gpu profile. Each part prints the minutes it took, and the results file records them.

# %%
import copy
import math
import time
from dataclasses import asdict

import torch
import torch.nn.functional as F
from einops import rearrange
from IPython.display import display

from vgcourse.profiles import pick, setup

STARTED = time.time()
S = setup(seed=0)          # prints profile, device, precision, compile, torch version

# %%
from vgcourse import results
from vgcourse.autoencoders import VideoAutoencoder, kl_f4_base
from vgcourse.diffusion import VPrediction, cosine_schedule, ddim_sample, ddim_sample_chunked, diffusion_loss
from vgcourse.display import filmstrip, plot_curves, plot_xy, side_by_side
from vgcourse.dit import (
    DIT_CONFIGS,
    PAPER_GFLOPS,
    PAPER_IMAGENET_256,
    PAPER_PARAMS_M,
    DiT,
    DiT_B_2,
    DiTBlock,
    DiTConfig,
    LabelEmbedder,
    PatchEmbed3D,
    TimestepEmbedder,
    flops_per_forward,
    measured_flops_per_forward,
    num_parameters,
    patchify,
    sincos_1d,
    sincos_2d,
    sincos_3d,
    unpatchify,
)
from vgcourse.exercises import check, solution
from vgcourse.metrics import PROTOCOL, reference_rows, score, verdict
from vgcourse.metrics.protocol import floor_fd, format_rows, headline
from vgcourse.results import PartTimer, num
from vgcourse.train import configure_adamw, count_flops, make_trainer, warmup_cosine
from vgcourse.train.distributed import init_distributed, shard_batches, unwrap, wrap_model

timer = PartTimer(STARTED)  # minutes of each part of the chapter, printed as it goes

# %% [markdown]
# ## Sizes for this profile
#
# Everything that changes between profiles is chosen here, in plain view. The data is the course's protocol:
# moving digits at 32 × 32, 16 frames, 2 digits. Every DiT of the chapter is unconditional (as chapter 08's U-Net),
# cut into one-frame patches of p × p pixels, and trained with the same recipe: v-prediction on a cosine noise
# schedule, AdamW with a linear warm-up and a cosine decay of the learning rate to a tenth, gradients clipped at
# norm 1, an exponential moving average (EMA) of the weights for sampling, bf16 autocast and `torch.compile` on the
# GPU. Training is bounded by minutes (`max_minutes`, compilation included): the loop measures its seconds per step,
# stops at the last step that fits and ends the learning-rate decay there. The scaling study's two models are named
# S and M; the chapter's DiT is M, trained longer.

# %%
data = PROTOCOL.dataset()                          # moving digits, 32×32, 16 frames, 2 digits
schedule = cosine_schedule(1000).to(S.device)      # ᾱ_t of Nichol & Dhariwal 2021, T = 1000 steps
patch = pick(smoke=8, cpu=8, gpu=4)                # p: every token is one frame's p × p patch
archs = pick(                                      # the study's models: name -> (depth, width, heads)
    smoke={"S": (1, 32, 2), "M": (1, 48, 3)},
    cpu={"S": (4, 64, 2), "M": (4, 128, 4)},
    gpu={"S": (8, 256, 4), "M": (8, 384, 6)},
)
batch = pick(smoke=2, cpu=8, gpu=64)               # clips per step
lr, warmup, decay_to = pick(smoke=1e-3, cpu=1e-3, gpu=3e-4), pick(smoke=1, cpu=20, gpu=200), 0.1
betas = (0.9, 0.99)                                # AdamW; no weight decay
steps = pick(smoke=2, cpu=100_000, gpu=100_000)    # a cap: on cpu and gpu the minutes decide
main_minutes = pick(smoke=None, cpu=4.0, gpu=5.6)  # the chapter's DiT, compilation included
main_ema = pick(smoke=0.9, cpu=0.99, gpu=0.999)    # EMA decay of its weights
study_minutes = pick(smoke=None, cpu=0.75, gpu=0.5)  # the study's M; S gets M's FLOPs
study_ema, study_warmup = pick(smoke=0.9, cpu=0.98, gpu=0.99), pick(smoke=1, cpu=10, gpu=100)
chapter_minutes = pick(smoke=None, cpu=10.0, gpu=9.0)   # the whole notebook: the study's S is capped to fit it
ddim_steps = pick(smoke=2, cpu=20, gpu=50)         # DDIM steps per sample
ddim_eta = 1.0                                     # fresh noise at every sampling step (DDIM's η)
n_gen = pick(smoke=8, cpu=64, gpu=PROTOCOL.n_gen)  # generated clips scored (the protocol's n)
n_real = pick(smoke=32, cpu=256, gpu=PROTOCOL.n_real)   # held-out reference clips of the protocol
log_every = pick(smoke=1, cpu=10, gpu=100)


def dit_config(depth: int, width: int, heads: int) -> DiTConfig:
    """An unconditional DiT for the protocol's clips (1 channel, 16 frames, 32×32), one-frame patches of p × p."""
    return DiTConfig(input_size=data.size, frames=data.frames, in_channels=data.channels, num_classes=0,
                     patch_size=patch, temporal_patch=1, depth=depth, hidden_size=width, num_heads=heads)


main_cfg = dit_config(*archs["M"])
budget = f"{main_minutes} min" if main_minutes else f"{steps} steps"
print(f"data: {data}")
print(f"the chapter's DiT: {main_cfg.depth} blocks of width {main_cfg.hidden_size}, {main_cfg.num_heads} heads, "
      f"patch 1×{patch}×{patch}: {num_parameters(main_cfg) / 1e6:.1f}M parameters, token grid {main_cfg.grid} = "
      f"{math.prod(main_cfg.grid)} tokens, {flops_per_forward(main_cfg):.2f} Gflops per clip")
print(f"training: {budget}, batch {batch}, lr {lr:g} (warm-up {warmup} steps, cosine to {decay_to:g}×), EMA "
      f"{main_ema}, compile={S.compile}; {n_gen} samples of {ddim_steps} DDIM steps scored against {n_real} clips")

# %% [markdown]
# The data: two handwritten digits bouncing off the walls (chapter 00).

# %%
# NBVAL_IGNORE_OUTPUT
side_by_side({"real clips": data.batch(8, seed=1).video}, nrow=4, scale=3)

# %% [markdown]
# ## 1 · Spacetime patches (tubelets)
#
# A video x of shape (B, C, T, H, W) is cut into a grid of T' × H' × W' tubelets, T' = T/p_t, H' = H/p, W' = W/p.
# Each tubelet's p_t·p·p·C values become one row: L = T'·H'·W' tokens. By hand it is a reshape that splits every
# axis into (number of patches, patch size), a permute that moves the grid axes first, and a flatten:
# %%
# NBVAL_CHECK_OUTPUT
x = torch.randn(2, 3, 4, 8, 8, generator=torch.Generator().manual_seed(0))  # (B, C, T, H, W)
pt, p = 2, 4
b, c, t, h, w = x.shape
tubes = x.reshape(b, c, t // pt, pt, h // p, p, w // p, p)          # (B, C, T', pt, H', p, W', p)
tubes = tubes.permute(0, 2, 4, 6, 3, 5, 7, 1)                        # (B, T', H', W', pt, p, p, C)
my_tokens = tubes.reshape(b, (t // pt) * (h // p) * (w // p), pt * p * p * c)  # (B, L, pt·p·p·C)
torch.testing.assert_close(my_tokens, patchify(x, pt, p))
print("video", tuple(x.shape), "-> tokens", tuple(my_tokens.shape), ": matches vgcourse.dit.patchify")

# The tubelet embedding is one linear map per tubelet: a Conv3d whose kernel = stride = (pt, p, p)
embed = PatchEmbed3D(in_channels=c, hidden_size=16, patch_size=p, temporal_patch=pt)
weight = rearrange(embed.proj.weight, "d c kt kh kw -> d (kt kh kw c)")  # (D, pt·p·p·C), in patchify's order
torch.testing.assert_close(embed(x), my_tokens @ weight.T + embed.proj.bias, rtol=1e-5, atol=1e-5)
torch.testing.assert_close(unpatchify(my_tokens, (t // pt, h // p, w // p), pt, p), x)
print("Conv3d(kernel = stride = (pt, p, p)) = a linear layer on patchified tubelets; unpatchify inverts patchify")

# %% [markdown]
# Here the example cuts tubelets of two frames (p_t = 2). The chapter's DiT uses **one-frame patches**, p_t = 1:
# with p = 4 a 16 × 32 × 32 clip becomes 16 × 8 × 8 = 1,024 tokens of 16 pixels each. Two-frame tubelets would halve
# the tokens (and more than halve the attention), but every token would then have to draw two frames from one
# vector; with one frame per token, all mixing across time happens in attention, and a clip of one frame is an
# image, the paper's setting.
#
# ## 2 · Where and when: fixed sine-cosine positions
#
# Attention is blind to order, so every token gets its position added. DiT uses the fixed sine-cosine embedding of
# Vaswani et al. (2017, §3.5) on each axis of the patch grid, as MAE does: a position pos is encoded by D/2
# frequencies ω_i = 1/10000^(2i/D) as [sin(pos·ω), cos(pos·ω)]. For an image, the paper gives **D/2 channels to the
# column and D/2 to the row**. For a clip we give **D/4 channels to the frame t and 3D/8 each to the row h and the
# column w**. Written out for one axis, then the paper's 2D table as facebookresearch/DiT builds it
# (`get_2d_sincos_pos_embed`, ported line by line to torch), against the package and against the table an image
# DiT (one frame) holds:

# %%
# NBVAL_CHECK_OUTPUT
D = 64
pos = torch.arange(5.0)
omega = 1.0 / 10_000 ** (torch.arange(D // 2, dtype=torch.float64) / (D / 2))   # (D/2,) frequencies
angles = pos.double()[:, None] * omega[None]                                    # (L, D/2)
my_1d = torch.cat([angles.sin(), angles.cos()], dim=1).float()                  # (L, D)
torch.testing.assert_close(my_1d, sincos_1d(D, pos))
print("1D sin-cos matches vgcourse.dit.sincos_1d")


def dit_2d_table(dim: int, size: int) -> torch.Tensor:
    """facebookresearch/DiT's get_2d_sincos_pos_embed (models.py), in torch: (size·size, dim)."""
    grid_h = torch.arange(size, dtype=torch.float32)
    grid_w = torch.arange(size, dtype=torch.float32)
    grid = torch.stack(torch.meshgrid(grid_w, grid_h, indexing="xy"))  # as np.meshgrid(grid_w, grid_h): w goes first
    emb_h = sincos_1d(dim // 2, grid[0].reshape(-1))                   # the reference's "h" half: grid[0], the column
    emb_w = sincos_1d(dim // 2, grid[1].reshape(-1))                   # and its "w" half: grid[1], the row
    return torch.cat([emb_h, emb_w], dim=1)                            # (H·W, D)


image_dit = DiT(DiTConfig(input_size=8, frames=1, in_channels=4, patch_size=2, depth=1, hidden_size=D, num_heads=4,
                          num_classes=0))                              # one frame: an image DiT, a 4×4 token grid
torch.testing.assert_close(dit_2d_table(D, 4), sincos_2d(D, (4, 4)))
torch.testing.assert_close(image_dit.pos_embed, dit_2d_table(D, 4))
print("the paper's 2D table = vgcourse.dit.sincos_2d = the position table of a one-frame DiT")

pe = sincos_3d(D, (4, 3, 3))                                                    # a (T', H', W') grid of a clip
by_axis = rearrange(pe, "(t h w) d -> t h w d", t=4, h=3)
print("3D table", tuple(pe.shape), "for grid (4, 3, 3); its first D/4 channels depend only on t:",
      bool((by_axis[:, :1, :1, :D // 4] == by_axis[:, :, :, :D // 4]).all()))
one_frame = sincos_3d(D, (1, 4, 4))
constant = (one_frame == one_frame[0]).all(0)                                  # channels equal for every token
print(f"the 3D table of a one-frame grid: {int(constant.sum())} of {D} channels are the same for every token "
      "(frame 0's), which is why an image DiT uses the 2D table")

# %% [markdown]
# A video DiT keeps the 3D table even when it is shown a single frame, so that images trained beside clips sit at
# frame 0 (chapter 12's joint image-video training); a DiT configured with one frame is the paper's image DiT, with
# the paper's table.
#
# ## 3 · What the network is told: timestep and label embedders
#
# The noise level t enters as sinusoidal features (256 of them) followed by a two-layer SiLU MLP; a class label
# enters through an embedding table with one extra **null class**, which replaces the label with probability 0.1
# during training, so that one network is both conditional and unconditional (classifier-free guidance, Ho &
# Salimans 2022). Their sum c is the conditioning vector of every block. The moving-digit models of this chapter are
# unconditional, as chapter 08's U-Net is; chapter 12 conditions on text.

# %%
# NBVAL_CHECK_OUTPUT
t_embed = TimestepEmbedder(hidden_size=64)
steps_ = torch.tensor([0, 10, 999])
half = 128
freqs = torch.exp(-math.log(10_000) * torch.arange(half) / half)
torch.testing.assert_close(t_embed.sinusoidal(steps_), torch.cat([torch.cos(steps_[:, None] * freqs),
                                                                   torch.sin(steps_[:, None] * freqs)], 1))
y_embed = LabelEmbedder(num_classes=10, hidden_size=64, dropout_prob=0.1)
forced = y_embed(torch.tensor([3, 3]), train=False, force_drop=torch.tensor([False, True]))
print("timestep features", tuple(t_embed.sinusoidal(steps_).shape), "-> c", tuple(t_embed(steps_).shape),
      "| label table", tuple(y_embed.embedding_table.weight.shape), "(10 classes + null)")
print("a dropped label is the null class:", torch.equal(forced[1], y_embed.embedding_table.weight[10]))

# %% [markdown]
# ## 4 · One adaLN-Zero block, step by step
#
# A DiT block is a pre-norm transformer block whose LayerNorms have no parameters of their own: the conditioning
# c regresses them. A linear layer on SiLU(c) gives six vectors per sample (Peebles & Xie 2023, §3.2): shift β₁,
# scale γ₁, gate α₁ for attention and β₂, γ₂, α₂ for the MLP:
#
# $$x \leftarrow x + \alpha_1 \cdot \mathrm{Attn}\big(\mathrm{LN}(x)(1 + \gamma_1) + \beta_1\big), \qquad
# x \leftarrow x + \alpha_2 \cdot \mathrm{MLP}\big(\mathrm{LN}(x)(1 + \gamma_2) + \beta_2\big).$$
#
# "Zero": the linear layer that produces (β, γ, α) starts at zero, so every gate α = 0 and every block starts as
# the identity; the final layer starts at zero too, so the untrained model outputs 0. The paper found this the best
# of four ways to condition (in-context tokens, cross-attention, adaLN, adaLN-Zero; §3.2, Fig. 5). The package's
# `DiTBlock` is the course's one adaLN block (`vgcourse.nn.AdaLNBlock`, which the other transformers of the course
# share), with attention through `F.scaled_dot_product_attention` (a fused flash kernel on the GPU) and the MLP of
# ViT (Linear → GELU → Linear, 4× wide). Written out, then the whole forward pass:

# %%
# NBVAL_CHECK_OUTPUT
def my_block(block: DiTBlock, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """One adaLN-Zero block: tokens x (B, L, D), conditioning c (B, D) -> (B, L, D)."""
    d, heads = x.shape[-1], block.attn.heads
    shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = block.adaLN_modulation(c).chunk(6, dim=1)  # 6×(B, D)
    h = F.layer_norm(x, (d,), eps=1e-6) * (1 + scale_a[:, None]) + shift_a[:, None]                 # (B, L, D)
    q, k, v = rearrange(block.attn.qkv(h), "b l (three n e) -> three b n l e", three=3, n=heads)   # (B, heads, L, d)
    a = F.scaled_dot_product_attention(q, k, v)                                                    # softmax(QKᵀ/√d)V
    x = x + gate_a[:, None] * block.attn.proj(rearrange(a, "b n l e -> b l (n e)"))                # (B, L, D)
    h = F.layer_norm(x, (d,), eps=1e-6) * (1 + scale_m[:, None]) + shift_m[:, None]                 # (B, L, D)
    fc1, _, fc2 = block.mlp                                                                   # Linear, GELU, Linear
    return x + gate_m[:, None] * fc2(F.gelu(fc1(h), approximate="tanh"))                           # (B, L, D)


def my_dit_forward(model: DiT, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """An unconditional DiT's forward pass: noisy clips x (B, C, T, H, W), timesteps t (B,) -> output like x."""
    cfg = model.config
    tokens = model.x_embedder(x) + model.pos_embed                      # (B, L, D): patches embedded, positions added
    c = model.t_embedder(t)                                             # (B, D): the noise level
    for block in model.blocks:
        tokens = my_block(block, tokens, c)                             # (B, L, D)
    final = model.final_layer                                           # adaLN (shift, scale; no gate), then linear
    shift, scale = final.adaLN_modulation(c).chunk(2, dim=1)            # 2×(B, D)
    h = F.layer_norm(tokens, (cfg.hidden_size,), eps=1e-6) * (1 + scale[:, None]) + shift[:, None]
    out = final.linear(h)                                               # (B, L, pt·p·p·C): each token's pixels
    return unpatchify(out, cfg.grid, cfg.temporal_patch, cfg.patch_size)   # (B, C, T, H, W)


torch.manual_seed(0)
toy = DiT(DiTConfig(input_size=8, frames=4, in_channels=1, patch_size=2, temporal_patch=1, depth=2, hidden_size=64,
                    num_heads=4, num_classes=0))
toy_x, toy_t = torch.randn(2, 1, 4, 8, 8), torch.tensor([5, 700])
tokens = torch.randn(2, math.prod(toy.config.grid), 64)                      # (B, L, D)
c0 = toy.t_embedder(toy_t)                                                   # (B, D)
print("at initialisation every block is the identity:", all(torch.equal(blk(tokens, c0, toy.config.grid), tokens)
                                                            for blk in toy.blocks))
print("and the output is zero:", bool((toy(toy_x, toy_t) == 0).all()))
trained_like = copy.deepcopy(toy)
with torch.no_grad():
    for q in trained_like.parameters():
        q.add_(0.05 * torch.randn_like(q))                                   # leave the zero init, to test it all
    torch.testing.assert_close(my_block(trained_like.blocks[0], tokens, c0),
                               trained_like.blocks[0](tokens, c0, toy.config.grid), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(my_dit_forward(trained_like, toy_x, toy_t), trained_like(toy_x, toy_t),
                               rtol=1e-4, atol=1e-5)
print("my_block matches vgcourse.dit.DiTBlock; my_dit_forward matches vgcourse.dit.DiT:",
      tuple(toy_x.shape), "->", tuple(my_dit_forward(trained_like, toy_x, toy_t).shape))

# %% [markdown]
# ## 5 · Faithful to the paper: the 12 named configs
#
# Peebles & Xie (2023, Table 1 and 4) name four sizes (S, B, L, XL) and three patch sizes (8, 4, 2) at ImageNet
# 256×256 (a 32×32×4 latent). Patch size changes the number of tokens, not the parameters; Gflops count one
# multiply-add as one flop (the authors' convention). Our counts, built on the meta device (no memory):
# %%
# NBVAL_CHECK_OUTPUT
print(f"{'model':9s} {'params (M)':>10s} {'paper':>6s} {'Gflops':>8s} {'paper':>7s} {'tokens':>7s}")
for name, make in DIT_CONFIGS.items():
    cfg = make(**PAPER_IMAGENET_256)
    size = name.split("-")[1].split("/")[0]
    tokens_ = cfg.grid[1] * cfg.grid[2]
    print(f"{name:9s} {num_parameters(cfg) / 1e6:10.1f} {PAPER_PARAMS_M[size]:6d} {flops_per_forward(cfg):8.2f} "
          f"{PAPER_GFLOPS[name]:7.2f} {tokens_:7d}")
    assert abs(flops_per_forward(cfg) / PAPER_GFLOPS[name] - 1) < 0.02
    assert abs(num_parameters(cfg) / 1e6 / PAPER_PARAMS_M[size] - 1) < 0.01
for name in ["DiT-S/8", "DiT-XL/2"]:  # an independent count: PyTorch's FlopCounterMode on the meta device
    cfg = DIT_CONFIGS[name](**PAPER_IMAGENET_256)
    assert abs(measured_flops_per_forward(cfg) / flops_per_forward(cfg) - 1) < 1e-6
print("all within 1% (params) and 2% (Gflops) of the paper; FlopCounterMode agrees on S/8 and XL/2")

# %% [markdown]
# ## 6 · What the DiT learns: v-prediction, and the training step
#
# The forward process of chapter 08 noises a clip x₀ to x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε (Ho et al. 2020, eq. (4)). DiT
# predicts ε; here the network predicts **v = √ᾱ_t ε − √(1−ᾱ_t) x₀** instead (Salimans & Ho 2022, §4) and is trained on
#
# $$L = \mathbb{E}_{t, x_0, \varepsilon}\, \big\lVert v_\theta(x_t, t) - v \big\rVert^2, \qquad
# t \sim \mathcal{U}\{0, \dots, T-1\}, \;\; \varepsilon \sim \mathcal{N}(0, I).$$
#
# Why: from an ε-prediction the sampler estimates the clean clip as x̂₀ = (x_t − √(1−ᾱ_t) ε̂)/√ᾱ_t, and at high noise
# (ᾱ_t → 0) the division multiplies every error of ε̂; early in training the first sampling steps then commit to
# noise-like "data". From v, x̂₀ = √ᾱ_t x_t − √(1−ᾱ_t) v̂: at high noise it is −v̂, a direct guess of the clip, and the
# errors are never amplified. The samplers of the course expect ε, so `VPrediction` wraps the network and returns
# ε̂ = √ᾱ_t v̂ + √(1−ᾱ_t) x_t. The loss and one training step by hand: noise, predict, `.backward()`, clip the gradient's
# norm at 1, an AdamW step, the learning-rate schedule, and the EMA of the weights that the sampler will use.

# %%
# NBVAL_CHECK_OUTPUT
def my_v_loss(net, x0: torch.Tensor, schedule_) -> torch.Tensor:
    """The v-prediction loss of a v-network `net` on clean clips x0 (B, C, T, H, W): a scalar."""
    b = x0.shape[0]
    t = torch.randint(0, schedule_.T, (b,), device=x0.device)                # t ~ U{0, …, T−1}
    eps = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype)           # ε ~ N(0, I)
    a = schedule_.sqrt_alphas_cumprod[t].view(b, 1, 1, 1, 1)                 # √ᾱ_t
    s = schedule_.sqrt_one_minus_alphas_cumprod[t].view(b, 1, 1, 1, 1)       # √(1−ᾱ_t)
    x_t = a * x0 + s * eps                                                   # eq. (4): the noised clip
    v = a * eps - s * x0                                                     # the target
    return ((net(x_t, t).float() - v) ** 2).mean()


def my_train_step(model: VPrediction, ema_model: VPrediction, optimizer, lr_schedule, x0: torch.Tensor,
                  ema_decay: float, max_norm: float = 1.0) -> torch.Tensor:
    """One step: the loss, its gradient, clipping, AdamW, the learning rate's schedule and the EMA."""
    loss = my_v_loss(model.net, x0, model.schedule)                         # model.net predicts v
    optimizer.zero_grad(set_to_none=True)
    loss.backward()                                                          # ∂L/∂θ for every weight θ
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)             # rescale if ‖∇‖ > max_norm
    optimizer.step()                                                         # AdamW
    lr_schedule.step()                                                       # warm-up, then cosine decay
    with torch.no_grad():
        for p_ema, p_live in zip(ema_model.parameters(), model.parameters()):
            p_ema.lerp_(p_live, 1 - ema_decay)                               # θ_ema ← d·θ_ema + (1 − d)·θ
    return loss.detach()


check_schedule = cosine_schedule(1000)                                       # on the CPU, for the checks
check_cfg = DiTConfig(input_size=8, frames=4, in_channels=1, patch_size=4, temporal_patch=1, depth=2, hidden_size=32,
                      num_heads=2, num_classes=0)
x0 = data.batch(2, seed=3).video[:, :, :4, 12:20, 12:20]                    # a crop: (2, 1, 4, 8, 8)
torch.manual_seed(0)
net = DiT(check_cfg)
torch.manual_seed(1)
mine = my_v_loss(net, x0, check_schedule)
torch.manual_seed(1)
torch.testing.assert_close(mine, diffusion_loss(VPrediction(net, check_schedule), x0, check_schedule))
print("my_v_loss matches vgcourse.diffusion.diffusion_loss on a VPrediction model")

twins = {}
for who in ("mine", "package"):
    torch.manual_seed(0)
    model = VPrediction(DiT(check_cfg), check_schedule)
    torch.manual_seed(1)
    if who == "mine":
        ema_model = copy.deepcopy(model).requires_grad_(False)
        optimizer = configure_adamw(model, 1e-3, betas=betas)                # weight decay groups (none decayed here)
        lr_schedule = warmup_cosine(optimizer, 2, 3, final=decay_to)
        for _ in range(3):
            my_train_step(model, ema_model, optimizer, lr_schedule, x0, ema_decay=0.9)
    else:
        trainer = make_trainer(model, lambda step: x0, 3, lambda m, x: diffusion_loss(m, x, check_schedule), lr=1e-3,
                               warmup=2, decay_to=decay_to, betas=betas, ema_decay=0.9, progress=False,
                               measure_flops=False, log_every=1)
        trainer.fit()
        ema_model = trainer.ema.model
    twins[who] = (model.state_dict(), ema_model.state_dict())
for live_or_ema in (0, 1):
    for key, value in twins["mine"][live_or_ema].items():
        torch.testing.assert_close(value, twins["package"][live_or_ema][key])
print("three steps of my_train_step leave the same weights and EMA weights as vgcourse.train.make_trainer's loop")
v_net = VPrediction(net, check_schedule)
t_ = torch.tensor([10, 900])
x_t = torch.randn(2, 1, 4, 8, 8)
abar = check_schedule.alphas_cumprod[t_].view(2, 1, 1, 1, 1)
with torch.no_grad():
    torch.testing.assert_close(v_net(x_t, t_), abar.sqrt() * net(x_t, t_) + (1 - abar).sqrt() * x_t)
print("VPrediction hands the samplers ε̂ = √ᾱ_t v̂ + √(1−ᾱ_t) x_t")

# %% [markdown]
# ## 7 · Training the chapter's DiT
#
# The package's loop runs the step above (its `diffusion_loss` is `my_v_loss` for a `VPrediction` model) on fresh
# batches of the data stream, compiled and under bf16 autocast on the GPU, for `main_minutes` (compilation
# included). The FLOPs of a step are counted by PyTorch on one real step, forward and backward, and MFU (model FLOPs
# utilisation) is the measured FLOP/s over the GPU's dense bf16 peak (989 TFLOP/s on an H100 or H200), over the
# steps after compilation.

# %%
def v_loss(model, batch_) -> torch.Tensor:
    return diffusion_loss(model, batch_.video, schedule, pixels=True)


def train_dit(cfg: DiTConfig, steps_: int, minutes: float | None, ema: float, warmup_: int, desc: str,
              compile_: bool = S.compile):
    """A v-prediction DiT trained with the chapter's recipe on the data stream (the same batches for every model)."""
    torch.manual_seed(0)
    model = VPrediction(DiT(cfg), schedule).to(S.device)
    trainer = make_trainer(model, data.stream(batch, seed=0, device=S.device), steps_, v_loss, lr=lr, warmup=warmup_,
                           decay_to=decay_to, betas=betas, ema_decay=ema, minutes=minutes, compile=compile_,
                           desc=desc, log_every=log_every, model_config=asdict(cfg))
    trainer.fit()
    return trainer


def report(desc: str, summary) -> None:
    print(f"{desc}: {summary.steps} steps in {summary.wall_time_s / 60:.2f} min, {num(summary.samples_per_s, ',.0f')} "
          f"clips/s, MFU {num(summary.mfu, '.1%')}, {num(summary.train_flops, '.3g')} training FLOPs, on "
          f"{summary.device}")


timer.start()
main_trainer = train_dit(main_cfg, steps, main_minutes, main_ema, warmup, "DiT")
main_summary = main_trainer.summary
main_train_minutes = timer.lap("the chapter's DiT: training")
report("the chapter's DiT", main_summary)
plot_curves(main_trainer.history, keys=["loss"], smooth=0.6, logy=True, title="the chapter's DiT: v-prediction loss")


# %% [markdown]
# ## 8 · Samples, scored
#
# The EMA weights draw `n_gen` clips with DDIM (Song et al. 2021, eq. (16), `ddim_steps` steps, uncompiled: a new
# batch shape would compile again) at η = 1, fresh noise at every step: chapter 08 found that for a model trained a
# few minutes the deterministic η = 0 carries early mistakes to the end, and η = 1 comes closer to full ancestral
# sampling. They are scored with the course's protocol against the held-out reference clips, beside the
# reference rows at the same n from one package call: real clips, shuffled frames (perfect frames, no motion),
# frozen frames (no motion at all), pure noise and the mean video. `fd` is the Fréchet distance of the video probe's
# features (lower is better), with its jackknife standard error.

# %%
@torch.no_grad()
def sample(model, n: int, steps_: int = ddim_steps, seed: int = 1) -> torch.Tensor:
    """n DDIM samples (n, 1, T, H, W) in [-1, 1] from a VPrediction model; the same noise for every model."""
    g = torch.Generator(S.device).manual_seed(seed)
    shape = (n, data.channels, data.frames, data.size, data.size)
    return ddim_sample_chunked(model, shape, schedule, steps_, chunk=128, generator=g, eta=ddim_eta).clamp(-1, 1)


timer.start()
evaluator = PROTOCOL.evaluator(S.device, n_real=n_real)       # the held-out reference statistics, once
rows = reference_rows(evaluator, n=n_gen)                      # the protocol's rows, at the same n
main_model = main_trainer.ema.model
main_samples = sample(main_model, n_gen)
main_scores = score(evaluator, main_samples)
metrics_shown = ("fd", "frame_quality", "identity_consistency", "diversity", "motion_consistency")
floor = floor_fd(rows)                                         # below it, a model no longer draws noise
timer.lap("the chapter's DiT: sampling and scoring")
print(format_rows(rows | {"the chapter's DiT": main_scores}, metrics_shown))

# %% [markdown]
# The bars for the chapter's DiT (gpu profile): fd below 15, by at least one standard error; past the floor (below
# twice the shuffled-frame row) as every model whose samples a chapter shows; and, as the aim of a headline model,
# below the frozen-frame row. Each reads *met*, *not met* (missed by more than one standard error) or *not resolved*.

# %%
FD_BAR = 15.0                                                  # the chapter's bar for its DiT
fd_, se_ = main_scores["fd"], main_scores["fd_se"]
bars = {"fd below 15": verdict(fd_, FD_BAR, se_),
        "past the floor (2× the shuffled-frame row)": verdict(fd_, floor, se_),
        "below the frozen-frame row": verdict(fd_, rows["frozen frames"]["fd"], se_)}
lines = {"fd below 15": FD_BAR, "past the floor (2× the shuffled-frame row)": floor,
         "below the frozen-frame row": rows["frozen frames"]["fd"]}
for name, outcome in bars.items():
    print(f"{'✔' if outcome == 'met' else '✘'} {name}: {outcome} (fd {fd_:.2f} ± {se_:.2f} against {lines[name]:.2f})")
print(f"after {main_summary.steps} steps ({main_train_minutes:.2f} min, {main_summary.steps * batch:,} clips seen)")

# %%
# NBVAL_IGNORE_OUTPUT
side_by_side({"real": data.batch(8, seed=5).video, f"the chapter's DiT (fd {fd_:.1f})": main_samples[:8]}, nrow=4,
             scale=3)

# %% [markdown]
# The same as a static filmstrip, every other frame (a saved notebook shows it without running anything):

# %%
filmstrip({f"real {i}": data.batch(3, seed=5).video[i] for i in range(3)}
          | {f"DiT {i}": main_samples[i] for i in range(5)})

# %% [markdown]
# What to look at beside fd: whether each digit keeps its identity from frame to frame (identity consistency, the
# probe's digit classes held over the clip), whether it moves in a straight line and bounces (motion consistency),
# and whether the samples differ from one another as much as real clips do (diversity). A model that draws digits
# but lets them morph scores well on frames and poorly on identity; one that draws one clip many times scores low
# on diversity.
#
# How one sample comes about: the state x_t and the model's guess of the clean clip x̂₀ at a few of the DDIM steps
# (every fifth frame of the clip). At the noisiest step the state holds almost nothing of the clip, and the best
# guess from nothing is the average clip, a blur; each later step commits to more of one clip and sharpens it.

# %%
guesses = []                                                   # x̂₀ at every step, caught by the sampler's hook
trace = ddim_sample(main_model, (1, data.channels, data.frames, data.size, data.size), schedule, ddim_steps,
                    eta=ddim_eta, generator=torch.Generator(S.device).manual_seed(2), return_trajectory=True,
                    progress=False,
                    denoised_fn=lambda x0_: guesses.append(x0_[0].float().cpu()) or x0_)
picked = sorted({round(i * (len(guesses) - 1) / 3) for i in range(4)})   # four steps, first to last
strips = {}
for k in picked:
    t_k = int(trace.timesteps[k])
    strips[f"x_t, t={t_k}"] = trace.trajectory[k, 0].clamp(-1, 1)
    strips[f"x̂₀ at t={t_k}"] = guesses[k].clamp(-1, 1)
filmstrip(strips, every=5)


# %% [markdown]
# ## 9 · Where the GPU's time goes: MFU, measured on its own
#
# The run above measured its own throughput and MFU while it trained. What decides MFU is how much of a step is
# large matrix products: the tensor cores reach their peak only on big ones, while the norms, modulations,
# activations and the launch of every small kernel add time and no FLOPs. `torch.compile` fuses those small
# operations into a few kernels; width makes the matrix products larger. The cell below trains nothing that is
# shown: it times a few steps of the package's DiT, eager (no compilation, to keep it cheap), at the chapter's size,
# at DiT-B's width and depth on the same clips, and in the paper's image setting (DiT-B/2 on a 32×32×4 latent, 1,000
# classes, batch 128), then sets these beside the compiled run above, and works out after how many seconds
# compiling pays for itself: the scaling study below compiles only if its runs are longer than that.
#
# Measured on an H200 with the same step, compiled, batch 128, in the paper's image setting: the package's DiT
# trains at 1.03× the speed of facebookresearch/DiT's own `models.py` on the same work, DiT-B/2 at 40.0% MFU against
# 39.0%, DiT-XL/2 at 46.4% against 45.1%. The model is written for speed as well as for reading; what MFU a run gets
# is decided by the size of its matrix products, which is why the rows below differ (and they are eager, so they
# sit below those compiled figures).

# %%
def throughput(model, batch_fn, loss_fn, steps_: int):
    """Train `model` for `steps_` steps and return the loop's summary (clips/s and MFU over the steps after the
    first three); the model is thrown away."""
    trainer = make_trainer(model, batch_fn, steps_, loss_fn, lr=1e-4, progress=False, log_every=steps_,
                           desc="throughput")
    return trainer.fit()


def image_loss(model, batch_):
    """A squared error of the paper's shapes (the ε half of a learned-variance output), for timing only."""
    x, t_, y = batch_
    return (model(x, t_, y)[:, :x.shape[1]].float() - x).pow(2).mean()


timer.start()
clips = data.batch(batch, seed=7, device=S.device).video
video_configs = pick(smoke={"the chapter's DiT": main_cfg, "wider": dit_config(2, 64, 4)},
                     cpu={"the chapter's DiT": main_cfg, "wider": dit_config(4, 256, 4)},
                     gpu={"the chapter's DiT": main_cfg, "DiT-B's width and depth": dit_config(12, 768, 12)})
image_cfg = pick(smoke=DiTConfig(**PAPER_IMAGENET_256 | dict(input_size=8, depth=1, hidden_size=32, num_heads=2)),
                 cpu=DiTConfig(**PAPER_IMAGENET_256 | dict(input_size=8, depth=2, hidden_size=64, num_heads=4)),
                 gpu=DiT_B_2(**PAPER_IMAGENET_256))
image_batch = pick(smoke=2, cpu=8, gpu=128)
timing_steps = pick(smoke=4, cpu=5, gpu=20)
measured = {}
for name, cfg in video_configs.items():
    torch.manual_seed(0)
    model = VPrediction(DiT(cfg), schedule).to(S.device)
    measured[f"{name} (video, eager)"] = (cfg, throughput(model, lambda step: clips, lambda m, x: diffusion_loss(
        m, x, schedule), timing_steps))
g = torch.Generator().manual_seed(0)
image_batch_ = (torch.randn(image_batch, 4, 1, image_cfg.input_size, image_cfg.input_size, generator=g).to(S.device),
                torch.randint(0, 1000, (image_batch,), generator=g).to(S.device),
                torch.randint(0, 1000, (image_batch,), generator=g).to(S.device))
torch.manual_seed(0)
measured["DiT-B/2, image setting (eager)"] = (image_cfg, throughput(DiT(image_cfg).to(S.device),
                                                                   lambda step: image_batch_, image_loss,
                                                                   timing_steps))
measured[f"the chapter's DiT (video, {'compiled' if S.compile else 'eager'}, the run above)"] = (main_cfg, main_summary)
del model
timer.lap("throughput")
print(f"{'':52s} {'params':>8s} {'tokens':>7s} {'clips/s':>9s} {'MFU':>7s}")
for name, (cfg, s) in measured.items():
    print(f"{name:52s} {num_parameters(cfg) / 1e6:7.1f}M {math.prod(cfg.grid):7d} {num(s.samples_per_s, '9,.0f')} "
          f"{num(s.mfu, '7.1%')}")
eager_rate = measured["the chapter's DiT (video, eager)"][1].samples_per_s           # clips/s
compiled_rate = main_summary.samples_per_s if S.compile else None
break_even_s = None
if compiled_rate and eager_rate and compiled_rate > eager_rate:
    overhead_s = main_summary.wall_time_s - main_summary.steps * batch / compiled_rate   # compiling, first steps
    break_even_s = overhead_s * compiled_rate / (compiled_rate - eager_rate)            # when compiled catches up
    print(f"compiling (and the first steps) cost the run {overhead_s:.0f} s; at {compiled_rate:,.0f} against "
          f"{eager_rate:,.0f} clips/s, a compiled run has seen more clips than an eager one after {break_even_s:.0f} s")


# %% [markdown]
# ## 10 · A scaling study at matched training FLOPs
#
# The paper's central result (Peebles & Xie 2023, §5): DiT's quality follows its compute. At a fixed number of
# steps, bigger models and smaller patches (more Gflops per forward pass) reach a lower FID (their Fig. 8); and at a
# fixed amount of *training compute*, larger models reach a lower FID than smaller ones trained for more steps
# (Fig. 9). The second is the fair comparison: a bigger model costs more per step, so equal steps would hand it more
# compute. We ask it of two widths, S and M (the chapter's DiT's size), at the same depth and patch, with the same
# recipe, data and seed. M trains for `study_minutes`; its training FLOPs, counted as 2 FLOPs per multiply-add times
# 3 for the forward and backward passes (6 × its forward Gflops per clip × clips seen), set the budget; S then trains
# for as many steps as that budget buys at its own cost per step, within the minutes the chapter has left.
#
# **Stated before measuring.** The claim "at matched training FLOPs, the wider DiT draws the better clips" is
# **supported** if both models are past the floor (fd below twice the shuffled-frame row, by one standard error),
# their training FLOPs agree within 5%, and M's fd is below S's by at least one standard error of the difference
# (the two runs' standard errors combined); **not supported** if, on the same conditions, S's fd is below M's by at
# least one standard error; **not resolved** otherwise: within one standard error, or FLOPs that could not be
# matched in the time left, or a model not past the floor (minutes too short for the comparison to mean anything:
# then the study says so, and shows no samples of the models that draw noise).
#
# Beside fd, the held-out v-loss of each model's EMA weights: the same 512 held-out clips (fewer in the quick
# profiles), noised with the same t and ε for both models, so that the difference between the models is measured
# clip by clip, with its standard error. It measures how well each model denoises, whatever its samples look like;
# the claim is read from fd alone.

# %%
def train_flops(cfg: DiTConfig, steps_: int) -> float:
    """Training FLOPs of steps_ steps at this batch: forward multiply-adds × 2 FLOPs × 3 (forward and backward)."""
    return 6e9 * flops_per_forward(cfg) * batch * steps_


@torch.no_grad()
def heldout_v_loss(model: VPrediction, x0: torch.Tensor, seed: int = 0, chunk: int = 128) -> torch.Tensor:
    """The v-loss of each held-out clip (N,), with t and ε drawn from `seed`: the same for every model."""
    g = torch.Generator(x0.device).manual_seed(seed)
    t = torch.randint(0, schedule.T, (len(x0),), device=x0.device, generator=g)
    eps = torch.randn(x0.shape, device=x0.device, generator=g)
    out = []
    for i in range(0, len(x0), chunk):
        x_, t_, e_ = x0[i:i + chunk], t[i:i + chunk], eps[i:i + chunk]
        a = schedule.sqrt_alphas_cumprod[t_].view(-1, 1, 1, 1, 1)
        s = schedule.sqrt_one_minus_alphas_cumprod[t_].view(-1, 1, 1, 1, 1)
        with torch.autocast(S.device.type, dtype=torch.bfloat16, enabled=S.device.type == "cuda"):
            v_hat = model(a * x_ + s * e_, t_, output="v")
        out.append(((v_hat.float() - (a * e_ - s * x_)) ** 2).mean((1, 2, 3, 4)))
    return torch.cat(out)


timer.start()
study_cfgs = {name: dit_config(*arch) for name, arch in archs.items()}
study_compile = break_even_s is not None and 60 * study_minutes > break_even_s   # short runs: eager is faster
reserve = pick(smoke=0.0, cpu=1.0, gpu=0.9)         # minutes kept for scoring and the rest of the chapter
print(f"the study's runs: {'compiled' if study_compile else 'eager'}")
trainers = {"M": train_dit(study_cfgs["M"], steps, study_minutes, study_ema, study_warmup, "DiT-M (study)",
                           study_compile)}
budget_flops = train_flops(study_cfgs["M"], trainers["M"].step)
s_steps = max(1, round(budget_flops / train_flops(study_cfgs["S"], 1)))
s_cap = timer.minutes_left(chapter_minutes, reserve, floor=0.25)   # never past the chapter's time
trainers["S"] = train_dit(study_cfgs["S"], s_steps, s_cap, study_ema, study_warmup, "DiT-S (study)", study_compile)
timer.lap("scaling study: training")
for name in ("S", "M"):
    report(f"DiT-{name} (study)", trainers[name].summary)

# %%
timer.start()
heldout = data.heldout(pick(smoke=8, cpu=128, gpu=512), device=S.device).video
study, study_samples, study_losses = {}, {}, {}
for name in ("S", "M"):
    tr, cfg = trainers[name], study_cfgs[name]
    study_samples[name] = sample(tr.ema.model, n_gen)
    study_losses[name] = heldout_v_loss(tr.ema.model, heldout)
    sc = score(evaluator, study_samples[name])
    study[name] = {"depth": cfg.depth, "width": cfg.hidden_size, "parameters": num_parameters(cfg),
                   "gflops_per_clip": flops_per_forward(cfg), "steps": tr.step,
                   "train_flops": train_flops(cfg, tr.step), "measured_train_flops": tr.summary.train_flops,
                   "minutes": tr.summary.wall_time_s / 60, "samples_per_s": tr.summary.samples_per_s,
                   "mfu": tr.summary.mfu, "stopped_by": tr.summary.stopped_by,
                   "heldout_v_loss": study_losses[name].mean().item(),
                   "heldout_v_loss_se": (study_losses[name].std() / len(heldout) ** 0.5).item(),
                   "past_floor": verdict(sc["fd"], floor, sc["fd_se"]) == "met", "scores": sc}
timer.lap("scaling study: scoring")
print(f"{'':8s} {'params':>7s} {'Gflops':>7s} {'steps':>6s} {'train FLOPs':>11s} {'min':>5s} {'MFU':>6s} "
      f"{'held-out v-loss':>17s} {'fd':>15s}  past the floor ({floor:.1f})")
for name, r in study.items():
    print(f"DiT-{name:4s} {r['parameters'] / 1e6:6.1f}M {r['gflops_per_clip']:7.2f} {r['steps']:6d} "
          f"{r['train_flops']:11.3g} {r['minutes']:5.2f} {num(r['mfu'], '6.1%')} "
          f"{r['heldout_v_loss']:9.4f} ± {r['heldout_v_loss_se']:.4f} "
          f"{r['scores']['fd']:7.2f} ± {r['scores']['fd_se']:5.2f}  {'yes' if r['past_floor'] else 'no'}")
print(f"the chapter's DiT (M, {main_summary.steps} steps): {train_flops(main_cfg, main_summary.steps):.3g} training "
      f"FLOPs, fd {main_scores['fd']:.2f} ± {main_scores['fd_se']:.2f}")
plot_xy({f"DiT-{name}": ([r["train_flops"]], [r["scores"]["fd"]]) for name, r in study.items()}
        | {"the chapter's DiT (M, longer)": ([train_flops(main_cfg, main_summary.steps)], [main_scores["fd"]])},
        xlabel="training FLOPs", ylabel="Fréchet distance (↓)", logx=True, logy=True,
        title=f"moving digits 32×32×16, floor {floor:.1f}")

# %% [markdown]
# ### Claim check: at matched training FLOPs, does the wider DiT draw the better clips?

# %%
flops_ratio = study["S"]["train_flops"] / study["M"]["train_flops"]
matched = abs(flops_ratio - 1) <= 0.05
fd_s, fd_m = study["S"]["scores"]["fd"], study["M"]["scores"]["fd"]
diff_se = (study["S"]["scores"]["fd_se"] ** 2 + study["M"]["scores"]["fd_se"] ** 2) ** 0.5   # two independent runs
both_past = study["S"]["past_floor"] and study["M"]["past_floor"]
reading = verdict(fd_m, fd_s, diff_se)                        # 'met': M below S by one standard error
if not both_past:
    claim, why = "not resolved", "not every model is past the floor: their fds measure noise, not the models"
elif not matched:
    claim, why = "not resolved", f"the training FLOPs could not be matched in the time left ({flops_ratio:.2f}×)"
else:
    claim = {"met": "supported", "not met": "not supported", "not resolved": "not resolved"}[reading]
    why = f"M's fd minus S's: {fd_m - fd_s:+.2f} ± {diff_se:.2f}"
loss_diff = study_losses["S"] - study_losses["M"]             # per clip: positive where M denoises better
loss_d, loss_d_se = loss_diff.mean().item(), (loss_diff.std() / len(loss_diff) ** 0.5).item()
print(f"training FLOPs: S {study['S']['train_flops']:.3g}, M {study['M']['train_flops']:.3g} (ratio {flops_ratio:.3f})"
      f"; S took {study['S']['steps']} steps, M {study['M']['steps']}")
print(f"fd: S {fd_s:.2f} ± {study['S']['scores']['fd_se']:.2f}, M {fd_m:.2f} ± {study['M']['scores']['fd_se']:.2f} "
      f"(floor {floor:.2f}); S past the floor: {study['S']['past_floor']}, M: {study['M']['past_floor']}")
print(f"held-out v-loss, S minus M: {loss_d:+.4f} ± {loss_d_se:.4f} (paired over {len(loss_diff)} clips; positive: "
      "M denoises better)")
print(f"claim: {claim} ({why})")
if both_past:
    display(side_by_side({f"DiT-{name} (fd {study[name]['scores']['fd']:.1f})": study_samples[name][:8]
                          for name in ("S", "M")}, nrow=4, scale=2))
else:
    print("the study's samples are not shown: a model below the floor draws noise")

# %% [markdown]
# **Reading it.** The verdict above is computed from the numbers above it. Matched FLOPs is what makes the question
# fair: S is cheaper per step, so it took more steps for the same compute. When both models are past the floor the
# fds answer the question at this scale; when the minutes were too short for either to pass it, the study cannot
# resolve it, and the gap in held-out loss (which measures denoising, not the clips drawn) is the only hint of which
# way it would go. The paper's curves separate after hundreds of thousands of steps; the chapter's DiT, the point on
# the right of the plot, shows how far M gets with the compute of most of the chapter's minutes.


# %% [markdown]
# ## 11 · Latent space: what it would save
#
# DiT is a *latent* diffusion model (Rombach et al. 2022): in the paper the transformer never sees pixels, only an
# autoencoder's latents, 8× smaller in height and width. Chapter 10 trains such a pair; here we only count. The cost
# of one forward pass of a DiT of the chapter's size on a 64 × 64 × 16 clip, per clip: on pixels with 1 × 4 × 4
# patches (the chapter's), on pixels with 1 × 8 × 8 patches (as many tokens as the latent model), and on the latents
# of chapter 10's autoencoder (4× smaller in H and W, 4 channels) with 1 × 2 × 2 patches; and the encoder's cost, paid
# once per training clip (FLOPs counted by PyTorch on the meta device: nothing is allocated).

# %%
# NBVAL_CHECK_OUTPUT
size64 = dict(input_size=64, frames=16, in_channels=1, num_classes=0, temporal_patch=1, depth=8, hidden_size=384,
              num_heads=6)
costs = {"pixels 64×64, patches 1×4×4": DiTConfig(**size64, patch_size=4),
         "pixels 64×64, patches 1×8×8": DiTConfig(**size64, patch_size=8),
         "latents 16×16×4, patches 1×2×2": DiTConfig(**size64 | dict(input_size=16, in_channels=4), patch_size=2)}
with torch.device("meta"):
    encoder = VideoAutoencoder(kl_f4_base()).encoder
    clip64 = torch.empty(1, 1, 16, 64, 64)
encoder_gflops = count_flops(lambda: encoder(clip64)) / 2 / 1e9          # multiply-adds, as the paper counts
latent_gflops = flops_per_forward(costs["latents 16×16×4, patches 1×2×2"])
for name, cfg in costs.items():
    print(f"{name:32s} {math.prod(cfg.grid):6d} tokens {flops_per_forward(cfg):9.2f} Gflops per clip "
          f"({flops_per_forward(cfg) / latent_gflops:5.1f}× the latent model)")
print(f"{'the encoder, once per training clip':32s} {'':13s}{encoder_gflops:9.2f} Gflops per clip")

# %% [markdown]
# With the chapter's 4 × 4 patches, the pixel model has four times the latent model's tokens, and attention's cost
# grows with the square of the tokens; 8 × 8 patches on pixels give back the token count (and the cost) but leave
# every token 64 pixels to draw through one linear layer. The encoder costs a fraction of one DiT forward pass, once
# per clip (fast-DiT encodes its whole dataset once, before training). The price is paid elsewhere: a latent model
# can draw no better than its decoder reconstructs, which chapter 10 measures.
#
# ## 12 · Scaling out: the same training on many GPUs
#
# `vgcourse.train.distributed` runs this training under `torchrun` with PyTorch's DistributedDataParallel: each
# process joins the group from torchrun's environment variables, wraps the model in DDP (which averages gradients
# across GPUs during backward), and trains on its rows of the *same* global batch that one process would see, so
# the update is the one-GPU update (its test checks this on two CPU processes). On one GPU, or here, every helper
# is the identity:
#
# ```
# torchrun --standalone --nproc_per_node=8 -m vgcourse.scripts.train_dit --steps 2000 --batch 256 --compile
# ```

# %%
# NBVAL_CHECK_OUTPUT
env = init_distributed(device=S.device)
tiny = DiT(dit_config(1, 32, 2)).to(S.device)
stream = data.stream(4, seed=0, device=S.device)
print(f"rank {env.rank} of {env.world_size}; DDP wrapper used: {wrap_model(tiny, env) is not tiny}; "
      f"batches unchanged: {shard_batches(stream, env) is stream}; unwrap gives the model: {unwrap(tiny) is tiny}")

# %% [markdown]
# ## 13 · Results

# %%
main_minutes_trained = main_summary.wall_time_s / 60                 # compilation included
results.record(
    "11_dit",
    {"headline": headline(main_scores, n_real=n_real, minutes=main_minutes_trained,
                          parameters=num_parameters(main_cfg), steps=main_summary.steps,
                          samples_per_s=main_summary.samples_per_s, mfu=main_summary.mfu,
                          train_flops=main_summary.train_flops, fd_bar=FD_BAR, fd_bar_outcome=bars["fd below 15"],
                          past_floor=bars["past the floor (2× the shuffled-frame row)"], scaling_claim=claim),
     "reference_rows": rows, "floor": floor, "bars": bars,
     "scaling_study": {"models": study, "flops_ratio": flops_ratio, "matched": matched, "claim": claim,
                       "why": why, "fd_diff_m_minus_s": fd_m - fd_s, "fd_diff_se": diff_se,
                       "heldout_v_loss_s_minus_m": loss_d, "heldout_v_loss_s_minus_m_se": loss_d_se},
     "throughput": {name: {"parameters": num_parameters(cfg), "tokens": math.prod(cfg.grid),
                           "samples_per_s": s.samples_per_s, "mfu": s.mfu} for name, (cfg, s) in measured.items()},
     "latent_vs_pixel_gflops": {name: flops_per_forward(cfg) for name, cfg in costs.items()}
     | {"encoder": encoder_gflops},
     "parts_minutes": timer.minutes},
    started=STARTED, train={"main": main_summary.as_dict(),
                            "study": {name: tr.summary.as_dict() for name, tr in trainers.items()}},
    config={"main": asdict(main_cfg), "study": {name: asdict(cfg) for name, cfg in study_cfgs.items()},
            "schedule": "cosine", "parameterisation": "v", "batch": batch, "lr": lr, "warmup": warmup,
            "decay_to": decay_to, "betas": betas, "main_ema": main_ema, "main_minutes": main_minutes,
            "study_minutes": study_minutes, "study_ema": study_ema, "study_warmup": study_warmup,
            "ddim_steps": ddim_steps, "n_gen": n_gen, "n_real": n_real})

# %% [markdown]
# ## Exercises
#
# Each exercise has a stub to fill and a check from the package; run the check cell after editing.
#
# **1. Unpatchify.** The DiT's final layer gives one row of p_t·p·p·C values per token; put them back into a video.

# %%
def my_unpatchify(tokens: torch.Tensor, grid: tuple[int, int, int], pt: int, p: int) -> torch.Tensor:
    """(B, L, pt·p·p·C) tokens in row-major (t, h, w) order over grid (T', H', W') -> (B, C, T'·pt, H'·p, W'·p)."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
# NBVAL_CHECK_OUTPUT
check("unpatchify", my_unpatchify)

# %% [markdown]
# <details><summary>Hint</summary>
#
# It is patchify read backwards: `rearrange(tokens, "b (nt nh nw) (pt ph pw c) -> b c (nt pt) (nh ph) (nw pw)", ...)`.
# The reference answer: `solution("unpatchify")`.
# </details>

# %%
# NBVAL_CHECK_OUTPUT
check("unpatchify", solution("unpatchify"))   # the reference answer, through the same check

# %% [markdown]
# **2. 3D sin-cos positions.** Build the (T'·H'·W', D) position table of a clip from `sincos_1d`: D/4 channels for
# t, 3D/8 for h, 3D/8 for w, tokens in row-major (t, h, w) order.

# %%
def my_sincos_3d(dim: int, grid: tuple[int, int, int]) -> torch.Tensor:
    """(T', H', W') grid -> (T'·H'·W', dim) fixed positions."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
# NBVAL_CHECK_OUTPUT
check("sincos_3d", my_sincos_3d)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `torch.meshgrid(..., indexing="ij")` gives every cell's (t, h, w); flatten each, embed each with `sincos_1d`
# at its width, and `torch.cat` along channels. The reference answer: `solution("sincos_3d")`.
# </details>

# %%
# NBVAL_CHECK_OUTPUT
check("sincos_3d", solution("sincos_3d"))   # the reference answer, through the same check

# %% [markdown]
# **3. Count the paper's Gflops.** Write the forward Gflops of a full-attention DiT config for one sample, one
# multiply-add = one flop, and get DiT-XL/2's 118.6 at ImageNet 256.

# %%
def my_dit_gflops(cfg: DiTConfig) -> float:
    """Forward Gflops (multiply-adds / 1e9) of DiT(cfg) on one sample."""
    # YOUR CODE HERE
    raise NotImplementedError


# %%
# NBVAL_CHECK_OUTPUT
check("dit_gflops", my_dit_gflops)

# %% [markdown]
# <details><summary>Hint</summary>
#
# With L = T'·H'·W' tokens (`cfg.grid`) of width D (`cfg.hidden_size`) and MLP width 4D: per block 4·L·D² (qkv and
# output projection), 2·L·D·4D (MLP), 2·L²·D (Q·Kᵀ and A·V) and D·6D (adaLN, once per sample); plus the tubelet
# embedding L·(p_t·p·p·C)·D, the timestep MLP 256·D + D·D and the final layer D·2D + L·D·p_t·p·p·C_out, where C_out =
# `cfg.out_channels`: 2C for the paper's models, which also predict the variance (`learn_sigma=True`), C otherwise.
# The reference answer: `solution("dit_gflops")`.
# </details>

# %%
# NBVAL_CHECK_OUTPUT
check("dit_gflops", solution("dit_gflops"))   # the reference answer, through the same check

# %% [markdown]
# **4. Fewer sampling steps: predict, then see.** The chapter's DiT was sampled with `ddim_steps` DDIM steps. Each
# step costs one forward pass, so sampling with a fraction of them (`few_steps`: a tenth and a fifth in the gpu
# profile, a tenth and a quarter in the cpu profile) is that many times cheaper. **Predict**
# the fd of its samples with those fewer steps, and whether the frames, the motion or both suffer first. Then run:

# %%
timer.start()
few_steps = pick(smoke=(1,), cpu=(2, 5), gpu=(5, 10))
for k in few_steps:
    fewer = score(evaluator, sample(main_model, n_gen, steps_=k))
    print(f"{k:3d} DDIM steps: fd {fewer['fd']:7.2f} ± {fewer['fd_se']:.2f}, frame quality "
          f"{fewer['frame_quality']:.3f}, motion consistency {fewer['motion_consistency']:.3f}")
print(f"{ddim_steps:3d} DDIM steps: fd {main_scores['fd']:7.2f} ± {main_scores['fd_se']:.2f}, frame quality "
      f"{main_scores['frame_quality']:.3f}, motion consistency {main_scores['motion_consistency']:.3f} (above)")
minutes_exercise = timer.lap("exercise 4")

# %% [markdown]
# <details><summary>What to look for</summary>
#
# The sampler here is DDIM at η = 1: every step guesses x̂₀, moves towards it and adds fresh noise. With fewer steps
# each move is larger and each guess of x̂₀ is made from a noisier state, and there are fewer later steps whose noise
# lets them correct it. Which part of a clip suffers first is for the rows to say: compare frame quality and motion
# consistency across them, and remember that the frame probe judges each frame alone, so clips far from the data (a
# high fd) can still read high on frame quality while their motion falls apart. Distillation (Salimans & Ho 2022,
# the paper that introduced v-prediction) trains a student to take two of the teacher's steps in one, halving the
# steps again and again.
# </details>

# %%
print(f"chapter wall time: {(time.time() - STARTED) / 60:.1f} min; parts (min): {timer.minutes}")
