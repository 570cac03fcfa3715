"""Exercises on the first generative models of frames and clips: the VAE's reparameterisation and KL, the β-VAE
loss, the GAN discriminator's loss; TGAN's singular value clipping, its frame latents, and a TGAN without motion."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from einops import rearrange, repeat

from vgcourse.autoencoders import FrameVAE, frame_vae_tiny, gaussian_nll
from vgcourse.exercises import Wrong, exercise
from vgcourse.gan import d_nonsaturating


def _shape(x: object) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


def _gaussian(n: int = 5, d: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=g), torch.randn(n, d, generator=g) - 0.5


# ---- 1. the reparameterisation --------------------------------------------------------------------------------
def reparameterize_solution(mean: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = μ + σ ⊙ ε with σ = exp(½ log σ²) (Kingma & Welling 2014, eq. (10)): a draw from N(μ, σ²) that is a
    differentiable function of μ and log σ²."""
    return mean + torch.exp(0.5 * logvar) * eps


@exercise("reparameterize", "Draw z ~ N(μ, diag σ²) as a differentiable function of the encoder's outputs: given μ, "
          "log σ² and noise ε ~ N(0, I), all (N, d), return z (Kingma & Welling 2014, eq. (10)).",
          reparameterize_solution)
def check_reparameterize(answer) -> None:
    mean, logvar = _gaussian()
    eps = torch.randn(mean.shape, generator=torch.Generator().manual_seed(1))
    mean, logvar = mean.requires_grad_(), logvar.requires_grad_()
    out = answer(mean, logvar, eps.clone())
    want = reparameterize_solution(mean, logvar, eps)
    if not isinstance(out, torch.Tensor) or out.shape != mean.shape:
        raise Wrong(f"expected z of shape {tuple(mean.shape)} like μ, got {_shape(out)}")
    if not out.requires_grad:
        raise Wrong("z carries no gradient: build it from μ and log σ² with tensor operations (no .detach(), no "
                    "sampling from a distribution object)")
    if torch.allclose(out, want, atol=1e-5):
        grad_mean, grad_logvar = torch.autograd.grad(out.sum(), (mean, logvar))
        if not torch.allclose(grad_mean, torch.ones_like(grad_mean)):
            raise Wrong("∂z/∂μ should be 1")
        return
    with torch.no_grad():
        if torch.allclose(out, mean + torch.exp(logvar) * eps, atol=1e-5):
            raise Wrong("exp(log σ²) is the variance σ²; the draw scales ε by the standard deviation σ = exp(½ log σ²)")
        if torch.allclose(out, mean + logvar * eps, atol=1e-5):
            raise Wrong("the encoder gives log σ², not σ: take exp(½ log σ²)")
        if torch.allclose(out, mean, atol=1e-5):
            raise Wrong("that is μ alone: add σ ⊙ ε")
        raise Wrong(f"z differs from μ + exp(½ log σ²) ε by up to {(out - want).abs().max().item():.3g}")


# ---- 2. the KL term -------------------------------------------------------------------------------------------
def kl_standard_normal_solution(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) per row (N,), in nats: ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²) (Kingma & Welling 2014,
    Appendix B)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(1)


@exercise("kl_standard_normal", "The KL divergence of the encoder's Gaussian N(μ, diag σ²) from the prior N(0, I), one "
          "number per frame: μ and log σ² are (N, d); return (N,) in nats (Kingma & Welling 2014, Appendix B).",
          kl_standard_normal_solution)
def check_kl_standard_normal(answer) -> None:
    mean, logvar = _gaussian()
    out = answer(mean.clone(), logvar.clone())
    want = kl_standard_normal_solution(mean, logvar)
    if not isinstance(out, torch.Tensor) or out.shape != (mean.shape[0],):
        raise Wrong(f"expected one KL per frame, shape ({mean.shape[0]},), got {_shape(out)}: sum over the latent "
                    "dimensions")
    if torch.allclose(out, want, rtol=1e-4, atol=1e-5):
        zero = answer(torch.zeros(2, 3), torch.zeros(2, 3))
        if not torch.allclose(zero, torch.zeros(2), atol=1e-6):
            raise Wrong("KL(N(0, I) ‖ N(0, I)) must be 0")
        return
    if torch.allclose(out, 2 * want, rtol=1e-4, atol=1e-5):
        raise Wrong("twice the KL: the closed form has a factor ½")
    if torch.allclose(out, -want, rtol=1e-4, atol=1e-5):
        raise Wrong("a negative KL: the sign is flipped (KL ≥ 0, and 0 only at μ = 0, σ = 1)")
    if torch.allclose(out, want / mean.shape[1], rtol=1e-4, atol=1e-5):
        raise Wrong("that is a mean over the latent dimensions; the KL of a diagonal Gaussian is their sum")
    raise Wrong(f"the KL differs from ½ Σ (μ² + σ² − 1 − log σ²) by up to {(out - want).abs().max().item():.3g}")


# ---- 3. the discriminator's loss ------------------------------------------------------------------------------
def discriminator_loss_solution(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """−E[log σ(D(x))] − E[log(1 − σ(D(G(z))))], from logits: softplus(−real) + softplus(fake), averaged
    (Goodfellow et al. 2014, eq. (1), the discriminator's side as a cross-entropy)."""
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


@exercise("discriminator_loss", "The GAN discriminator's loss from its logits on a real batch and a generated batch: "
          "the cross-entropy of calling real frames real and generated ones fake, −E[log σ(D(x))] − "
          "E[log(1 − σ(D(G(z))))] (Goodfellow et al. 2014, eq. (1)). Use logits, not probabilities, to stay stable.",
          discriminator_loss_solution)
def check_discriminator_loss(answer) -> None:
    g = torch.Generator().manual_seed(2)
    real, fake = torch.randn(6, generator=g) * 3, torch.randn(10, generator=g) * 3 - 1  # batches of two sizes
    out = answer(real.clone(), fake.clone())
    want = d_nonsaturating(real, fake)
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        raise Wrong(f"expected a scalar loss, got {_shape(out)}")
    if torch.allclose(out.float(), want, atol=1e-5):
        far = answer(torch.tensor([-200.0]), torch.tensor([200.0]))
        if not torch.isfinite(far).all() or abs(far.item() - 400.0) > 1e-2:
            raise Wrong("a confident, wrong discriminator (logits ∓200) must give a finite loss of 400: compute it "
                        "from logits with softplus / logsigmoid, not log(sigmoid(·)), which is log 0 there")
        return
    if torch.allclose(out.float(), d_nonsaturating(fake, real), atol=1e-5):
        raise Wrong("real and generated are swapped: the discriminator is rewarded for high logits on real frames")
    if torch.allclose(out.float(), fake.mean() - real.mean(), atol=1e-5):
        raise Wrong("that is the Wasserstein critic's loss (chapter 02); here use the cross-entropy")
    if torch.allclose(out.float(), F.softplus(-real).sum() + F.softplus(fake).sum(), atol=1e-4):
        raise Wrong("a sum over the batch: average each term over its own batch")
    if torch.allclose(out.float(), torch.cat([F.softplus(-real), F.softplus(fake)]).mean(), atol=1e-5):
        raise Wrong("that averages over the pooled batches; average each term over its own batch, then add")
    raise Wrong(f"expected {want.item():.5f}, got {out.float().item():.5f}")


# ---- 4. the β-VAE loss (changes the recipe: the notebook trains with it) ---------------------------------------
def beta_vae_loss_solution(model: FrameVAE, x: torch.Tensor, beta: float, eps: torch.Tensor) -> torch.Tensor:
    """E[−log p(x|z)] + β · KL(q(z|x) ‖ N(0, I)) averaged over the frames, with the draw z = μ + σ ε given by ``eps``
    (N, latent_dim) (Higgins et al. 2017, eq. (4); β = 1 is minus the ELBO)."""
    posterior = model.encode(x)
    z = posterior.mean + posterior.std * eps  # the reparameterised draw
    nll = gaussian_nll(x, model.decode(z), model.scale())  # (N,): −log N(x; μ_θ(z), s² I)
    return (nll + beta * posterior.kl()).mean()


@exercise("beta_vae_loss", "The β-VAE loss of a batch of frames, from the model's parts: encode (model.encode(x) gives "
          "q(z|x) with .mean, .std and .kl()), draw z = μ + σ ε with the given ε, decode (model.decode(z)), score the "
          "frames under N(μ_θ(z), s² I) with gaussian_nll(x, mean, model.scale()), and return the mean over frames "
          "of −log p(x|z) + β · KL (Higgins et al. 2017, eq. (4)).", beta_vae_loss_solution)
def check_beta_vae_loss(answer) -> None:
    torch.manual_seed(0)
    model = FrameVAE(frame_vae_tiny()).eval()
    x = torch.rand(4, 1, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    eps = torch.randn(4, model.cfg.latent_dim, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        model.log_scale.fill_(math.log(0.2))
        posterior = model.encode(x)
        nll = gaussian_nll(x, model.decode(posterior.mean + posterior.std * eps), model.scale())
        kl = posterior.kl()
    for beta in (1.0, 4.0):
        out = answer(model, x.clone(), beta, eps.clone())
        want = (nll + beta * kl).mean()
        if not isinstance(out, torch.Tensor) or out.numel() != 1:
            raise Wrong(f"expected a scalar loss, got {_shape(out)}")
        out = out.detach().float().reshape(())
        if torch.allclose(out, want, rtol=1e-4):
            continue
        if torch.allclose(out, (nll + kl).mean(), rtol=1e-4):
            raise Wrong(f"at β = {beta} that is the β = 1 loss: multiply the KL by β")
        if torch.allclose(out, (nll + beta * kl).sum(), rtol=1e-4):
            raise Wrong("a sum over the frames: average over them")
        if torch.allclose(out, (beta * nll + kl).mean(), rtol=1e-4):
            raise Wrong("β weights the KL term, not the reconstruction term")
        with torch.no_grad():
            mean_only = (gaussian_nll(x, model.decode(posterior.mean), model.scale()) + beta * kl).mean()
        if torch.allclose(out, mean_only, rtol=1e-4):
            raise Wrong("you decoded μ; decode the draw z = μ + σ ε with the given ε")
        raise Wrong(f"at β = {beta}: expected {want.item():.4f} nats per frame, got {out.item():.4f}")


# ---- 5. singular value clipping (TGAN) ------------------------------------------------------------------------
def clip_singular_values_solution(matrix: torch.Tensor, limit: float = 1.0) -> torch.Tensor:
    """W = U Σ Vᵀ -> U min(Σ, limit) Vᵀ (Saito et al. 2017, §4.2): singular values above ``limit`` set to it."""
    u, s, vh = torch.linalg.svd(matrix, full_matrices=False)
    return (u * s.clamp(max=limit)) @ vh


@exercise("clip_singular_values", "TGAN's singular value clipping of one weight matrix W (out, in): decompose "
          "W = U Σ Vᵀ, set every singular value above ``limit`` to ``limit``, and put W back together (Saito et al. "
          "2017, §4.2). The result's largest singular value is at most ``limit``.", clip_singular_values_solution)
def check_clip_singular_values(answer) -> None:
    g = torch.Generator().manual_seed(5)
    u, _ = torch.linalg.qr(torch.randn(6, 6, generator=g))
    v, _ = torch.linalg.qr(torch.randn(4, 4, generator=g))
    s = torch.tensor([3.0, 1.5, 0.8, 0.2])
    w = (u[:, :4] * s) @ v.T  # (6, 4) with known singular values
    out = answer(w.clone(), 1.0)
    want = clip_singular_values_solution(w, 1.0)
    if not isinstance(out, torch.Tensor) or out.shape != w.shape:
        raise Wrong(f"expected a matrix of shape {tuple(w.shape)} like W, got {_shape(out)}")
    if not torch.allclose(out, want, atol=1e-4):
        got = torch.linalg.svdvals(out)
        if torch.allclose(got, torch.ones(4), atol=1e-3):
            raise Wrong("every singular value is 1 (the matrix was orthogonalised): only those above the limit "
                        "change; 0.8 and 0.2 must stay")
        if torch.allclose(out, w / 3.0, atol=1e-4):
            raise Wrong("that divides W by its largest singular value (spectral normalisation): it shrinks 0.8 and "
                        "0.2 too; clipping leaves them as they are")
        if torch.allclose(out, w.clamp(-1, 1), atol=1e-4):
            raise Wrong("that clips each weight to [−1, 1] (WGAN's weight clipping); clip the singular values "
                        "instead")
        raise Wrong(f"the singular values of your matrix are {got.round(decimals=3).tolist()}; expected "
                    f"{[round(v, 3) for v in s.clamp(max=1).tolist()]}")
    at_two = answer(w.clone(), 2.0)  # the limit is an argument: 3 becomes 2, the rest stay
    if not isinstance(at_two, torch.Tensor) or at_two.shape != w.shape:
        raise Wrong(f"with limit 2.0: expected a matrix of shape {tuple(w.shape)} like W, got {_shape(at_two)}")
    if not torch.allclose(at_two, clip_singular_values_solution(w, 2.0), atol=1e-4):
        got = torch.linalg.svdvals(at_two).round(decimals=3).tolist()
        want_two = [round(v, 3) for v in s.clamp(max=2).tolist()]
        raise Wrong(f"with limit 2.0 the singular values should be {want_two}, got {got}: clip at `limit`, not at 1")


# ---- 6. the image generator's inputs (TGAN) --------------------------------------------------------------------
def frame_inputs_solution(z0: torch.Tensor, z1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The image generator's inputs for every frame of every clip, clip by clip, frame by frame: z₀ repeated over the
    T frames, (B·T, K₀), and z₁ᵗ, (B·T, K₁), from z₀ (B, K₀) and the temporal generator's output z₁ (B, K₁, T)."""
    t = z1.shape[2]
    return repeat(z0, "b k -> (b t) k", t=t), rearrange(z1, "b k t -> (b t) k")


@exercise("frame_inputs", "TGAN's image generator draws one frame from (z₀, z₁ᵗ). Given z₀ (B, K₀) and the temporal "
          "generator's output z₁ (B, K₁, T), return the inputs of all B·T frames as two matrices, (B·T, K₀) and "
          "(B·T, K₁), ordered clip by clip and, within a clip, frame by frame (row b·T + t is clip b, frame t).",
          frame_inputs_solution)
def check_frame_inputs(answer) -> None:
    g = torch.Generator().manual_seed(6)
    z0, z1 = torch.randn(3, 5, generator=g), torch.randn(3, 4, 7, generator=g)  # B=3, K0=5, K1=4, T=7
    out = answer(z0.clone(), z1.clone())
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise Wrong(f"expected a pair (z0 per frame, z1 per frame), got {type(out).__name__}")
    a, b = out
    if not isinstance(a, torch.Tensor) or a.shape != (21, 5):
        raise Wrong(f"expected z₀ per frame of shape (B·T, K₀) = (21, 5), got {_shape(a)}")
    if not isinstance(b, torch.Tensor) or b.shape != (21, 4):
        raise Wrong(f"expected z₁ per frame of shape (B·T, K₁) = (21, 4), got {_shape(b)}"
                    + (" (z₁ is (B, K₁, T): move T next to B before flattening)" if isinstance(b, torch.Tensor)
                       and b.numel() == 84 else ""))
    want_a, want_b = frame_inputs_solution(z0, z1)
    if not torch.allclose(a, want_a):
        if torch.allclose(a, repeat(z0, "b k -> (t b) k", t=7)):
            raise Wrong("z₀ rows go frame by frame across clips ((t b) order); the image generator's output is "
                        "reshaped clip by clip, (b t)")
        raise Wrong("row b·T + t of the z₀ matrix must be z₀ of clip b (the same for all T frames of the clip)")
    if not torch.allclose(b, want_b):
        if torch.allclose(b, z1.reshape(21, 4)):
            raise Wrong("reshaping (B, K₁, T) straight to (B·T, K₁) mixes the latent and time axes: rearrange "
                        "'b k t -> (b t) k'")
        if torch.allclose(b, rearrange(z1, "b k t -> (t b) k")):
            raise Wrong("z₁ rows are in (t b) order; the frames of one clip must be consecutive, (b t)")
        raise Wrong("row b·T + t of the z₁ matrix must be z₁[b, :, t]")


# ---- 7. a TGAN without motion (changes the model: the notebook scores it) --------------------------------------
def freeze_motion_solution(z1: torch.Tensor) -> torch.Tensor:
    """The temporal generator's output (B, K₁, T) with every frame's latent replaced by the first frame's."""
    return z1[:, :, :1].expand_as(z1).clone()


@exercise("freeze_motion", "Take the motion out of a trained TGAN: given the temporal generator's frame latents z₁ "
          "(B, K₁, T), return them with every frame's latent equal to frame 0's, same shape. The notebook then draws "
          "clips through the image generator with them and scores them.", freeze_motion_solution)
def check_freeze_motion(answer) -> None:
    z1 = torch.randn(2, 3, 5, generator=torch.Generator().manual_seed(7))
    out = answer(z1.clone())
    if not isinstance(out, torch.Tensor) or out.shape != z1.shape:
        raise Wrong(f"expected frame latents of the same shape {tuple(z1.shape)}, got {_shape(out)}")
    want = freeze_motion_solution(z1)
    if torch.allclose(out, want):
        return
    if torch.allclose(out, z1[:, :1].expand_as(z1)):
        raise Wrong("that repeats latent *dimension* 0; the frames are the last axis, z₁[:, :, 0]")
    if torch.allclose(out, z1.mean(2, keepdim=True).expand_as(z1)):
        raise Wrong("that is the clip's mean latent, which no frame had; hold frame 0's")
    raise Wrong("every frame t must carry z₁[:, :, 0], the first frame's latent")
