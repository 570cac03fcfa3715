# %% [markdown]
# # 02 · TGAN: a temporal generator, an image generator, a 3D critic
#
# **What this chapter builds.** The first GAN that generates video by giving time its own network. TGAN's generator is
# two: a **temporal generator** G₀ turns one latent z₀ into one latent per frame with 1D transposed convolutions along
# time, and an **image generator** G₁, a DCGAN generator (chapter 01), draws each frame from z₀ and its frame's
# latent. A **3D-convolutional critic** scores whole clips. The paper trained it as a Wasserstein GAN whose critic is
# kept 1-Lipschitz by **singular value clipping** (SVC). We train the same generator and critic that way and with a
# modern recipe, the non-saturating (logistic) loss with an **R1 gradient penalty** on real clips, two seeds each,
# watch the Fréchet distance during training to see which trains more stably, and give the more stable one most of the
# chapter's minutes.
#
# **Where it sits in the history.** Still the GAN + VAE era of the survey:
#
# - Vondrick, Pirsiavash & Torralba 2016 (**VGAN**) generated clips with 3D transposed convolutions, a moving
#   foreground over a static background.
# - Saito, Matsumoto & Saito 2017 (**TGAN**, "Temporal Generative Adversarial Nets with Singular Value Clipping")
#   treated time differently from space: a 1D generator over time feeding a 2D generator per frame, trained with
#   Arjovsky, Chintala & Bottou's 2017 **Wasserstein GAN** objective and a new way to bound the critic: clip every
#   weight matrix's singular values at 1.
# - The stabilisers that replaced clipping: the gradient penalty (Gulrajani et al. 2017), spectral normalisation
#   with the hinge loss (Miyato et al. 2018; Lim & Ye 2017), and the **R1 penalty** on real data (Mescheder, Geiger
#   & Nowozin 2018), which StyleGAN2 (Karras et al. 2020) made "lazy" and which chapters 03 and 04 train with too.
# - Next: MoCoGAN (chapter 03) splits content from motion with a recurrent motion generator, DVD-GAN (chapter 04)
#   scales the discriminators.
#
# **Time per profile.** The same code runs in every profile; only sizes change (chosen below with `pick`).
#
# | profile | clips | networks | training (4 runs, then the headline) | time |
# |---|---|---|---|---|
# | `smoke` | 16×16, 8 frames | tiny | 4 steps each, + 2 | < 1 min on 2 CPU cores (checks only) |
# | `cpu` | 16×16, 8 frames | narrow (G₁ 64 → 1, critic 16 → 32) | 0.75 min each, + 2 min | ≈ 5 min on 2 CPU cores |
# | `gpu` | 32×32, 16 frames | G₀ 0.8M + G₁ 1.1M, critic 2.6M | 0.6 min each, + 4.5 min | ≈ 7.5 min on one H100/H200 |
#
# The smoke and cpu profiles work at 16×16 with 8 frames, and the clip metrics' probes read them at 32×32; their
# numbers are much weaker than the gpu run's, committed in this notebook's outputs.

# %%
import time

STARTED = time.time()
import copy

import torch
from einops import rearrange, repeat
from IPython.display import display
from matplotlib.figure import Figure
from torch import nn

from vgcourse.profiles import pick, setup

S = setup(seed=0)          # prints profile, device, precision, compile, torch version
torch.set_num_threads(pick(smoke=1, cpu=S.threads, gpu=S.threads))   # smoke is a CI check on shared cores

# %%
from vgcourse import results
from vgcourse.data import MovingDigits
from vgcourse.display import filmstrip, show_video
from vgcourse.exercises import check, solution
from vgcourse.gan import (
    TGANGenerator,
    VideoDiscriminator,
    clip_singular_values,
    d_nonsaturating,
    d_wasserstein,
    g_nonsaturating,
    g_wasserstein,
    largest_singular_value,
    r1_penalty,
    sample_z,
    standing_statistics,
    tgan,
    tgan_paper,
    tgan_small,
    tgan_step,
    tgan_tiny,
)
from vgcourse.metrics import PROTOCOL, Evaluator, reference_rows, score
from vgcourse.metrics.corruptions import freeze_frames, shuffle_frames
from vgcourse.metrics.frechet import frechet_distance, gaussian_stats
from vgcourse.metrics.protocol import bar, floor_fd, format_rows, headline, past_the_floor, show_bars
from vgcourse.nn import count_parameters
from vgcourse.results import PartTimer, seconds_per_call
from vgcourse.train import TrainConfig, Trainer

timer = PartTimer(STARTED)

# %% [markdown]
# ## Sizes for this profile
#
# Everything that changes between profiles is chosen here, in plain view. Each of the four runs (two recipes × two
# seeds) gets the same minutes (`run_minutes`), split into `evals_per_run` segments with a Fréchet distance after
# each: the comparison is at matched training time, so whatever a recipe costs per step (SVC's decompositions, R1's
# second backward) is charged to it. Then the more stable recipe's better run trains on for `extra_minutes` (§6):
# the headline model, which gets most of the chapter's minutes. Training is fp32 (TF32 on the GPU): a Wasserstein
# critic's scores are unbounded, SVC works on the weights in full precision, and R1 differentiates a gradient.
#
# **No compilation here.** Compiling takes tens of seconds per network (chapters 08 and 11 measure it), a large share
# of each 0.6-minute run of the comparison, and R1's gradient of a gradient (a double backward) is not supported by
# compiled graphs (the package's `tgan_step` runs R1 through the same networks it trains).
# Eager mode gives each run all of its time.

# %%
size, frames = pick(smoke=16, cpu=16, gpu=PROTOCOL.size), pick(smoke=8, cpu=8, gpu=PROTOCOL.frames)
data = PROTOCOL.dataset() if (size, frames) == (PROTOCOL.size, PROTOCOL.frames) else MovingDigits(
    size=size, frames=frames, digits=PROTOCOL.digits)
config = pick(smoke=tgan_tiny(),                                            # 16×16×8, G₁ 32 → 1, critic 8 → 16
              cpu=tgan_tiny(z_dim=64, z_frame_dim=64, temporal_channels=(128, 128, 64), gen_channels=64,
                            disc_channels=16),
              gpu=tgan_small())                                             # 32×32×16, G₁ 256 → 1, critic 64 → 256
batch = pick(smoke=4, cpu=16, gpu=64)               # clips per step
run_minutes = pick(smoke=None, cpu=0.75, gpu=0.6)   # training minutes of each run of the comparison
extra_minutes = pick(smoke=None, cpu=2.0, gpu=4.5)  # then the headline run trains on for this long (§6)
evals_per_run = pick(smoke=2, cpu=3, gpu=5)         # Fréchet distances along each run
extra_evals = pick(smoke=1, cpu=2, gpu=9)           # ... and along the headline run's extra minutes
segment_steps = pick(smoke=2, cpu=1_000_000, gpu=1_000_000)   # a cap per segment: the minutes decide
ema_decay = pick(smoke=0.9, cpu=0.98, gpu=0.995)    # EMA of the generator's weights, for sampling
standing = dict(batches=pick(smoke=2, cpu=2, gpu=8),   # standing statistics of the EMA generators (§4)
                batch_size=pick(smoke=16, cpu=32, gpu=256))
seeds = [0, 1]
n_curve = pick(smoke=8, cpu=32, gpu=256)            # clips per point of the training curves
n_gen = pick(smoke=8, cpu=32, gpu=PROTOCOL.n_gen)   # clips per row of the final table (the protocol: 384)
n_real = pick(smoke=16, cpu=64, gpu=PROTOCOL.n_real)    # held-out reference clips (the protocol: 512)
RECIPES = {  # the same networks; what differs is the loss, the critic's constraint and the optimisers (D, G)
    "WGAN + SVC": dict(loss="wasserstein", disc_norm="batch", clip_every=5, r1_gamma=0.0, r1_every=1,  # the paper
                       d_optimizer=lambda params: torch.optim.RMSprop(params, lr=5e-5),
                       g_optimizer=lambda params: torch.optim.RMSprop(params, lr=5e-5)),
    "logistic + R1": dict(loss="nonsaturating", disc_norm="none", clip_every=0, r1_gamma=1.0, r1_every=4,  # modern
                          d_optimizer=lambda params: torch.optim.Adam(params, lr=2e-4, betas=(0.0, 0.99)),
                          g_optimizer=lambda params: torch.optim.Adam(params, lr=2e-4, betas=(0.0, 0.99))),
}
print(f"data: {data}")
nets_example = tgan(config)
print(f"TGAN: G₀ {count_parameters(nets_example['G'].temporal) / 1e6:.2f}M, "
      f"G₁ {count_parameters(nets_example['G'].image) / 1e6:.2f}M, critic "
      f"{count_parameters(nets_example['D']) / 1e6:.2f}M; batch {batch} clips; "
      f"{len(RECIPES)} recipes × {len(seeds)} seeds × {run_minutes or segment_steps * evals_per_run} "
      f"{'min' if run_minutes else 'steps'}")

# %% [markdown]
# The data: two handwritten digits bouncing off the walls (chapter 00). Clips are rendered on the device a chunk of
# steps at a time, as in chapter 01: a render copies its random parameters to the device, and that copy waits for
# the device's queued work.

# %%
def clip_stream(data, batch: int, seed: int, device, chunk: int = 16):
    """batch_fn(step) -> clips (batch, C, T, H, W), rendered ``chunk`` steps at a time."""
    cache = {}

    def clips_at(step: int) -> torch.Tensor:
        block = step // chunk
        if block not in cache:
            cache.clear()
            cache[block] = data.batch(batch * chunk, seed=seed * 1_000_003 + block, device=device).video
        return cache[block][(step % chunk) * batch:(step % chunk + 1) * batch]

    return clips_at


filmstrip({f"real clip {i}": clip for i, clip in enumerate(clip_stream(data, 3, seed=9, device=S.device)(0))},
          every=1)

# %% [markdown]
# ## 1 · The temporal generator: one latent becomes one latent per frame
#
# G₀ reads z₀ ∈ R^K₀ as a sequence of length 1 and lengthens it with 1D transposed convolutions along time: a
# kernel-1 layer to 512 channels, then kernel 4, stride 2, padding 1 — each doubles the length — through 256, 128
# and 128 channels at lengths 2, 4 and 8, to K₁ channels at length 16, with batch norm and ReLU between and tanh at
# the end. Its output [z₁¹, …, z₁ᵀ] is one latent per frame: a trajectory, not T independent draws. The image
# generator G₁ then draws frame t from (z₀, z₁ᵗ): each is projected by a linear layer to half of a 4×4 stack of
# feature maps, and DCGAN's transposed convolutions take the stack to a frame. z₀ is every frame's (what stays),
# z₁ᵗ is frame t's own (what moves). By hand, then checked against the package on a tiny configuration:

# %%
class MyTemporalGenerator(nn.Module):
    """G₀: z₀ (B, K₀) -> z₁ (B, K₁, T), layer for layer as vgcourse.gan.TemporalGenerator."""

    def __init__(self, z_dim: int, z_frame_dim: int, widths: tuple[int, ...]):
        super().__init__()
        layers = [nn.ConvTranspose1d(z_dim, widths[0], 1, 1, 0), nn.BatchNorm1d(widths[0]), nn.ReLU()]   # length 1
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose1d(c_in, c_out, 4, 2, 1), nn.BatchNorm1d(c_out), nn.ReLU()]       # length × 2
        layers += [nn.ConvTranspose1d(widths[-1], z_frame_dim, 4, 2, 1), nn.Tanh()]                      # to T
        self.net = nn.Sequential(*layers)

    def forward(self, z0):
        return self.net(z0[:, :, None])                          # (B, K₀, 1) -> (B, K₁, T)


class MyImageGenerator(nn.Module):
    """G₁: (z₀, z₁ᵗ) of N frames -> frames (N, C, size, size), layer for layer as vgcourse.gan.ImageGenerator."""

    def __init__(self, z_dim: int, z_frame_dim: int, width: int, channels: int, levels: int):
        super().__init__()
        half = width // 2
        self.project_content = nn.Sequential(nn.Linear(z_dim, half * 16, bias=False), nn.BatchNorm1d(half * 16),
                                             nn.ReLU())
        self.project_frame = nn.Sequential(nn.Linear(z_frame_dim, half * 16, bias=False), nn.BatchNorm1d(half * 16),
                                           nn.ReLU())
        layers = []
        for _ in range(levels):                                   # 4 -> 8 -> ... -> size
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2),
                       nn.ReLU()]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 3, 1, 1), nn.Tanh()]   # 3×3, stride 1: to the image
        self.net = nn.Sequential(*layers)

    def forward(self, z0, z1):
        h0 = rearrange(self.project_content(z0), "n (c h w) -> n c h w", h=4, w=4)
        h1 = rearrange(self.project_frame(z1), "n (c h w) -> n c h w", h=4, w=4)
        return self.net(torch.cat([h0, h1], dim=1))


def my_generate(g0: MyTemporalGenerator, g1: MyImageGenerator, z0: torch.Tensor) -> torch.Tensor:
    """z₀ (B, K₀) -> clips (B, C, T, H, W): G₀ gives the frame latents, G₁ draws every frame of every clip at once."""
    z1 = g0(z0)                                                   # (B, K₁, T)
    t = z1.shape[2]
    frames = g1(repeat(z0, "b k -> (b t) k", t=t), rearrange(z1, "b k t -> (b t) k"))   # (B·T, C, H, W)
    return rearrange(frames, "(b t) c h w -> b c t h w", t=t)

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
check_cfg = tgan_tiny()
package_g = TGANGenerator(check_cfg).eval()
my_g0 = MyTemporalGenerator(check_cfg.z_dim, check_cfg.z_frame_dim, check_cfg.temporal_channels)
my_g1 = MyImageGenerator(check_cfg.z_dim, check_cfg.z_frame_dim, check_cfg.gen_channels, check_cfg.channels,
                         check_cfg.levels)
my_g0.load_state_dict(package_g.temporal.state_dict())
my_g1.load_state_dict(package_g.image.state_dict())
z0_check = sample_z(3, check_cfg.z_dim, generator=torch.Generator().manual_seed(1))
with torch.no_grad():
    z1_check = my_g0.eval()(z0_check)
    torch.testing.assert_close(z1_check, package_g.temporal(z0_check))
    torch.testing.assert_close(my_generate(my_g0, my_g1.eval(), z0_check), package_g(z0_check))
print(f"z₀ {tuple(z0_check.shape)} -> frame latents z₁ {tuple(z1_check.shape)} -> clips "
      f"{tuple(package_g(z0_check).shape)}")
print("MyTemporalGenerator, MyImageGenerator and my_generate match vgcourse.gan.TGANGenerator")

# %% [markdown]
# The paper's sizes (its Figure 1, 64×64×16 colour clips, K₀ = K₁ = 100), from `tgan_paper()`: the layer outputs
# of each network, without the batch axis.

# %%
# NBVAL_CHECK_OUTPUT
def layer_shapes(module: nn.Module, args: tuple, kinds: tuple) -> list[tuple]:
    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
             for m in module.modules() if isinstance(m, kinds)]
    with torch.no_grad():
        module.eval()(*args)
    for h in hooks:
        h.remove()
    return shapes


paper = tgan(tgan_paper())
z0_paper = sample_z(2, 100)
print("G₀:", layer_shapes(paper["G"].temporal, (z0_paper,), (nn.ConvTranspose1d,)))
print("G₁:", layer_shapes(paper["G"].image, (z0_paper, z0_paper), (nn.ConvTranspose2d,)))
print("critic:", layer_shapes(paper["D"], (torch.zeros(2, 3, 16, 64, 64),), (nn.LeakyReLU,)), "-> one score")
counts = {name: count_parameters(module)
          for name, module in [("G₀", paper["G"].temporal), ("G₁", paper["G"].image), ("critic", paper["D"])]}
print("parameters: " + ", ".join(f"{name} {n:,}" for name, n in counts.items()))
del paper

# %% [markdown]
# ## 2 · The critic, and keeping it 1-Lipschitz
#
# The critic is 3D convolutions (4×4×4, stride 2 in time and space, LeakyReLU 0.2, batch norm after every layer but
# the first) down to a 4×4 map and a last convolution over what remains, to one score per clip. A Wasserstein GAN
# (Arjovsky et al. 2017, eq. (3)) trains it to maximise E[D(x)] − E[D(G(z))], which estimates the Wasserstein-1
# distance between data and samples *if* D is 1-Lipschitz; the generator minimises −E[D(G(z))]. The original WGAN
# clipped every weight to [−0.01, 0.01], a crude bound that wastes capacity. TGAN (§4.2) bounds each layer's weight
# instead: a linear layer's Lipschitz constant is its weight's largest singular value, so every few updates
#
# $$W = U\Sigma V^\top \;\to\; U \min(\Sigma, 1)\, V^\top,$$
#
# for every convolution reshaped to a matrix (out, in · kernel), and each batch-norm scale is clipped to |γ| ≤
# √(running variance + ε) (a diagonal layer's singular values are |γ|/σ). With 1-Lipschitz activations this keeps the
# critic's slope bounded, though not at exactly 1: a strided convolution's windows overlap (each input voxel is read
# by up to 8 windows of a 4×4×4, stride-2 kernel), so its constant can reach √8 times the matrix's σ_max, and batch
# norm in training divides by the batch's variance, not the running one. A critic that is K-Lipschitz for a fixed K is
# all a WGAN needs: it then estimates K·W₁. The paper's code clips every 5 iterations, with RMSProp at lr 5·10⁻⁵ and
# one critic update per generator update. By hand on one layer:

# %%
def my_clip_singular_values(conv: nn.Conv3d, limit: float = 1.0) -> None:
    """SVC of one 3D convolution, in place (Saito et al. 2017, §4.2)."""
    w = conv.weight.data                                           # (out, in, kt, kh, kw)
    u, s, vh = torch.linalg.svd(w.flatten(1), full_matrices=False)  # W = U Σ Vᵀ, W as (out, in·kt·kh·kw)
    conv.weight.data = ((u * s.clamp(max=limit)) @ vh).reshape(w.shape)

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
layer = nn.Conv3d(8, 16, 4, 2, 1)
with torch.no_grad():
    layer.weight.mul_(20)                                          # σ_max well above 1
mine, theirs = copy.deepcopy(layer), copy.deepcopy(layer)
my_clip_singular_values(mine)
clip_singular_values(theirs)
torch.testing.assert_close(mine.weight, theirs.weight, rtol=1e-4, atol=1e-5)
before = torch.linalg.svdvals(layer.weight.detach().flatten(1))
after = torch.linalg.svdvals(mine.weight.detach().flatten(1))
print(f"σ_max {before.max().item() > 1} > 1 before; after: σ_max <= 1 {after.max().item() <= 1 + 1e-5}; "
      f"singular values below 1 kept: {torch.allclose(after[before < 1], before[before < 1], atol=1e-5)}")
print("my_clip_singular_values matches vgcourse.gan.clip_singular_values")

# %% [markdown]
# **The training step** is chapter 01's, with the Wasserstein pair and SVC after every fifth critic update: one
# critic update on a real and a generated batch, the clip when its turn comes, one generator update through the
# clipped critic. The package's `tgan_step` is chapter 01's `gan_step` with one more option, a lazy R1 penalty (used
# by the second recipe, below); with R1 off it is `gan_step`. By hand, then `tgan_step` from the same weights,
# batches and z for five steps:

# %%
def my_wgan_svc_step(G, D, opt_d, opt_g, real, z, step: int, clip_every: int = 5):
    fake = G(z)
    loss_d = d_wasserstein(D(real), D(fake.detach()))              # E[D(G(z))] − E[D(x)]
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    if (step + 1) % clip_every == 0:
        clip_singular_values(D)                                    # after the critic's update (the paper's code)
    loss_g = g_wasserstein(D(fake))                                # −E[D(G(z))]
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
nets = tgan(check_cfg)
mine = copy.deepcopy(nets)
real_check = MovingDigits(size=16, frames=8).batch(4, seed=0).video
zs = [sample_z(4, check_cfg.z_dim, generator=torch.Generator().manual_seed(i)) for i in range(5)]
opts = {k: torch.optim.RMSprop(mine[k].parameters(), lr=5e-3) for k in ("D", "G")}
for step in range(5):
    my_wgan_svc_step(mine["G"], mine["D"], opts["D"], opts["G"], real_check, zs[step], step)
trainer = Trainer(nets, {"disc": torch.optim.RMSprop(nets["D"].parameters(), lr=5e-3),
                         "gen": torch.optim.RMSprop(nets["G"].parameters(), lr=5e-3)}, lambda step: real_check,
                  TrainConfig(steps=5, grad_clip=None, progress=False, measure_flops=False),
                  step_fn=lambda t, real: tgan_step(t, real, zs[t.step], loss="wasserstein", clip_every=5))
trainer.fit()
for (name, p), q in zip(nets.named_parameters(), mine.parameters()):
    torch.testing.assert_close(p, q, msg=name, rtol=1e-4, atol=1e-5)
print("five my_wgan_svc_step match five vgcourse.gan.tgan_step(loss='wasserstein', clip_every=5)")
print("critic σ_max <= 1 after the fifth step:",
      max(largest_singular_value(m) for m in nets["D"].modules() if isinstance(m, nn.Conv3d)) <= 1 + 1e-4)

# %% [markdown]
# **The modern recipe** on the same generator and critic (less its batch norm, below) does not bound the critic's
# slope everywhere; it keeps the discriminator flat where the data is (Mescheder, Geiger & Nowozin 2018):
#
# - **The non-saturating logistic loss.** The critic is a discriminator again: it minimises its cross-entropy,
#   softplus(−D(x)) + softplus(D(G(z))), and the generator minimises softplus(−D(G(z))) (`d_nonsaturating`,
#   `g_nonsaturating`, chapter 01).
# - **R1 on real clips**, γ/2 · E‖∇ₓD(x)‖² (their eq. (9)), added to the discriminator's loss. Near equilibrium an
#   unregularised GAN's simultaneous updates can circle around the solution instead of converging; R1 penalises any
#   slope of D on the data, so D cannot sharpen its scores there without limit, and they prove that the updates then
#   converge locally. We take γ = 1, as chapters 03 and 04 do on the same clips.
# - **Lazy**: the penalty costs a second backward through the critic and changes slowly, so it is computed every 4th
#   step only, with weight 4γ, the same on average (Karras et al. 2020, StyleGAN2 §3.1).
# - **No normalisation in the critic.** R1 is about each clip's own gradient ∇ₓD(x); with batch norm (in training
#   mode) D(x) depends on the other clips of the batch, so the penalty would bound something else. With no norm,
#   each clip's score is its own (checked below).
# - **Adam with StyleGAN2's β = (0, 0.99)**, at 2·10⁻⁴ for both players: β₁ = 0 turns off first-moment momentum,
#   which would make two players who chase each other overshoot; one discriminator update per generator update.
# - The **EMA of the generator** for sampling, as for WGAN + SVC.
#
# R1 by hand, checked against the package's `r1_penalty`; and why the critic loses its batch norm: one clip's
# gradient, computed in two different batches.

# %%
def my_r1_penalty(D: nn.Module, real: torch.Tensor, gamma: float) -> torch.Tensor:
    """γ/2 · E_x ‖∇ₓD(x)‖² over a real batch (B, C, T, H, W) (Mescheder et al. 2018, eq. (9))."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(real).sum(), real, create_graph=True)   # (B, C, T, H, W): clip b's ∇ₓD(x_b),
    return gamma / 2 * grad.pow(2).flatten(1).sum(1).mean()                  # if D scores each clip on its own

# %%
# NBVAL_CHECK_OUTPUT
torch.manual_seed(0)
plain_critic = VideoDiscriminator(tgan_tiny(disc_norm="none"))
torch.testing.assert_close(my_r1_penalty(plain_critic, real_check, 1.0), r1_penalty(plain_critic, real_check, 1.0))
print("my_r1_penalty matches vgcourse.gan.r1_penalty")


def clip0_gradient(D: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """∇ₓ of the summed scores, at clip 0 of ``batch``."""
    x = batch.detach().clone().requires_grad_(True)
    return torch.autograd.grad(D(x).sum(), x)[0][0]


bn_critic = VideoDiscriminator(tgan_tiny()).train()                  # batch norm, training mode
for name, D in [("no norm", plain_critic), ("batch norm", bn_critic)]:
    same = torch.allclose(clip0_gradient(D, real_check), clip0_gradient(D, real_check[[0, 3, 3, 1]]), atol=1e-6)
    print(f"{name:10s}: clip 0's gradient is the same in a different batch: {same}")

# %% [markdown]
# **The step** of the second recipe, by hand, then the package's `tgan_step` from the same weights, batches and z for
# five steps, with R1 every 2nd step here so that the check meets both kinds of step. (In training, `tgan_step` also
# skips R1 on the one step whose FLOPs the loop counts, so that the FLOPs counted are those of the plain step; the MFU
# it reports slightly understates the steps that add R1.)

# %%
def my_logistic_r1_step(G, D, opt_d, opt_g, real, z, step: int, gamma: float = 1.0, every: int = 4):
    fake = G(z)
    loss_d = d_nonsaturating(D(real), D(fake.detach()))             # softplus(−D(x)) + softplus(D(G(z)))
    if step % every == 0:
        loss_d = loss_d + my_r1_penalty(D, real, every * gamma)      # lazy R1: every `every` steps, `every` × γ
    opt_d.zero_grad()
    loss_d.backward()
    opt_d.step()
    loss_g = g_nonsaturating(D(fake))                                # softplus(−D(G(z)))
    opt_g.zero_grad()
    loss_g.backward()
    opt_g.step()

# %%
# NBVAL_CHECK_OUTPUT
def adam(params):
    return torch.optim.Adam(params, lr=2e-3, betas=(0.0, 0.99))


torch.manual_seed(0)
nets = tgan(tgan_tiny(disc_norm="none"))
mine = copy.deepcopy(nets)
opts = {k: adam(mine[k].parameters()) for k in ("D", "G")}
for step in range(5):
    my_logistic_r1_step(mine["G"], mine["D"], opts["D"], opts["G"], real_check, zs[step], step, gamma=1.0, every=2)
trainer = Trainer(nets, {"disc": adam(nets["D"].parameters()), "gen": adam(nets["G"].parameters())},
                  lambda step: real_check, TrainConfig(steps=5, grad_clip=None, progress=False, measure_flops=False,
                                                       log_every=1),
                  step_fn=lambda t, real: tgan_step(t, real, zs[t.step], loss="nonsaturating", r1_gamma=1.0,
                                                    r1_every=2))
trainer.fit()
for (name, p), q in zip(nets.named_parameters(), mine.parameters()):
    torch.testing.assert_close(p, q, msg=name, rtol=1e-4, atol=1e-5)
print("five my_logistic_r1_step match five vgcourse.gan.tgan_step(loss='nonsaturating', r1_gamma=1, r1_every=2)")
print("R1 added on steps", [i for i, h in enumerate(trainer.history) if h["r1"] > 0])

# %% [markdown]
# What SVC costs: one singular value clipping of this profile's critic, timed (a singular value decomposition per
# layer, and a wait for the device at each layer to decide whether to clip).

# %%
critic = VideoDiscriminator(config).to(S.device)
svc_seconds = seconds_per_call(lambda: clip_singular_values(critic), repeats=3)   # median, after a warm-up
print(f"one SVC of the critic ({sum(isinstance(m, nn.Conv3d) for m in critic.modules())} convolutions, "
      f"{sum(isinstance(m, nn.BatchNorm3d) for m in critic.modules())} batch norms): {1000 * svc_seconds:.1f} ms; "
      f"every 5th step that is {1000 * svc_seconds / 5:.1f} ms a step")

# %% [markdown]
# ## 3 · The protocol and its reference rows
#
# The course's one protocol: clips scored by the video probe's Fréchet distance against held-out clips, with a
# jackknife standard error, beside the reference rows at the same number of clips: real clips, shuffled frames
# (every frame perfect, the order lost), frozen frames (the first frame held), noise and the mean video. The curves
# during training use fewer clips (`n_curve`) and the same reference; their own reference rows are recomputed at
# that number, since a Fréchet distance on fewer clips is biased upwards.

# %%
timer.start()
evaluator = Evaluator(data, n_real=n_real, device=S.device)
rows = reference_rows(evaluator, n=n_gen)
print(format_rows(rows))
real_curve = data.batch(n_curve, seed=PROTOCOL.reference_seed, device=S.device).video


def fd_of(clips: torch.Tensor) -> float:
    """Fréchet distance of clips (N, C, T, H, W) to the held-out reference, no standard error (for the curves)."""
    return frechet_distance(*gaussian_stats(evaluator.features(clips)), *evaluator.real_stats)


curve_rows = {"real": fd_of(real_curve), "shuffled frames": fd_of(shuffle_frames(real_curve, torch.Generator()
                                                                                 .manual_seed(0))),
              "frozen frames": fd_of(freeze_frames(real_curve))}
print(f"at {n_curve} clips (the curves): " + ", ".join(f"{k} {v:.2f}" for k, v in curve_rows.items()))
ref_minutes = timer.lap("reference rows")

# %% [markdown]
# ## 4 · Four runs: two recipes × two seeds, at matched minutes
#
# Each run trains for `run_minutes`, in `evals_per_run` equal segments. After each segment we sample `n_curve`
# clips from the live generator (batch norm with its running statistics) and from its EMA (with standing
# statistics, chapter 01) and measure their Fréchet distance. In both runs of a seed the generator starts from the
# same weights and sees the same real clips; only the recipe differs. Each run's training summary at the end of its
# `run_minutes` (steps, minutes, clips/s) is kept for the results file, before the headline run trains on.

# %%
def sample_clips(G: nn.Module, n: int, seed: int) -> torch.Tensor:
    """n clips from G in eval mode (its running or standing batch-norm statistics), in chunks of 128."""
    was_training = G.training
    G.eval()
    g = torch.Generator(S.device).manual_seed(seed)
    with torch.no_grad():
        out = torch.cat([G.sample(min(128, n - i), g) for i in range(0, n, 128)])
    G.train(was_training)
    return out


def train_run(recipe: str, seed: int) -> dict:
    """Train one TGAN with ``recipe`` from seed ``seed``; return its trainer, curve and timings."""
    spec = RECIPES[recipe]
    torch.manual_seed(seed)
    nets = tgan(type(config)(**{**vars(config), "disc_norm": spec["disc_norm"]})).to(S.device)
    trainer = Trainer(
        nets, {"disc": spec["d_optimizer"](nets["D"].parameters()), "gen": spec["g_optimizer"](nets["G"].parameters())},
        clip_stream(data, batch, seed=seed, device=S.device),
        TrainConfig(steps=segment_steps, max_minutes=run_minutes / evals_per_run if run_minutes else None,
                    grad_clip=None, ema_decay=ema_decay, amp=False, compile=False, progress=False,
                    log_every=pick(smoke=1, cpu=5, gpu=50)),
        step_fn=lambda t, real: tgan_step(t, real, sample_z(len(real), config.z_dim, S.device), loss=spec["loss"],
                                          clip_every=spec["clip_every"], r1_gamma=spec["r1_gamma"],
                                          r1_every=spec["r1_every"]),
        ema_of=nets["G"], model_config=vars(config) | {"recipe": recipe})
    run = {"trainer": trainer, "curve": [], "nets": nets, "seed": seed}
    train_segments(run, evals_per_run)
    run["matched"] = trainer.summary.as_dict()                   # a copy: the summary at the matched minutes
    return run


def train_segments(run: dict, segments: int) -> None:
    """Train ``segments`` more segments of the run, each followed by a point on its curve (live and EMA fd)."""
    trainer = run["trainer"]
    for _ in range(segments):
        trainer.fit(trainer.step + segment_steps)
        ema = standing_statistics(trainer.ema.model, rng=torch.Generator(S.device).manual_seed(run["seed"]),
                                  **standing)
        point = len(run["curve"])
        run["curve"].append({"step": trainer.step, "minutes": trainer.summary.wall_time_s / 60,
                             "fd_live": fd_of(sample_clips(run["nets"]["G"], n_curve, seed=100 + point)),
                             "fd_ema": fd_of(sample_clips(ema, n_curve, seed=100 + point))})


timer.start()
runs = {}
for recipe in RECIPES:
    for seed in seeds:
        runs[recipe, seed] = run = train_run(recipe, seed)
        s = run["trainer"].summary
        print(f"{recipe:13s} seed {seed}: {s.steps:6d} steps in {s.wall_time_s / 60:.2f} min, "
              f"{s.samples_per_s or float('nan'):6.0f} clips/s, MFU {(s.mfu or float('nan')):.1%}; fd (EMA) along "
              f"the run: " + " ".join(f"{p['fd_ema']:.0f}" for p in run["curve"]))
train_minutes = timer.lap("training (4 runs)")

# %%
def curve_figure() -> Figure:
    """Every run's Fréchet distance along its training minutes: live generator and its EMA, with the reference
    rows at the same number of clips (grey)."""
    fig = Figure(figsize=(12, 3.8), layout="constrained")
    axes = fig.subplots(1, 2, sharey=True)
    for ax, key, title in [(axes[0], "fd_live", "live generator"), (axes[1], "fd_ema", "EMA of the generator")]:
        for (recipe, seed), run in runs.items():
            ax.plot([p["minutes"] for p in run["curve"]], [p[key] for p in run["curve"]],
                    "o-" if seed == 0 else "s--", color="C0" if recipe == "WGAN + SVC" else "C1",
                    label=f"{recipe}, seed {seed}")
        if run_minutes:
            ax.axvline(run_minutes, color="grey", linewidth=0.5)
        for (name, value), style in zip(curve_rows.items(), [":", "--", "-."]):
            ax.axhline(value, color="grey", linestyle=style, linewidth=1, label=f"{name} ({n_curve} clips)")
        ax.set_yscale("log")
        ax.set_xlabel("training minutes")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"Fréchet distance on {n_curve} clips ↓")
    axes[1].legend(fontsize=7)
    return fig


curve_figure()

# %% [markdown]
# ## 5 · Which recipe trains more stably
#
# Decided before looking, from the final scores of the EMA generators at the protocol's numbers of clips: a recipe
# trains stably when *every* seed gets somewhere, so the **more stable recipe** is the one whose worse seed ends with
# the lower Fréchet distance — resolved when the two worse seeds differ by more than one standard error of the
# difference (`bar` with both standard errors), not resolved otherwise (the recipe with the lower mean over its
# seeds is then named, as a lean). Along the way we report each run's **setback**: the largest rise of its live curve
# above the best value it had reached, a direct reading of oscillation.

# %%
timer.start()
final = {}
for (recipe, seed), run in runs.items():
    ema = standing_statistics(run["trainer"].ema.model, rng=torch.Generator(S.device).manual_seed(seed), **standing)
    final[recipe, seed] = score(evaluator, sample_clips(ema, n_gen, seed=1000 + seed))
    fd_live = [p["fd_live"] for p in run["curve"]]
    final[recipe, seed]["setback"] = max(v - min(fd_live[:i + 1]) for i, v in enumerate(fd_live))
table = rows | {f"{recipe}, s{seed}": s for (recipe, seed), s in final.items()}     # s0: seed 0
print(format_rows(table, metrics=("fd", "frame_quality", "identity_consistency", "diversity",
                                  "motion_consistency")))
timer.lap("final scores")

worst = {recipe: max((final[recipe, seed] for seed in seeds), key=lambda s: s["fd"]) for recipe in RECIPES}
mean_fd = {recipe: sum(final[recipe, seed]["fd"] for seed in seeds) / len(seeds) for recipe in RECIPES}
(a, b) = RECIPES
stability = bar(worst[a]["fd"], worst[b]["fd"], worst[a]["fd_se"], worst[b]["fd_se"])   # a's worse seed below b's?
resolved = stability["outcome"] != "not resolved"
stable = {"met": a, "not met": b}.get(stability["outcome"], min(mean_fd, key=mean_fd.get))
for recipe in RECIPES:
    print(f"{recipe:13s}: worse seed fd {worst[recipe]['fd']:.2f} ± {worst[recipe]['fd_se']:.2f}, mean over seeds "
          f"{mean_fd[recipe]:.2f}, setbacks " + ", ".join(f"{final[recipe, s]['setback']:.1f}" for s in seeds))
print(show_bars({f"{a}'s worse seed below {b}'s": stability}))
print(f"more stable: {stable} ({'resolved' if resolved else 'not resolved: named by the lower mean over seeds'})")

# %% [markdown]
# ## 6 · The headline run trains on; the bar
#
# The more stable recipe's better seed trains on for `extra_minutes` more, continuing its curve, and is scored again
# at the protocol's numbers of clips: this is the chapter's headline model. The bar: a Fréchet distance below the
# shuffled-frame row, met only when beaten by one standard error (of the difference: the row is measured too). Beside
# it, the course's floor for showing a model's samples (below twice the shuffled-frame row) and a headline model's
# aim (below the frozen-frame row).

# %%
head_seed = min(seeds, key=lambda s: final[stable, s]["fd"])
head_run = runs[stable, head_seed]
timer.start()
head_run["trainer"].config.max_minutes = extra_minutes / extra_evals if extra_minutes else None
train_segments(head_run, extra_evals)
head_G = standing_statistics(head_run["trainer"].ema.model, rng=torch.Generator(S.device).manual_seed(head_seed),
                             **standing)
head = score(evaluator, sample_clips(head_G, n_gen, seed=2000))
head_summary = head_run["trainer"].summary
timer.lap("headline run, extra minutes")
shuffled, frozen = rows["shuffled frames"], rows["frozen frames"]
floor = floor_fd(rows)                                               # the floor for showing a model's samples
bars = {"fd below shuffled frames (the bar)": bar(head["fd"], shuffled["fd"], head["fd_se"], shuffled["fd_se"]),
        "fd below twice shuffled (the floor)": bar(head["fd"], floor, head["fd_se"], 2 * shuffled["fd_se"]),
        "fd below frozen frames (the aim)": bar(head["fd"], frozen["fd"], head["fd_se"], frozen["fd_se"])}
bar_verdict = bars["fd below shuffled frames (the bar)"]["outcome"]
print(format_rows({k: rows[k] for k in ("real", "shuffled frames", "frozen frames")}
                  | {f"headline, {head_summary.wall_time_s / 60:.1f} min": head},
                  metrics=("fd", "frame_quality", "identity_consistency", "diversity", "motion_consistency")))
print(f"\nheadline: {stable}, seed {head_seed}, {head_summary.steps} steps in {head_summary.wall_time_s / 60:.2f} min "
      f"(at {run_minutes or 0:.2f} min it was {final[stable, head_seed]['fd']:.2f} ± "
      f"{final[stable, head_seed]['fd_se']:.2f}; the other seed {final[stable, 1 - head_seed]['fd']:.2f})")
print(show_bars(bars))
if bar_verdict != "met":
    real = rows["real"]
    gaps = {m: head[m] / real[m] for m in ("frame_quality", "identity_consistency", "diversity")}
    weakest = min(gaps, key=gaps.get)
    print(f"Against real clips the headline model has {gaps['frame_quality']:.0%} of their frame quality, "
          f"{gaps['identity_consistency']:.0%} of their identity consistency and {gaps['diversity']:.0%} of their "
          f"diversity: the weakest is {weakest.replace('_', ' ')}")
curve_figure()

# %% [markdown]
# **Samples**, beside real clips: the headline model, and the other recipe from the same seed at the end of its
# matched minutes. Only a model past the floor by one standard error is shown (nothing shown draws noise); one that
# is not is named with its score instead.

# %%
shown = sample_clips(head_G, 8, seed=7)
other = next(r for r in RECIPES if r != stable)
other_G = standing_statistics(runs[other, head_seed]["trainer"].ema.model,
                              rng=torch.Generator(S.device).manual_seed(head_seed), **standing)
clips_of = {"headline": shown, other: sample_clips(other_G, 3, seed=7)}   # headline: the `stable` recipe
passed = past_the_floor({"headline": head, other: final[other, head_seed]}, floor)
strip = {f"real, {i}": clip for i, clip in enumerate(real_curve[:3])}
for name in passed:
    strip |= {f"{name}, {i}": clip for i, clip in enumerate(clips_of[name][:3])}
filmstrip(strip)

# %%
# NBVAL_IGNORE_OUTPUT
if "headline" in passed:
    display(show_video(shown, nrow=4, scale=2, caption=f"TGAN, {stable}, seed {head_seed}: 8 clips"))

# %% [markdown]
# ## Claim check: "singular value clipping trains a video GAN stably"
#
# TGAN's claim is that SVC makes the Wasserstein GAN train stably end to end where a normal GAN did not. Against a
# modern recipe on the same networks and minutes, decided before measuring, with the worse seed of each recipe
# (stability means every seed works) and one standard error of their difference:
#
# - *supported* if WGAN + SVC's worse seed ends no more than one standard error above logistic + R1's (as stable),
# - *not supported* if it ends more than one standard error above,
# - and in the first case we also say whether it is *better* (more than one standard error below).

# %%
svc, r1 = worst["WGAN + SVC"], worst["logistic + R1"]
claim_bar = bar(svc["fd"], r1["fd"], svc["fd_se"], r1["fd_se"])    # WGAN + SVC's worse seed below logistic + R1's?
claim = "not supported" if claim_bar["outcome"] == "not met" else "supported"
print(show_bars({"WGAN + SVC's worse seed below logistic + R1's": claim_bar}))
print(f"claim: {claim}" + (" (and better by more than one standard error)" if claim_bar["outcome"] == "met" else ""))
steps = {r: sum(runs[r, s]["matched"]["steps"] for s in seeds) / len(seeds) for r in RECIPES}
print("steps in the same minutes: " + ", ".join(f"{r} {v:.0f}" for r, v in steps.items()) +
      f"; SVC costs {1000 * svc_seconds:.1f} ms each 5th step")

# %% [markdown]
# ## Results

# %%
results.record("02_tgan", {
    "headline": headline(head, n_real=n_real, minutes=head_summary.wall_time_s / 60, recipe=stable, seed=head_seed,
                         steps=head_summary.steps, bar_shuffled_frames=shuffled["fd"], bar_verdict=bar_verdict,
                         floor_passed="headline" in passed, samples_per_s=head_summary.samples_per_s,
                         mfu=head_summary.mfu),
    "headline_train": head_summary.as_dict(), "bars": bars,
    "reference_rows": rows, "curve_reference_rows": curve_rows, "n_curve": n_curve,
    "runs": {f"{recipe}, seed {seed}": {"final": final[recipe, seed], "curve": run["curve"],
                                        "matched": run["matched"]}
             for (recipe, seed), run in runs.items()},
    "more_stable": stable, "more_stable_resolved": resolved, "stability_comparison": stability,
    "claim_svc_stable": claim, "claim_bar": claim_bar, "svc_ms": 1000 * svc_seconds, "minutes": timer.minutes,
}, started=STARTED, config={"tgan": vars(config), "batch": batch, "run_minutes": run_minutes,
                           "evals_per_run": evals_per_run, "extra_minutes": extra_minutes, "extra_evals": extra_evals,
                           "ema_decay": ema_decay, "seeds": seeds,
                           "recipes": {k: {kk: vv for kk, vv in v.items() if not kk.endswith("optimizer")}
                                       for k, v in RECIPES.items()},
                           "optimizers": {"WGAN + SVC": "RMSprop lr 5e-5 (D and G)",
                                          "logistic + R1": "Adam betas (0, 0.99), lr 2e-4 (D and G)"}})

# %% [markdown]
# ## Exercises
#
# **1. Singular value clipping.** Write `svc(matrix, limit)`: the matrix with every singular value above `limit` set
# to `limit`, the others unchanged.

# %%
def svc(matrix, limit):
    # YOUR CODE HERE
    raise NotImplementedError

# %%
# NBVAL_CHECK_OUTPUT
check("clip_singular_values", svc)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `u, s, vh = torch.linalg.svd(matrix, full_matrices=False)`, then `(u * s.clamp(max=limit)) @ vh`. Dividing by the
# largest singular value instead would be spectral normalisation: it shrinks every direction. The reference answer:
# `solution("clip_singular_values")`.
# </details>
#
# **2. The image generator's inputs.** Write `frame_inputs(z0, z1)`: from z₀ (B, K₀) and the temporal generator's
# z₁ (B, K₁, T), the inputs of all B·T frames, (B·T, K₀) and (B·T, K₁), clip by clip and frame by frame.

# %%
def frame_inputs(z0, z1):
    # YOUR CODE HERE
    raise NotImplementedError

# %%
# NBVAL_CHECK_OUTPUT
check("frame_inputs", frame_inputs)

# %% [markdown]
# <details><summary>Hint</summary>
#
# `einops.repeat(z0, "b k -> (b t) k", t=T)` and `einops.rearrange(z1, "b k t -> (b t) k")`. A plain
# `z1.reshape(B * T, K1)` mixes the latent and time axes. The reference answer: `solution("frame_inputs")`.
# </details>
#
# **3. Take the motion out (changes the model).** Write `freeze_motion(z1)`: the frame latents (B, K₁, T) with every
# frame's latent replaced by frame 0's. *Predict first*: drawn through the trained image generator, will these clips
# score near the frozen-frames row? What happens to identity consistency, and to the motion metrics? The cell after
# the check draws them from the headline model (with your function once it passes) and scores them.

# %%
def freeze_motion(z1):
    # YOUR CODE HERE
    raise NotImplementedError

# %%
# NBVAL_CHECK_OUTPUT
check("freeze_motion", freeze_motion)

# %%
freeze = freeze_motion if check("freeze_motion", freeze_motion).passed else solution("freeze_motion")
with torch.no_grad():
    z0 = sample_z(n_gen, config.z_dim, S.device, torch.Generator(S.device).manual_seed(1000 + head_seed))
    z1 = freeze(head_G.temporal(z0))                                 # (B, K₁, T), every frame frame 0's
    frozen_clips = rearrange(head_G.image(repeat(z0, "b k -> (b t) k", t=frames), rearrange(z1, "b k t -> (b t) k")),
                             "(b t) c h w -> b c t h w", t=frames)
frozen_scores = score(evaluator, frozen_clips)
print(format_rows({"frozen frames": rows["frozen frames"], "headline": head, "motion frozen": frozen_scores},
                  metrics=("fd", "identity_consistency", "motion_consistency", "frame_quality")))
print(f"speed ratio (tracked speed / real): headline {head['speed_ratio']:.2f}, motion frozen "
      f"{frozen_scores['speed_ratio']:.2f}")

# %% [markdown]
# <details><summary>Hint</summary>
#
# `z1[:, :, :1].expand_as(z1)` (then `.clone()` if you will write into it). With z₁ held, G₁ draws the same frame T
# times: identity consistency becomes 1 and the tracked speed falls to 0, as for the frozen real clips; the Fréchet
# distance then says how much of the model's distance was motion. The reference answer: `solution("freeze_motion")`.
# </details>

# %%
print(f"notebook wall time: {(time.time() - STARTED) / 60:.1f} min in the {S.profile} profile")
