"""The GAN/VAE exercises: every solution passes its check, untouched stubs are "not attempted", wrong answers fail
with the hint that names their mistake."""

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange, repeat

from vgcourse.autoencoders import FrameVAE, frame_vae_tiny, gaussian_nll, vae_loss
from vgcourse.exercises import FAIL, NOT_ATTEMPTED, PASS, all_exercises, check, solution
from vgcourse.gan import clip_singular_values

NAMES = ["reparameterize", "kl_standard_normal", "discriminator_loss", "beta_vae_loss", "clip_singular_values",
         "frame_inputs", "freeze_motion"]


def test_registered():
    assert set(NAMES) <= set(all_exercises())


@pytest.mark.parametrize("name", NAMES)
def test_solution_passes_and_stub_is_not_attempted(name):
    assert check(name, solution(name)).status == PASS

    def stub(*args, **kwargs):
        raise NotImplementedError

    assert check(name, stub).status == NOT_ATTEMPTED


@pytest.mark.parametrize("wrong, hint", [
    (lambda m, lv, e: m + torch.exp(lv) * e, "variance"),
    (lambda m, lv, e: m + lv * e, "log σ²"),
    (lambda m, lv, e: m.detach() + torch.exp(0.5 * lv.detach()) * e, "no gradient"),
    (lambda m, lv, e: m + 0 * lv, "μ alone"),
])
def test_reparameterize_wrong_answers(wrong, hint):
    result = check("reparameterize", wrong)
    assert result.status == FAIL and hint in result.message


@pytest.mark.parametrize("wrong, hint", [
    (lambda m, lv: (m.pow(2) + lv.exp() - 1 - lv).sum(1), "½"),
    (lambda m, lv: -0.5 * (m.pow(2) + lv.exp() - 1 - lv).sum(1), "sign"),
    (lambda m, lv: 0.5 * (m.pow(2) + lv.exp() - 1 - lv).mean(1), "sum"),
    (lambda m, lv: 0.5 * (m.pow(2) + lv.exp() - 1 - lv).sum(), "one KL per frame"),
])
def test_kl_wrong_answers(wrong, hint):
    result = check("kl_standard_normal", wrong)
    assert result.status == FAIL and hint in result.message


@pytest.mark.parametrize("wrong, hint", [
    (lambda r, f: F.softplus(r).mean() + F.softplus(-f).mean(), "swapped"),
    (lambda r, f: f.mean() - r.mean(), "Wasserstein"),
    (lambda r, f: F.softplus(-r).sum() + F.softplus(f).sum(), "sum"),
    (lambda r, f: torch.cat([F.softplus(-r), F.softplus(f)]).mean(), "pooled"),
    (lambda r, f: -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean(), "logits"),
])
def test_discriminator_loss_wrong_answers(wrong, hint):
    result = check("discriminator_loss", wrong)
    assert result.status == FAIL and hint in result.message


def _beta_wrong_weight(model, x, beta, eps):
    q = model.encode(x)
    return (beta * gaussian_nll(x, model.decode(q.mean + q.std * eps), model.scale()) + q.kl()).mean()


def _beta_decodes_mean(model, x, beta, eps):
    q = model.encode(x)
    return (gaussian_nll(x, model.decode(q.mean), model.scale()) + beta * q.kl()).mean()


def _beta_ignored(model, x, beta, eps):
    q = model.encode(x)
    return (gaussian_nll(x, model.decode(q.mean + q.std * eps), model.scale()) + q.kl()).mean()


@pytest.mark.parametrize("wrong, hint", [(_beta_wrong_weight, "not the reconstruction"),
                                         (_beta_decodes_mean, "decoded μ"), (_beta_ignored, "multiply the KL")])
def test_beta_vae_loss_wrong_answers(wrong, hint):
    result = check("beta_vae_loss", wrong)
    assert result.status == FAIL and hint in result.message


def test_beta_vae_loss_solution_is_the_package_loss():
    """With the package's own draw (a generator replayed as ε), the solution equals vae_loss."""
    torch.manual_seed(0)
    model = FrameVAE(frame_vae_tiny(beta=3.0))
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    eps = torch.randn(4, model.cfg.latent_dim, generator=torch.Generator().manual_seed(9))
    ours = solution("beta_vae_loss")(model, x, 3.0, eps)
    theirs = vae_loss(model, x, generator=torch.Generator().manual_seed(9))["loss"]
    torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("wrong, hint", [
    (lambda w, limit: torch.linalg.svd(w, full_matrices=False)[0] @ torch.linalg.svd(w, full_matrices=False)[2],
     "orthogonalised"),
    (lambda w, limit: w / torch.linalg.matrix_norm(w, ord=2), "spectral normalisation"),
    (lambda w, limit: w.clamp(-limit, limit), "weight clipping"),
    (lambda w, limit: solution("clip_singular_values")(w, 1.0), "clip at `limit`, not at 1"),  # ignores its limit
])
def test_svc_wrong_answers(wrong, hint):
    result = check("clip_singular_values", wrong)
    assert result.status == FAIL and hint in result.message


def test_svc_solution_is_the_package_clipping():
    layer = torch.nn.Linear(7, 5)
    with torch.no_grad():
        layer.weight.mul_(10)
    want = solution("clip_singular_values")(layer.weight.detach().clone(), 1.0)
    clip_singular_values(layer)
    torch.testing.assert_close(layer.weight.detach(), want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("wrong, hint", [
    (lambda z0, z1: (repeat(z0, "b k -> (t b) k", t=z1.shape[2]), rearrange(z1, "b k t -> (b t) k")), "(t b)"),
    (lambda z0, z1: (repeat(z0, "b k -> (b t) k", t=z1.shape[2]), z1.reshape(-1, z1.shape[1])), "mixes"),
    (lambda z0, z1: (repeat(z0, "b k -> (b t) k", t=z1.shape[2]), rearrange(z1, "b k t -> (t b) k")), "(t b) order"),
    (lambda z0, z1: (z0, z1), "shape"),
])
def test_frame_inputs_wrong_answers(wrong, hint):
    result = check("frame_inputs", wrong)
    assert result.status == FAIL and hint in result.message


@pytest.mark.parametrize("wrong, hint", [
    (lambda z1: z1[:, :1].expand_as(z1), "dimension"),
    (lambda z1: z1.mean(2, keepdim=True).expand_as(z1), "mean"),
    (lambda z1: z1[:, :, :1], "same shape"),
])
def test_freeze_motion_wrong_answers(wrong, hint):
    result = check("freeze_motion", wrong)
    assert result.status == FAIL and hint in result.message
