"""GAN losses and regularisers: values by hand, the optimum where the paper puts it, Lipschitz constants."""

import math

import pytest
import torch
from torch import nn

from vgcourse.gan import (
    adversarial_losses,
    apply_spectral_norm,
    clip_singular_values,
    d_hinge,
    d_nonsaturating,
    d_wasserstein,
    g_hinge,
    g_nonsaturating,
    g_wasserstein,
    largest_singular_value,
    r1_penalty,
)
from vgcourse.train import EMA, TrainConfig, Trainer, count_flops


def test_losses_by_hand():
    real, fake = torch.tensor([2.0, -1.0]), torch.tensor([0.5, -3.0])
    sp = lambda x: math.log1p(math.exp(x))  # noqa: E731
    assert d_nonsaturating(real, fake).item() == pytest.approx((sp(-2) + sp(1)) / 2 + (sp(0.5) + sp(-3)) / 2)
    assert g_nonsaturating(fake).item() == pytest.approx((sp(-0.5) + sp(3)) / 2)
    assert d_hinge(real, fake).item() == pytest.approx((0 + 2) / 2 + (1.5 + 0) / 2)
    assert g_hinge(fake).item() == pytest.approx(1.25)
    assert d_wasserstein(real, fake).item() == pytest.approx(-1.25 - 0.5)
    assert g_wasserstein(fake).item() == pytest.approx(1.25)


def test_nonsaturating_discriminator_optimum_is_the_density_ratio():
    """Goodfellow et al. 2014, Prop. 1: D*(x) = p_data / (p_data + p_g); with logits, D* = log p_data − log p_g."""
    logit = torch.zeros(1, requires_grad=True)
    p_data, p_g = 0.8, 0.2  # one point x seen with these probabilities under the two distributions
    opt = torch.optim.SGD([logit], lr=1.0)
    for _ in range(500):
        loss = p_data * d_nonsaturating(logit, torch.full((1,), -1e9)) + p_g * d_nonsaturating(
            torch.full((1,), 1e9), logit)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert logit.item() == pytest.approx(math.log(p_data / p_g), abs=1e-3)


def test_registry_and_errors():
    assert adversarial_losses("hinge") == (d_hinge, g_hinge)
    with pytest.raises(ValueError, match="choose one of"):
        adversarial_losses("least squares")
    with pytest.raises(TypeError, match="floating-point"):
        d_hinge(torch.tensor([1, 2]), torch.tensor([0.0, 1.0]))


def test_r1_is_gamma_over_two_squared_gradient_norm():
    d = nn.Linear(3, 1, bias=False)
    with torch.no_grad():
        d.weight.copy_(torch.tensor([[1.0, 2.0, 2.0]]))  # ‖∇ₓD‖ = 3 everywhere
    x = torch.randn(5, 3)
    assert r1_penalty(d, x, gamma=10.0).item() == pytest.approx(10 / 2 * 9)
    r1_penalty(d, x, gamma=1.0).backward()  # differentiable in D's weights (create_graph)
    flops = count_flops(lambda: r1_penalty(d, x, gamma=1.0).backward())  # works inside the loop's counted step
    assert flops > 0
    assert d.weight.grad is not None and d.weight.grad.abs().sum() > 0


def test_spectral_norm_makes_every_layer_one_lipschitz():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(1, 8, 3, padding=1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(8 * 4 * 8 * 8, 1))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(10)
    apply_spectral_norm(net)
    net.train()
    for _ in range(30):  # power iterations run in training-mode forwards
        net(torch.randn(2, 1, 4, 8, 8))
    for layer in (net[0], net[3]):
        assert largest_singular_value(layer) == pytest.approx(1.0, rel=0.02)
    with pytest.raises(ValueError, match="no convolution or linear layer"):
        apply_spectral_norm(nn.ReLU())


def test_singular_value_clipping_bounds_every_layer_and_keeps_small_ones():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv3d(2, 4, 3), nn.BatchNorm3d(4), nn.ConvTranspose2d(4, 3, 4, 2), nn.Linear(5, 5))
    with torch.no_grad():
        net[0].weight.mul_(20)
        net[2].weight.mul_(20)
        net[3].weight.mul_(0.01)
        net[1].weight.fill_(5.0)
    small = net[3].weight.clone()
    assert clip_singular_values(net) == 3  # two convs and the batch norm; the small linear is left alone
    for layer in (net[0], net[2]):
        assert largest_singular_value(layer) == pytest.approx(1.0, rel=1e-4)
    torch.testing.assert_close(net[3].weight, small)
    bound = (net[1].running_var + net[1].eps).sqrt()
    assert (net[1].weight.abs() <= bound + 1e-6).all()


def test_ema_of_the_generator_is_the_running_average_of_g():
    torch.manual_seed(0)
    models = nn.ModuleDict({"G": nn.Linear(2, 2), "D": nn.Linear(2, 1)})
    opts = {"disc": torch.optim.Adam(models["D"].parameters(), 1e-2),
            "gen": torch.optim.Adam(models["G"].parameters(), 1e-2)}
    decay = 0.8  # not 0.5, at which a swapped decay (lerp by d instead of 1 − d) gives the same numbers
    expected = models["G"].weight.detach().clone()

    def step(trainer, batch):
        nonlocal expected
        g, d = trainer.forward_model["G"], trainer.forward_model["D"]
        z = torch.randn_like(batch)
        d_loss = d_hinge(d(batch), d(g(z).detach()))
        trainer.optimize(d_loss, "disc")
        g_loss = g_hinge(d(g(z)))
        trainer.optimize(g_loss, "gen")
        expected = decay * expected + (1 - decay) * g.weight.detach()  # the loop updates the EMA after the step
        return {"d": d_loss, "g": g_loss}

    tr = Trainer(models, opts, lambda s: torch.randn(8, 2) + 3, TrainConfig(steps=20, progress=False,
                 ema_decay=decay, measure_flops=False), step_fn=step, ema_of=models["G"])
    tr.fit()
    assert isinstance(tr.ema, EMA) and isinstance(tr.ema.model, nn.Linear)
    torch.testing.assert_close(tr.ema.model.weight, expected)  # the running average of G, step by step
    assert not torch.equal(tr.ema.model.weight, models["G"].weight)  # an average, not a copy
    assert not tr.ema.model.weight.requires_grad
