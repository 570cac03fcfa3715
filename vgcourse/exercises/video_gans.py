"""Exercises on the video GANs of the GAN + VAE era: MoCoGAN's motion codes, reading shared motion, a MoCoGAN without
its video discriminator; DVD-GAN's φ, SAVP's KL term and a hybrid without it."""

from __future__ import annotations

from dataclasses import fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from vgcourse.exercises import Wrong, exercise
from vgcourse.gan.losses import d_nonsaturating, g_nonsaturating
from vgcourse.gan.mocogan import MoCoGANConfig, MotionRNN, build_mocogan, sample_frames
from vgcourse.gan.video_prediction import MODES, PredictionRecipe, kl_to_unit_gaussian
from vgcourse.metrics.disentanglement import track_correlation
from vgcourse.train import TrainConfig, Trainer


def _shape(x: object) -> object:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


# ---- 1. MoCoGAN's motion codes ---------------------------------------------------------------------------------
def motion_codes_solution(cell: nn.GRUCell, h0: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """z_M(1..T) (B, T, d_M): h_t = GRU(ε_t, h_{t−1}) from h_0 (B, d_M) and ε (B, T, d_ε)."""
    h, codes = h0, []
    for t in range(noise.shape[1]):
        h = cell(noise[:, t], h)
        codes.append(h)
    return torch.stack(codes, dim=1)


@exercise("motion_codes", "Unroll MoCoGAN's motion network: given a GRU cell, h_0 (B, d_M) and noise ε (B, T, d_ε), "
          "return z_M(1..T) (B, T, d_M) with h_t = cell(ε_t, h_{t−1}).", motion_codes_solution)
def check_motion_codes(answer) -> None:
    torch.manual_seed(0)
    rnn = MotionRNN(motion_dim=5, noise_dim=3)
    cell = nn.GRUCell(3, 5)
    with torch.no_grad():
        cell.weight_ih.copy_(rnn.gru.weight_ih_l0), cell.weight_hh.copy_(rnn.gru.weight_hh_l0)
        cell.bias_ih.copy_(rnn.gru.bias_ih_l0), cell.bias_hh.copy_(rnn.gru.bias_hh_l0)
    h0, noise = torch.randn(2, 5), torch.randn(2, 7, 3)
    with torch.no_grad():
        out, want = answer(cell, h0, noise), rnn(h0, noise)
    if not isinstance(out, torch.Tensor) or out.shape != want.shape:
        raise Wrong(f"expected z_M of shape (B, T, d_M) = {tuple(want.shape)}, got {_shape(out)}")
    if torch.allclose(out, want, atol=1e-5):
        return
    if torch.allclose(out[:, 1:], want[:, :-1], atol=1e-5) and torch.allclose(out[:, 0], h0):
        raise Wrong("your codes are h_0..h_{T−1}: the first code is h_1 = GRU(ε_1, h_0), after the first step")
    if torch.allclose(out[:, 0], want[:, 0], atol=1e-5):
        raise Wrong("the first code is right but later ones are not: feed each step the state the previous step "
                    "returned, and ε_t at step t")
    raise Wrong("z_M differs from the GRU's states: call cell(ε_t, h) with the noise first and the state second")


# ---- 2. correlation of centred tracks ----------------------------------------------------------------------------
def centred_correlation_solution(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per pair (N,): the Pearson correlation of two tracks (N, T, 2), each centred on its own mean position."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum((1, 2)) / (a.flatten(1).norm(dim=1) * b.flatten(1).norm(dim=1)).clamp(min=1e-6)


@exercise("centred_correlation", "Do two clips move alike? Given one object's track in each, a (N, T, 2) and b (N, T, "
          "2) as (y, x) per frame, centre each track on its own mean position over time and return, per pair, the "
          "correlation Σ a·b / (‖a‖ ‖b‖) over frames and axes: shape (N,).", centred_correlation_solution)
def check_centred_correlation(answer) -> None:
    g = torch.Generator().manual_seed(0)
    a = torch.randn(6, 12, 2, generator=g).cumsum(1) + 10
    b = torch.randn(6, 12, 2, generator=g).cumsum(1) + 20
    for x, y, what in [(a, a + 5.0, "a path and the same path moved 5 px"), (a, b, "two random walks"),
                       (a, 2 * a.mean(1, keepdim=True) - a, "a path and its mirror image in time")]:
        out = answer(x, y)
        want = track_correlation(x[:, :, None].double(), y[:, :, None].double()).float()
        if not isinstance(out, torch.Tensor) or out.shape != want.shape:
            raise Wrong(f"expected one correlation per pair, shape {tuple(want.shape)}, got {_shape(out)}")
        if not torch.allclose(out.float(), want, atol=1e-4):
            uncentred = (x * y).sum((1, 2)) / (x.flatten(1).norm(dim=1) * y.flatten(1).norm(dim=1))
            hint = (" Centre each track on its own mean over time: parallel paths far apart move alike."
                    if torch.allclose(out.float(), uncentred, atol=1e-4) else "")
            raise Wrong(f"for {what} expected {want.numpy().round(3)}, got {out.float().numpy().round(3)}.{hint}")


# ---- 3. MoCoGAN without its video discriminator (a change to the recipe) ----------------------------------------
def image_only_step_solution(trainer, batch) -> dict[str, torch.Tensor]:
    """MoCoGAN's step with D_I alone: D_V takes no part (its weights stay as they are)."""
    G, D_I = trainer.forward_model["G"], trainer.forward_model["D_I"]
    real = batch.video if hasattr(batch, "video") else batch
    fake = G.sample(real.shape[0], frames=real.shape[2])
    d_loss = d_nonsaturating(D_I(sample_frames(real, 1)), D_I(sample_frames(fake.detach(), 1)))
    trainer.optimize(d_loss, "disc")
    D_I.requires_grad_(False)
    g_loss = g_nonsaturating(D_I(sample_frames(fake, 1)))
    trainer.optimize(g_loss, "gen")
    D_I.requires_grad_(True)
    return {"d_image": d_loss.detach(), "g_image": g_loss.detach()}


@exercise("image_only_step", "Write a MoCoGAN training step without the video discriminator: D_I (on one random frame "
          "per clip, non-saturating loss) against the generator, D_V left out entirely. The model is "
          "trainer.forward_model = {'G', 'D_I', 'D_V'}; call trainer.optimize(loss, 'disc') then "
          "trainer.optimize(loss, 'gen'); return a dict of logged tensors.", image_only_step_solution)
def check_image_only_step(answer) -> None:
    torch.manual_seed(0)
    cfg = MoCoGANConfig(image_size=16, frames=16, content_dim=4, motion_dim=3, noise_dim=2, gen_width=4,
                        gen_norm="group", disc_width=4, disc_norm="none")
    m = build_mocogan(cfg)
    opt = {"disc": torch.optim.Adam(list(m["D_I"].parameters()) + list(m["D_V"].parameters()), 1e-2),
           "gen": torch.optim.Adam(m["G"].parameters(), 1e-2)}
    video = torch.rand(4, 1, 16, 16, 16) * 2 - 1
    trainer = Trainer(m, opt, lambda step: video, TrainConfig(steps=2, grad_clip=None, progress=False, log_every=1,
                                                              measure_flops=False),
                      step_fn=answer)
    before = {k: [p.detach().clone() for p in v.parameters()] for k, v in m.items()}
    trainer.fit()
    changed = {k: any(not torch.equal(p, q) for p, q in zip(v.parameters(), before[k])) for k, v in m.items()}
    if changed["D_V"]:
        raise Wrong("D_V's weights changed: without the video discriminator, D_V must take no part in the step")
    if not changed["D_I"]:
        raise Wrong("D_I did not learn: compute its loss on real and generated frames and call "
                    "trainer.optimize(d_loss, 'disc')")
    if not changed["G"]:
        raise Wrong("the generator did not learn: its loss must reach G through D_I's score of generated frames, "
                    "then trainer.optimize(g_loss, 'gen')")
    if not all(p.requires_grad for p in m["D_I"].parameters()):
        raise Wrong("D_I's weights are left frozen after the step: switch requires_grad back on")


# ---- 4. DVD-GAN's φ ------------------------------------------------------------------------------------------
def downsample_space_solution(video: torch.Tensor, factor: int) -> torch.Tensor:
    """φ: every frame average-pooled by ``factor`` (B, C, T, H, W) -> (B, C, T, H/factor, W/factor)."""
    return F.avg_pool3d(video, (1, factor, factor))


@exercise("downsample_space", "Write DVD-GAN's φ, what D_T sees: average-pool every frame of a clip (B, C, T, H, W) "
          "by `factor` in height and width, keeping every frame.", downsample_space_solution)
def check_downsample_space(answer) -> None:
    g = torch.Generator().manual_seed(0)
    video = torch.randn(2, 1, 8, 16, 16, generator=g)
    for factor in (2, 4):
        out, want = answer(video, factor), downsample_space_solution(video, factor)
        if not isinstance(out, torch.Tensor) or out.shape != want.shape:
            hint = (" φ pools space only: D_T must see every frame to judge motion"
                    if isinstance(out, torch.Tensor) and out.dim() == 5 and out.shape[2] < 8 else "")
            raise Wrong(f"for factor {factor} expected shape {tuple(want.shape)}, got {_shape(out)}.{hint}")
        if not torch.allclose(out, want, atol=1e-5):
            raise Wrong(f"for factor {factor} the values differ from the average of each {factor}×{factor} block "
                        "(average, not subsample or max)")


# ---- 5. SAVP's KL term -----------------------------------------------------------------------------------------
def kl_to_prior_solution(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) summed over the latent, averaged over clips and steps: mean, log_var (B, T, nz)."""
    return 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var).sum(-1).mean()


@exercise("kl_to_prior", "SAVP's KL term: for per-step posteriors with mean and log-variance (B, T, nz), return the "
          "KL divergence to the unit Gaussian prior, summed over the nz dimensions and averaged over clips and "
          "steps (a scalar).", kl_to_prior_solution)
def check_kl_to_prior(answer) -> None:
    g = torch.Generator().manual_seed(0)
    mean, log_var = torch.randn(3, 4, 5, generator=g), torch.randn(3, 4, 5, generator=g)
    out = answer(mean, log_var)
    want = kl_to_unit_gaussian(mean, log_var)
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        raise Wrong(f"expected a scalar, got {_shape(out)}")
    if abs(float(answer(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)))) > 1e-6:
        raise Wrong("at the prior itself (μ = 0, log σ² = 0) the KL must be 0")
    got, ref = float(out), float(want)
    if abs(got - ref) <= 1e-4 * max(1.0, abs(ref)):
        return
    per_dim = float(want) / 5
    if abs(got - per_dim) <= 1e-4 * max(1.0, abs(per_dim)):
        raise Wrong("you averaged over the latent dimensions: sum them (the KL of independent dimensions adds up)")
    if abs(got - 2 * ref) <= 1e-4 * max(1.0, abs(ref)):
        raise Wrong("twice the right value: the Gaussian KL has a factor ½")
    raise Wrong(f"expected {ref:.4f}, got {got:.4f}: ½ Σ (μ² + σ² − 1 − log σ²), with σ² = exp(log_var)")


# ---- 6. a hybrid without its KL term (a change to the recipe) ---------------------------------------------------
def hybrid_without_kl_solution() -> PredictionRecipe:
    """SAVP's hybrid with λ_KL = 0: the posterior is still used in training, nothing pulls it to the prior."""
    return replace(MODES["hybrid"], kl_weight=0.0)


@exercise("hybrid_without_kl", "Return the hybrid's recipe (vgcourse.gan.video_prediction.MODES['hybrid']) with the "
          "KL term switched off and everything else kept.", hybrid_without_kl_solution)
def check_hybrid_without_kl(answer) -> None:
    out = answer()
    if not isinstance(out, PredictionRecipe):
        raise Wrong(f"expected a PredictionRecipe, got {type(out).__name__}")
    hybrid = MODES["hybrid"]
    if out.kl_weight != 0:
        raise Wrong(f"the KL weight is still {out.kl_weight}: set kl_weight=0.0")
    if not out.posterior:
        raise Wrong("keep the posterior (posterior=True): only the KL term goes")
    kept = [f.name for f in fields(hybrid) if f.name != "kl_weight" and getattr(out, f.name) != getattr(hybrid, f.name)]
    if kept:
        raise Wrong(f"change only the KL weight; {kept} differ from the hybrid's (dataclasses.replace helps)")
