"""MoCoGAN: the paper's sizes, content held and motion causal, the GRU as the paper's unrolled cell, the step."""

import pytest
import torch
from gan_twins import assert_r1_moves_the_discriminators_only_on_its_steps
from torch import nn

from vgcourse.data import MovingDigits
from vgcourse.gan.mocogan import (
    ImageDiscriminator,
    MoCoGANConfig,
    MoCoGANGenerator,
    MoCoGANRecipe,
    VideoDiscriminator,
    build_mocogan,
    mocogan_paper,
    mocogan_step,
    r1_due,
    sample_frames,
)
from vgcourse.nn import count_parameters
from vgcourse.train import TrainConfig, Trainer

TINY = MoCoGANConfig(image_size=16, frames=16, content_dim=6, motion_dim=4, noise_dim=3, gen_width=8,
                     gen_norm="group", disc_width=8, disc_norm="none")


def convt(cin, cout):  # a bias-free 4×4 transposed convolution
    return cin * cout * 16


def test_paper_sizes_by_hand():
    """The authors' code at 64×64×3: G_I = 4×4 transposed convolutions 60 -> 512 -> 256 -> 128 -> 64 -> 3 (no bias)
    with batch norm (γ, β) after all but the last; R_M = GRUCell(10, 10) = 3·(10·10 + 10·10 + 10 + 10)."""
    cfg = mocogan_paper()
    assert (cfg.content_dim, cfg.motion_dim, cfg.gen_width, cfg.disc_width) == (50, 10, 64, 64)
    m = build_mocogan(cfg)
    g_image = convt(60, 512) + convt(512, 256) + convt(256, 128) + convt(128, 64) + convt(64, 3)
    g_norm = 2 * (512 + 256 + 128 + 64)
    gru = 3 * (10 * 10 + 10 * 10 + 10 + 10)
    assert count_parameters(m["G"]) == g_image + g_norm + gru == 3_249_684
    # D_I: conv 3->64 (bias), 64->128, 128->256 (no bias, BN), 256->1 (bias), all 4×4
    d_image = (3 * 64 * 16 + 64) + 64 * 128 * 16 + 2 * 128 + 128 * 256 * 16 + 2 * 256 + (256 * 16 + 1)
    assert count_parameters(m["D_I"]) == d_image
    d_video = (3 * 64 * 64 + 64) + 64 * 128 * 64 + 2 * 128 + 128 * 256 * 64 + 2 * 256 + (256 * 64 + 1)
    assert count_parameters(m["D_V"]) == d_video


def test_shapes_and_range():
    for cfg in (mocogan_paper(), MoCoGANConfig()):
        m = build_mocogan(cfg).eval()
        with torch.no_grad():
            video = m["G"].sample(2)
        s = cfg.image_size
        assert video.shape == (2, cfg.channels, 16, s, s) and video.abs().max() <= 1
        assert m["D_I"](video[:, :, 0]).shape == (2, (s // 16) ** 2)
        assert m["D_V"](video).shape == (2, 4 * (s // 16) ** 2)


def test_config_refuses_what_the_networks_cannot_take():
    with pytest.raises(ValueError, match="power of two"):
        MoCoGANConfig(image_size=24)
    with pytest.raises(ValueError, match="13 frames"):
        MoCoGANConfig(frames=8)
    with pytest.raises(ValueError, match="gen_norm"):
        MoCoGANConfig(gen_norm="layer")


def test_motion_rnn_is_the_papers_unrolled_gru_cell():
    torch.manual_seed(0)
    g = MoCoGANGenerator(TINY)
    cell = nn.GRUCell(TINY.noise_dim, TINY.motion_dim)
    gru = g.motion.gru
    with torch.no_grad():
        cell.weight_ih.copy_(gru.weight_ih_l0), cell.weight_hh.copy_(gru.weight_hh_l0)
        cell.bias_ih.copy_(gru.bias_ih_l0), cell.bias_hh.copy_(gru.bias_hh_l0)
    lat = g.sample_latents(3)
    h, steps = lat.h0, []
    for t in range(TINY.frames):
        h = cell(lat.noise[:, t], h)  # h_t = GRU(ε_t, h_{t-1})
        steps.append(h)
    torch.testing.assert_close(g.motion(lat.h0, lat.noise), torch.stack(steps, 1))


def test_content_is_held_and_motion_is_causal():
    torch.manual_seed(0)
    g = MoCoGANGenerator(TINY).eval()
    lat = g.sample_latents(2, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        base = g(lat)
        codes = g.codes(lat)  # (B, T, d_C + d_M)
        assert torch.equal(codes[:, :, :TINY.content_dim], lat.content[:, None].expand(-1, TINY.frames, -1))
        other = lat.with_content(torch.randn(1, TINY.content_dim))  # the same motion, another content
        changed = (g(other) - base).abs().flatten(3).amax(-1)  # (B, C, T)
        assert (changed > 1e-4).all()  # every frame changes with the content
        noise = lat.noise.clone()
        noise[:, 5] += 1.0  # change ε_6 only
        moved = g(type(lat)(lat.content, lat.h0, noise))
    diff = (moved - base).abs().flatten(3).amax(-1)[:, 0]  # (B, T)
    assert (diff[:, :5] == 0).all() and (diff[:, 5:] > 1e-5).all()  # frames before step 6 untouched


def test_longer_clips_extend_the_same_path():
    torch.manual_seed(0)
    g = MoCoGANGenerator(TINY).eval()
    long = g.sample_latents(2, frames=32, generator=torch.Generator().manual_seed(2))
    assert long.noise.shape == (2, 32, TINY.noise_dim)
    with torch.no_grad():
        video = g(long)
        short = g(type(long)(long.content, long.h0, long.noise[:, :16]))
    assert video.shape[2] == 32
    torch.testing.assert_close(video[:, :, :16], short, rtol=1e-5, atol=1e-5)


def test_shared_parts_of_the_latent():
    g = MoCoGANGenerator(TINY)
    lat = g.sample_latents(4)
    one = g.sample_latents(1)
    same_motion = lat.with_motion(one)
    assert torch.equal(same_motion.content, lat.content)
    assert (same_motion.noise == one.noise).all() and (same_motion.h0 == one.h0).all()
    same_content = one.with_content(lat.content[:1]).content
    assert torch.equal(same_content, lat.content[:1])
    assert len(lat[1:3]) == 2


def test_sample_frames_takes_frames_of_their_own_clip():
    b, t = 3, 16
    video = (torch.arange(b)[:, None] * 100 + torch.arange(t)[None]).float().view(b, 1, t, 1, 1).expand(b, 1, t, 4, 4)
    frames = sample_frames(video, k=5)  # (B·k, C, H, W)
    assert frames.shape == (15, 1, 4, 4)
    values = frames[:, 0, 0, 0].view(b, 5)
    assert ((values // 100) == torch.arange(b)[:, None]).all()  # frame of clip i
    assert ((values % 100) < t).all()


def _trainer(cfg, recipe, data, steps=1, **kw):
    m = build_mocogan(cfg)
    opt = {"disc": torch.optim.Adam(list(m["D_I"].parameters()) + list(m["D_V"].parameters()), 2e-3, betas=(0.0, 0.99)),
           "gen": torch.optim.Adam(m["G"].parameters(), 2e-3, betas=(0.0, 0.99))}
    config = TrainConfig(steps=steps, grad_clip=None, progress=False, **kw)
    return m, Trainer(m, opt, data, config, step_fn=lambda tr, batch: mocogan_step(tr, batch, recipe), ema_of=m["G"])


def test_step_updates_both_players_and_r1_is_lazy():
    torch.manual_seed(0)
    data = MovingDigits(size=16, frames=16, digits=1)
    m, trainer = _trainer(TINY, MoCoGANRecipe(r1_gamma=1.0, r1_every=2), data.stream(4), steps=4, log_every=1,
                          ema_decay=0.9)
    before = {k: [p.detach().clone() for p in v.parameters()] for k, v in m.items()}
    trainer.fit()
    for k, v in m.items():
        assert any(not torch.equal(p, q) for p, q in zip(v.parameters(), before[k])), f"{k} did not change"
    assert {"d_image", "d_video", "g_image", "g_video", "r1"} <= set(trainer.history[0])
    r1 = [h["r1"] for h in trainer.history]
    assert r1[0] == 0  # step 0 is the FLOP-counted step: no R1 there
    assert r1[2] > 0 and r1[1] == r1[3] == 0  # every 2 steps
    assert all(p.requires_grad for p in m["D_V"].parameters())  # unfrozen after the generator's update


def test_r1_due_skips_only_the_counted_step():
    class T:  # the two things r1_due reads from a Trainer
        def __init__(self, step, counted):
            self.step = step
            self.summary = type("S", (), {"flops_per_step": 1 if counted else None})()
            self.config = TrainConfig(steps=1)
    assert not r1_due(T(0, counted=False), 1.0, 1) and r1_due(T(0, counted=True), 1.0, 1)
    assert not r1_due(T(3, counted=True), 1.0, 2) and r1_due(T(4, counted=True), 1.0, 2)
    assert not r1_due(T(4, counted=True), 0.0, 2)


def test_generator_moves_towards_the_data():
    """On an all-black 'dataset' the generator's frames, grey at the start, darken within a few dozen steps: the
    losses push G the right way."""
    torch.manual_seed(0)
    black = torch.full((8, 1, 16, 16, 16), -1.0)
    m, trainer = _trainer(TINY, MoCoGANRecipe(), lambda step: black, steps=40, measure_flops=False)
    with torch.no_grad():
        start = m["G"].sample(16).mean().item()
    trainer.fit()
    with torch.no_grad():
        end = m["G"].sample(16).mean().item()
    assert end < start - 0.3, (start, end)


def test_discriminators_take_any_batch_of_their_input():
    d_i, d_v = ImageDiscriminator(32, 1, 8, "none"), VideoDiscriminator(32, 1, 8, "none")
    assert d_i(torch.zeros(5, 1, 32, 32)).shape == (5, 4)
    assert d_v(torch.zeros(2, 1, 20, 32, 32)).shape == (2, 8 * 4)  # 20 frames: 8 temporal positions


def _twin_mocogan(r1_gamma: float):
    tiny = MoCoGANConfig(image_size=16, frames=16, content_dim=6, motion_dim=4, noise_dim=3, gen_width=8,
                         gen_norm="group", disc_width=8, disc_norm="none")
    torch.manual_seed(0)
    m = build_mocogan(tiny)
    disc = list(m["D_I"].parameters()) + list(m["D_V"].parameters())
    opt = {"disc": torch.optim.Adam(disc, 2e-3, betas=(0.0, 0.99)),
           "gen": torch.optim.Adam(m["G"].parameters(), 2e-3, betas=(0.0, 0.99))}
    recipe = MoCoGANRecipe(r1_gamma=r1_gamma, r1_every=2)
    trainer = Trainer(m, opt, MovingDigits(size=16, frames=16, digits=1).stream(4),
                      TrainConfig(steps=3, grad_clip=None, progress=False, log_every=1),
                      step_fn=lambda t, b: mocogan_step(t, b, recipe))
    return m, trainer


def test_r1_moves_the_discriminators_only_on_its_steps():
    """Twins with and without R1: identical discriminators until the first step R1 is due, different after it."""
    assert_r1_moves_the_discriminators_only_on_its_steps(_twin_mocogan, ("D_I", "D_V"))
