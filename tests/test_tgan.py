"""TGAN: the paper's layer shapes, one latent per frame from 1D transposed convolutions, the critic, SVC and lazy R1
in the step."""

import pytest
import torch
from torch import nn

from vgcourse.gan import (
    ImageGenerator,
    TemporalGenerator,
    TGANConfig,
    TGANGenerator,
    VideoDiscriminator,
    gan_step,
    largest_singular_value,
    sample_z,
    tgan,
    tgan_paper,
    tgan_small,
    tgan_tiny,
)
from vgcourse.gan.tgan import tgan_step
from vgcourse.train import TrainConfig, Trainer


def _shapes_through(module: nn.Module, args: tuple, kinds: tuple) -> list[tuple]:
    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
             for m in module.modules() if isinstance(m, kinds)]
    module(*args)
    for h in hooks:
        h.remove()
    return shapes


def test_temporal_generator_paper_shapes():
    """G₀: z₀ ∈ R^100 as a length-1 sequence -> 512 × 1 -> 256 × 2 -> 128 × 4 -> 128 × 8 -> 100 × 16, tanh."""
    g0 = TemporalGenerator(tgan_paper()).eval()
    shapes = _shapes_through(g0, (sample_z(2, 100),), (nn.ConvTranspose1d,))
    assert shapes == [(512, 1), (256, 2), (128, 4), (128, 8), (100, 16)]
    convs = [m for m in g0.modules() if isinstance(m, nn.ConvTranspose1d)]
    assert convs[0].kernel_size == (1,) and all(c.kernel_size == (4,) and c.stride == (2,) for c in convs[1:])
    assert isinstance(g0.net[-1], nn.Tanh)


def test_image_generator_paper_shapes():
    """G₁: z₀ and z₁ᵗ -> 256×4×4 each, concatenated 512×4×4 -> 256×8×8 -> ... -> 32×64×64 -> 3×64×64."""
    g1 = ImageGenerator(tgan_paper()).eval()
    z0, z1 = sample_z(2, 100), sample_z(2, 100)
    assert _shapes_through(g1, (z0, z1), (nn.Linear,)) == [(256 * 16,), (256 * 16,)]
    assert _shapes_through(g1, (z0, z1), (nn.ConvTranspose2d,)) == [(256, 8, 8), (128, 16, 16), (64, 32, 32),
                                                                     (32, 64, 64), (3, 64, 64)]


def test_critic_paper_shapes_and_parameters():
    """Figure 1: 3×16×64×64 -> 64×8×32×32 -> 128×4×16×16 -> 256×2×8×8 -> 512×1×4×4 -> one score."""
    d = VideoDiscriminator(tgan_paper()).eval()
    x = torch.zeros(2, 3, 16, 64, 64)
    assert _shapes_through(d, (x,), (nn.LeakyReLU,)) == [(64, 8, 32, 32), (128, 4, 16, 16), (256, 2, 8, 8),
                                                          (512, 1, 4, 4)]
    assert d(x).shape == (2,)
    k = 4 ** 3  # 4×4×4 kernels; batch norm (scale and shift) after every layer but the first, whose conv has a bias
    want = (3 * 64 * k + 64) + (64 * 128 * k + 2 * 128) + (128 * 256 * k + 2 * 256) + (256 * 512 * k + 2 * 512) \
        + (512 * 16 + 1)
    assert sum(p.numel() for p in d.parameters()) == want


def test_generator_makes_clips_with_one_latent_per_frame():
    cfg = tgan_small()
    g = TGANGenerator(cfg)
    z0 = sample_z(3, cfg.z_dim, generator=torch.Generator().manual_seed(0))
    clips = g(z0)
    assert clips.shape == (3, 1, 16, 32, 32) and clips.abs().max() <= 1
    z1 = g.temporal(z0)
    assert z1.shape == (3, cfg.z_frame_dim, 16) and z1.abs().max() < 1
    assert (z1[:, :, 1:] - z1[:, :, :-1]).abs().max() > 0  # the frame latents vary along time
    g.eval()
    with torch.no_grad():  # frame t of clip b is G₁(z₀ of b, z₁ᵗ of b)
        clips, z1 = g(z0), g.temporal(z0)
        frame = g.image(z0[1:2], z1[1:2, :, 5])
    torch.testing.assert_close(clips[1, :, 5], frame[0])
    assert g.sample(4).shape == (4, 1, 16, 32, 32) and not g.training  # sampled in the current mode


def test_config_checks():
    with pytest.raises(ValueError, match="2 \\*\\* len"):
        TGANConfig(frames=12)
    with pytest.raises(ValueError, match="power of two"):
        TGANConfig(size=48)
    with pytest.raises(ValueError, match="disc_norm"):
        TGANConfig(disc_norm="group")
    with pytest.raises(ValueError, match="multiple of"):
        TGANConfig(size=64, frames=8, temporal_channels=(32, 16, 8))  # 4 critic halvings of 8 frames
    with pytest.raises(ValueError, match=r"expected clips of shape \(B, 1, 16, 32, 32\)"):
        VideoDiscriminator(tgan_small())(torch.zeros(2, 1, 8, 32, 32))
    with pytest.raises(ValueError, match="expected z0"):
        TGANGenerator(tgan_small())(torch.zeros(2, 7))


def test_plain_critic_has_neither_batch_norm_nor_spectral_norm():
    d = VideoDiscriminator(tgan_tiny(disc_norm="none"))
    assert not any(isinstance(m, nn.BatchNorm3d) for m in d.modules())
    assert not any(hasattr(m, "parametrizations") for m in d.modules())
    assert all(m.bias is not None for m in d.modules() if isinstance(m, nn.Conv3d))


def test_spectral_critic_has_no_batch_norm():
    d = VideoDiscriminator(tgan_tiny(disc_norm="spectral")).train()
    assert not any(isinstance(m, nn.BatchNorm3d) for m in d.modules())
    for _ in range(30):
        d(torch.randn(2, 1, 8, 16, 16))
    assert all(largest_singular_value(m) == pytest.approx(1.0, abs=0.05) for m in d.modules()
               if isinstance(m, nn.Conv3d))


def _svc_trainer(cfg, lr=0.05, clip_every=5, steps=5):
    nets = tgan(cfg)
    opts = {"disc": torch.optim.RMSprop(nets["D"].parameters(), lr),
            "gen": torch.optim.RMSprop(nets["G"].parameters(), lr)}
    real = torch.rand(4, 1, cfg.frames, cfg.size, cfg.size) * 2 - 1
    return nets, Trainer(nets, opts, lambda s: real, TrainConfig(steps=steps, progress=False, grad_clip=None,
                                                                  measure_flops=False),
                         step_fn=lambda t, x: gan_step(t, x, sample_z(4, cfg.z_dim), loss="wasserstein",
                                                       clip_every=clip_every))


def test_wgan_svc_step_clips_the_critic_every_fifth_step():
    torch.manual_seed(0)
    nets, trainer = _svc_trainer(tgan_tiny())
    convs = [m for m in nets["D"].modules() if isinstance(m, nn.Conv3d)]
    trainer.fit(4)
    assert max(largest_singular_value(m) for m in convs) > 1  # a large lr pushes them past 1 between clips
    trainer.fit(5)  # the 5th step clips
    assert max(largest_singular_value(m) for m in convs) <= 1 + 1e-4
    for bn in (m for m in nets["D"].modules() if isinstance(m, nn.BatchNorm3d)):
        assert (bn.weight.abs() <= (bn.running_var + bn.eps).sqrt() + 1e-6).all()
    assert set(trainer.history[-1]) >= {"loss_d", "loss_g"}


def test_the_generator_gets_a_gradient_from_the_critic_through_every_frame():
    cfg = tgan_tiny()
    nets = tgan(cfg)
    clips = nets["G"](sample_z(2, cfg.z_dim))
    clips.retain_grad()
    nets["D"](clips).sum().backward()
    per_frame = clips.grad.abs().sum((0, 1, 3, 4))  # (T,)
    assert (per_frame > 0).all()
    assert nets["G"].temporal.net[0].weight.grad.abs().sum() > 0


def _r1_pair(cfg, step_fn, steps, measure_flops=False):
    torch.manual_seed(0)
    nets = tgan(cfg)
    opts = {k: torch.optim.Adam(nets[n].parameters(), 1e-3, betas=(0.0, 0.99))
            for k, n in (("disc", "D"), ("gen", "G"))}
    real = torch.rand(4, 1, cfg.frames, cfg.size, cfg.size) * 2 - 1
    zs = [sample_z(4, cfg.z_dim, generator=torch.Generator().manual_seed(i)) for i in range(steps)]
    trainer = Trainer(nets, opts, lambda s: real, TrainConfig(steps=steps, progress=False, grad_clip=None, log_every=1,
                                                              measure_flops=measure_flops),
                      step_fn=lambda t, x: step_fn(t, x, zs[t.step]))
    trainer.fit()
    return nets, trainer


def test_tgan_step_makes_r1_lazy():
    """Every r1_every-th step is gan_step with γ · r1_every, the others gan_step without R1; one set of log keys."""
    cfg = tgan_tiny(disc_norm="none")
    every, gamma = 2, 0.5
    lazy, t_lazy = _r1_pair(cfg, lambda t, x, z: tgan_step(t, x, z, loss="nonsaturating", r1_gamma=gamma,
                                                            r1_every=every), steps=4)
    by_hand, _ = _r1_pair(cfg, lambda t, x, z: gan_step(t, x, z, loss="nonsaturating", r1_gamma=every * gamma
                                                        if t.step % every == 0 else 0.0), steps=4)
    for (name, p), q in zip(lazy.named_parameters(), by_hand.parameters()):
        torch.testing.assert_close(p, q, msg=name)
    assert [set(h) for h in t_lazy.history] == [{"step", "loss_d", "loss_g", "r1"}] * 4
    assert [h["r1"] > 0 for h in t_lazy.history] == [True, False, True, False]


def test_tgan_step_skips_r1_on_the_flop_counted_step_and_checks_its_arguments():
    cfg = tgan_tiny(disc_norm="none")
    _, trainer = _r1_pair(cfg, lambda t, x, z: tgan_step(t, x, z, loss="nonsaturating", r1_gamma=1.0, r1_every=1),
                          steps=3, measure_flops=True)
    assert [h["r1"] > 0 for h in trainer.history] == [False, True, True]
    with pytest.raises(ValueError, match="r1_every"):
        _r1_pair(cfg, lambda t, x, z: tgan_step(t, x, z, r1_gamma=1.0, r1_every=0), steps=1)


def test_tgan_step_without_r1_is_gan_step():
    cfg = tgan_tiny()
    a, _ = _r1_pair(cfg, lambda t, x, z: tgan_step(t, x, z, loss="wasserstein", clip_every=2), steps=3)
    b, _ = _r1_pair(cfg, lambda t, x, z: gan_step(t, x, z, loss="wasserstein", clip_every=2), steps=3)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(p, q, msg=name)
