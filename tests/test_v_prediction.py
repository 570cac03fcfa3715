"""The v-parameterisation (Salimans & Ho 2022, §4): its identities, its loss and its use by every sampler."""

import pytest
import torch
from torch import nn

from vgcourse.diffusion import (
    VPrediction,
    cosine_schedule,
    ddim_from,
    ddim_sample,
    ddpm_sample,
    diffusion_loss,
    linear_schedule,
    v_target,
)


class OracleV(nn.Module):
    """The exact v-network for data that is one fixed clip x*: x_0 = x*, so ε = (x_t − √ᾱ x*)/√(1−ᾱ)."""

    def __init__(self, schedule, point: torch.Tensor):
        super().__init__()
        self.abar, self.point = schedule.alphas_cumprod.double(), point.double()

    def forward(self, x_t, t, cond=None):
        a = self.abar[t].reshape(-1, 1, 1, 1, 1)
        eps = (x_t.double() - a.sqrt() * self.point) / (1 - a).sqrt()
        return (a.sqrt() * eps - (1 - a).sqrt() * self.point).float()  # v = √ᾱ ε − √(1−ᾱ) x_0


def test_v_links_eps_and_x0_at_every_noise_level():
    s = cosine_schedule(1000)
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.rand(2, 4, 3, 2, 5, 5, generator=g).unbind(0)
    x0 = 2 * x0 - 1
    for step in (0, 500, 998, 999):  # 999: ᾱ ≈ 2e-9, where an ε-model's x_0 estimate is amplified 2·10⁴×
        t = torch.full((4,), step)
        x_t = s.q_sample(x0, t, noise)
        v = v_target(x0, noise, t, s)
        a = s.alphas_cumprod[step].double()
        torch.testing.assert_close(v.double(), a.sqrt() * noise.double() - (1 - a).sqrt() * x0.double(),
                                   atol=1e-5, rtol=1e-4)
        x0_from_v = a.sqrt() * x_t.double() - (1 - a).sqrt() * v.double()  # x_0 = √ᾱ x_t − √(1−ᾱ) v
        torch.testing.assert_close(x0_from_v.float(), x0, atol=1e-5, rtol=1e-5)


def test_wrapper_returns_eps_of_the_oracle_and_keeps_x0_accurate_at_high_noise():
    s = cosine_schedule(1000)
    g = torch.Generator().manual_seed(1)
    point = torch.rand(1, 3, 2, 4, 4, generator=g) * 2 - 1
    model = VPrediction(OracleV(s, point[0]), s)
    noise = torch.randn(3, 3, 2, 4, 4, generator=g)
    t = torch.tensor([0, 600, 999])
    x_t = s.q_sample(point.expand(3, -1, -1, -1, -1), t, noise)
    eps = model(x_t, t)
    torch.testing.assert_close(eps, noise, atol=2e-3, rtol=1e-3)  # the oracle reads ᾱ in float32
    x0 = s.predict_x0(x_t, t, eps)
    assert (x0 - point).abs().max() < 0.05  # float32 through ε and back at ᾱ ≈ 2e-9


def test_loss_is_the_v_loss_and_zero_for_the_oracle():
    s = linear_schedule(100)
    g = torch.Generator().manual_seed(2)
    point = torch.rand(1, 1, 2, 4, 4, generator=g) * 2 - 1
    x0 = point.expand(6, -1, -1, -1, -1).contiguous()
    assert diffusion_loss(VPrediction(OracleV(s, point[0]), s), x0, s).item() < 1e-8

    net = _Net(nn.Conv3d(1, 1, 1))  # any network: the loss must be ‖net(x_t) − v‖² with the same draws of t and ε
    model = VPrediction(net, s)
    loss = diffusion_loss(model, x0, s, generator=torch.Generator().manual_seed(3))
    g2 = torch.Generator().manual_seed(3)
    t = torch.randint(0, s.T, (6,), generator=g2)
    noise = torch.randn(x0.shape, generator=g2)
    x_t = s.q_sample(x0, t, noise)
    expected = ((net(x_t, t) - v_target(x0, noise, t, s)) ** 2).mean()
    torch.testing.assert_close(loss, expected)
    eps_loss = ((model(x_t, t) - noise) ** 2).mean()  # the ε-loss of the same model is a different number
    assert not torch.isclose(loss, eps_loss)


class _Net(nn.Module):
    def __init__(self, conv):
        super().__init__()
        self.conv = conv

    def forward(self, x, t, cond=None):
        return self.conv(x)


@pytest.mark.parametrize("sampler", ["ddim", "ddpm", "ddim_from"])
def test_samplers_reach_the_data_through_a_v_model(sampler):
    s = cosine_schedule(50)
    g = torch.Generator().manual_seed(4)
    point = torch.rand(1, 3, 2, 4, 4, generator=g) * 1.6 - 0.8
    model = VPrediction(OracleV(s, point[0]), s)
    shape = (2, 3, 2, 4, 4)
    if sampler == "ddim":
        out = ddim_sample(model, shape, s, 10, generator=g, progress=False)
    elif sampler == "ddpm":
        out = ddpm_sample(model, shape, s, generator=g, progress=False)
    else:
        out = ddim_from(model, torch.randn(shape, generator=g), s, [49, 30, 10, 0])
    torch.testing.assert_close(out, point.expand(shape), atol=1e-3, rtol=1e-3)


def test_a_v_model_refuses_another_schedule():
    s, other = cosine_schedule(50), linear_schedule(50)
    model = VPrediction(OracleV(s, torch.zeros(1, 2, 4, 4)), s)
    with pytest.raises(ValueError, match="schedule"):
        ddim_sample(model, (1, 1, 2, 4, 4), other, 5, progress=False)
    with pytest.raises(ValueError, match="schedule"):
        diffusion_loss(model, torch.zeros(2, 1, 2, 4, 4), other)
    ddim_sample(model, (1, 1, 2, 4, 4), cosine_schedule(50), 2, progress=False)  # an equal schedule, rebuilt: fine
    with pytest.raises(TypeError, match="NoiseSchedule"):
        VPrediction(OracleV(s, torch.zeros(1, 2, 4, 4)), "cosine")


def test_wrapper_passes_conditions_through_and_checks_the_network_output():
    s = linear_schedule(10)
    seen = {}

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(()))

        def forward(self, x, t, cond=None):
            seen["cond"] = cond
            return self.w * x

    model = VPrediction(Net(), s)
    model(torch.zeros(1, 1, 1, 2, 2), torch.tensor([3]), "a red square")
    assert seen["cond"] == "a red square"
    with pytest.raises(ValueError, match="like x_t"):
        VPrediction(_Net(nn.Conv3d(1, 2, 1)), s)(torch.zeros(1, 1, 1, 2, 2), torch.tensor([0]))


class Compiled(nn.Module):
    """Stands in for torch.compile's OptimizedModule: the wrapped module under ``_orig_mod``, called through
    forward (which counts its calls)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self._orig_mod, self.calls = module, 0

    def forward(self, *args, **kwargs):
        self.calls += 1
        return self._orig_mod(*args, **kwargs)


def test_a_compiled_v_model_is_trained_on_v_through_its_forward():
    s = cosine_schedule(100)
    torch.manual_seed(0)
    conv = nn.Conv3d(1, 1, 1)
    model = VPrediction(lambda x, t: conv(x), s)
    x0 = torch.rand(4, 1, 2, 4, 4) * 2 - 1
    wrapped = Compiled(model)
    loss = diffusion_loss(wrapped, x0, s, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(loss, diffusion_loss(model, x0, s, generator=torch.Generator().manual_seed(5)))
    assert wrapped.calls == 1  # the compiled forward ran, not the bare predict_v
    eps_loss = diffusion_loss(lambda x, t: model(x, t), x0, s, generator=torch.Generator().manual_seed(5))
    assert not torch.isclose(loss, eps_loss)  # what a missed VPrediction would have trained on
    with pytest.raises(ValueError, match="schedule"):
        diffusion_loss(wrapped, x0, linear_schedule(100))
    with pytest.raises(ValueError, match="output"):
        model(x0, torch.zeros(4, dtype=torch.long), output="x0")
