"""DVD-GAN: the ConvGRU's equations, the generator's structure, what each discriminator can see, the step."""

import pytest
import torch
from gan_twins import assert_r1_moves_the_discriminators_only_on_its_steps

from vgcourse.data import MovingDigits
from vgcourse.gan.convgru import ConvGRU, ConvGRUCell
from vgcourse.gan.dvdgan import (
    DVDGANConfig,
    DVDGANGenerator,
    DVDGANRecipe,
    SpatialDiscriminator,
    TemporalDiscriminator,
    build_dvdgan,
    dvdgan_paper,
    dvdgan_step,
    sample_clip_frames,
)
from vgcourse.train import TrainConfig, Trainer

TINY = DVDGANConfig(image_size=16, frames=8, gen_channels=(16, 8, 8), gen_norm="group", disc_width=8, k_frames=3,
                    temporal_downsample=1)


def test_convgru_cell_by_hand():
    """Ballas et al. 2016, eq. (3), with 1×1 kernels so that the convolutions are per-pixel matrix products."""
    torch.manual_seed(0)
    cell = ConvGRUCell(2, 3, kernel_size=1)
    x, h = torch.randn(4, 2, 5, 5), torch.randn(4, 3, 5, 5)
    w_g, b_g = cell.gates.weight[:, :, 0, 0], cell.gates.bias
    w_c, b_c = cell.candidate.weight[:, :, 0, 0], cell.candidate.bias
    xs, hs = x.permute(0, 2, 3, 1), h.permute(0, 2, 3, 1)  # channels last: (B, H, W, C)
    gates = torch.sigmoid(torch.cat([xs, hs], -1) @ w_g.T + b_g)
    r, u = gates[..., :3], gates[..., 3:]
    candidate = torch.tanh(torch.cat([xs, r * hs], -1) @ w_c.T + b_c)
    want = ((1 - u) * hs + u * candidate).permute(0, 3, 1, 2)
    torch.testing.assert_close(cell(x, h), want)
    torch.testing.assert_close(cell(x), cell(x, torch.zeros(4, 3, 5, 5)))  # no state: zeros


def test_convgru_unrolls_causally():
    torch.manual_seed(0)
    gru = ConvGRU(2, 4)
    x = torch.randn(2, 2, 6, 5, 5)
    out = gru(x)
    assert out.shape == (2, 4, 6, 5, 5)
    later = x.clone()
    later[:, :, 3] += 1
    diff = (gru(later) - out).abs().amax((0, 1, 3, 4))  # (T,)
    assert (diff[:3] == 0).all() and (diff[3:] > 0).all()


def test_generator_shapes_and_temporal_structure():
    torch.manual_seed(0)
    g = DVDGANGenerator(TINY).eval()
    z = g.sample_latents(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        video = g(z)
        longer = g(z, frames=12)
    assert video.shape == (2, 1, 8, 16, 16) and video.abs().max() <= 1
    torch.testing.assert_close(longer[:, :, :8], video)  # the ConvGRUs run forward in time: a prefix is unchanged
    assert (video[:, :, 1:] - video[:, :, :-1]).abs().amax() > 0  # frames differ: the ConvGRUs make it move
    assert len(g.grus) == len(TINY.gen_channels) - 1  # one ConvGRU per resolution below full size


def test_config_checks():
    with pytest.raises(ValueError, match="one entry per resolution"):
        DVDGANConfig(image_size=32, gen_channels=(64, 32, 16))
    with pytest.raises(ValueError, match="k_frames"):
        DVDGANConfig(k_frames=17)
    with pytest.raises(ValueError, match="multiple of 4"):
        DVDGANConfig(frames=10)
    with pytest.raises(ValueError, match="8×8 after φ"):
        DVDGANConfig(image_size=8, gen_channels=(8, 8), temporal_downsample=2)
    paper = dvdgan_paper()
    assert (paper.latent_dim, paper.k_frames, paper.temporal_downsample, paper.frames) == (120, 8, 2, 48)


def test_spatial_discriminator_sees_frames_one_at_a_time_and_sums():
    torch.manual_seed(0)
    d = SpatialDiscriminator(1, 8).eval()
    frames = torch.randn(2, 1, 3, 16, 16)
    each = torch.stack([d(frames[:, :, i:i + 1]) for i in range(3)], 1)  # (B, k): one frame at a time
    torch.testing.assert_close(d(frames), each.sum(1), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(d(frames.flip(2)), d(frames), rtol=1e-5, atol=1e-5)  # order does not matter: no time


def test_temporal_discriminator_sees_only_the_downsampled_clip():
    torch.manual_seed(0)
    d = TemporalDiscriminator(1, 8, downsample=2).eval()
    video = torch.randn(2, 1, 8, 32, 32)
    detail = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(16, 16)  # a checkerboard: zero on every 2×2 block
    with torch.no_grad():
        torch.testing.assert_close(d(video + detail), d(video), rtol=1e-5, atol=1e-5)  # φ erases it
        full = TemporalDiscriminator(1, 8, downsample=1).eval()
        assert (full(video + detail) - full(video)).abs().max() > 1e-4  # the full-resolution D sees it
        assert not torch.allclose(d(video.flip(2)), d(video))  # and D_T sees the order of frames


def test_full_resolution_discriminator_costs_more():
    from torch.utils.flop_counter import FlopCounterMode

    cfg = DVDGANConfig()
    dual, single = build_dvdgan(cfg), build_dvdgan(cfg, dual=False)
    assert set(dual) == {"G", "D_S", "D_T"} and set(single) == {"G", "D_T"}
    video = torch.zeros(1, 1, 16, 32, 32)

    def flops(fn):
        with FlopCounterMode(display=False) as counter:
            fn()
        return counter.get_total_flops()

    pair = flops(lambda: dual["D_T"](video)) + flops(lambda: dual["D_S"](sample_clip_frames(video, 8)))
    assert flops(lambda: single["D_T"](video)) > 1.5 * pair


def test_sample_clip_frames_are_distinct_frames_of_their_own_clip():
    b, t = 4, 8
    video = (torch.arange(b)[:, None] * 100 + torch.arange(t)[None]).float().view(b, 1, t, 1, 1).expand(b, 1, t, 2, 2)
    picked = sample_clip_frames(video, 5)[:, 0, :, 0, 0]  # (B, k)
    assert ((picked // 100) == torch.arange(b)[:, None]).all()
    assert all(len(set(row.tolist())) == 5 for row in picked)


@pytest.mark.parametrize("dual", [True, False])
def test_step_trains_both_players(dual):
    torch.manual_seed(0)
    m = build_dvdgan(TINY, dual=dual)
    d_params = [p for k, v in m.items() if k != "G" for p in v.parameters()]
    opt = {"disc": torch.optim.Adam(d_params, 1e-3, betas=(0.0, 0.99)),
           "gen": torch.optim.Adam(m["G"].parameters(), 1e-3, betas=(0.0, 0.99))}
    data = MovingDigits(size=16, frames=8, digits=1)
    recipe = DVDGANRecipe(loss="nonsaturating", k_frames=3, r1_gamma=1.0, r1_every=2)
    trainer = Trainer(m, opt, data.stream(4), TrainConfig(steps=3, grad_clip=None, progress=False, log_every=1),
                      step_fn=lambda tr, batch: dvdgan_step(tr, batch, recipe))
    before = {k: [p.detach().clone() for p in v.parameters()] for k, v in m.items()}
    trainer.fit()
    for k, v in m.items():
        assert any(not torch.equal(p, q) for p, q in zip(v.parameters(), before[k])), f"{k} did not change"
    keys = set(trainer.history[-1])
    assert ({"d_spatial", "g_spatial"} <= keys) == dual and {"d_temporal", "g_temporal", "r1"} <= keys
    assert [h["r1"] > 0 for h in trainer.history] == [False, False, True]  # not on the counted step; every 2


def test_update_bias_slows_the_state():
    """With the same input at every step, a GRU whose update gates start shut keeps changing for longer."""
    torch.manual_seed(0)
    x = torch.randn(1, 4, 1, 6, 6).expand(-1, -1, 16, -1, -1)  # the same input at every frame
    fast, slow = ConvGRU(4, 8), ConvGRU(4, 8, update_bias=-2.0)
    slow.load_state_dict(fast.state_dict())
    with torch.no_grad():
        slow.cell.gates.bias[8:] -= 2.0
        late = lambda h: (h[:, :, -1] - h[:, :, -2]).abs().mean()  # noqa: E731 - the change at the last step
        assert late(slow(x)) > 5 * late(fast(x))
    assert torch.allclose(ConvGRU(4, 8, update_bias=-2.0).cell.gates.bias[8:].mean(), torch.tensor(-2.0), atol=0.3)


def test_step_compiled_as_the_loop_compiles_it_follows_the_eager_step(monkeypatch):
    """What chapter 04 does on the GPU, where the smoke build never compiles: the loop compiles each network of the
    ModuleDict after its FLOP-counted first step; G must run through its compiled forward (``G.sample`` would reach
    the uncompiled module), and R1's double backward, which a compiled graph refuses, runs on the uncompiled
    networks. The weights follow the eager run's, and each network compiles once per use (D: with and without its
    parameters' gradients)."""
    import functools

    from torch._dynamo.utils import counters

    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))  # inductor: slow here
    data = MovingDigits(size=16, frames=8, digits=1)
    recipe = DVDGANRecipe(loss="nonsaturating", k_frames=3, r1_gamma=1.0, r1_every=2)
    runs = {}
    for compiled in (False, True):
        torch.compiler.reset()
        counters.clear()
        torch.manual_seed(0)
        m = build_dvdgan(TINY)
        opt = {"disc": torch.optim.Adam([p for k in ("D_S", "D_T") for p in m[k].parameters()], 4e-4,
                                        betas=(0.0, 0.999)),
               "gen": torch.optim.Adam(m["G"].parameters(), 1e-4, betas=(0.0, 0.999))}
        trainer = Trainer(m, opt, data.stream(4), TrainConfig(steps=4, grad_clip=None, progress=False, log_every=1),
                          step_fn=lambda tr, batch: dvdgan_step(tr, batch, recipe))
        trainer._compile_on = compiled  # the loop compiles on CUDA only
        torch.manual_seed(1)
        trainer.fit()
        runs[compiled] = (m.state_dict(), trainer.history, counters["stats"]["unique_graphs"])
    (eager, eager_history, _), (comp, comp_history, graphs) = runs[False], runs[True]
    r1_ran = [[h["r1"] > 0 for h in history] for history in (eager_history, comp_history)]
    assert r1_ran[0] == r1_ran[1] == [False, False, True, False]  # on step 2 (never on the FLOP-counted step 0)
    for key in eager:
        torch.testing.assert_close(comp[key], eager[key], rtol=1e-4, atol=1e-5)
    assert graphs == 5  # G; D_S and D_T each with and without their parameters' gradients


def _twin_dvdgan(r1_gamma: float):
    tiny = DVDGANConfig(image_size=16, frames=8, gen_channels=(16, 8, 8), gen_norm="group", disc_width=8, k_frames=3,
                        temporal_downsample=1)
    torch.manual_seed(0)
    m = build_dvdgan(tiny)
    disc = [p for k in ("D_S", "D_T") for p in m[k].parameters()]
    opt = {"disc": torch.optim.Adam(disc, 1e-3, betas=(0.0, 0.99)),
           "gen": torch.optim.Adam(m["G"].parameters(), 1e-3, betas=(0.0, 0.99))}
    recipe = DVDGANRecipe(loss="nonsaturating", k_frames=3, r1_gamma=r1_gamma, r1_every=2)
    trainer = Trainer(m, opt, MovingDigits(size=16, frames=8, digits=1).stream(4),
                      TrainConfig(steps=3, grad_clip=None, progress=False, log_every=1),
                      step_fn=lambda t, b: dvdgan_step(t, b, recipe))
    return m, trainer


def test_r1_moves_the_discriminators_only_on_its_steps():
    """Twins with and without R1: identical discriminators until the first step R1 is due, different after it."""
    assert_r1_moves_the_discriminators_only_on_its_steps(_twin_dvdgan, ("D_S", "D_T"))
