"""DCGAN on frames: the paper's layer shapes, its architecture rules, the training step; the frame scores."""

import copy
import math

import pytest
import torch
from torch import nn

from vgcourse.gan import (
    DCGANConfig,
    DCGANDiscriminator,
    DCGANGenerator,
    d_hinge,
    d_nonsaturating,
    dcgan,
    dcgan_paper,
    dcgan_small,
    dcgan_tiny,
    g_nonsaturating,
    gan_step,
    largest_singular_value,
    sample_z,
    standing_statistics,
)
from vgcourse.metrics import PROTOCOL
from vgcourse.metrics.frames import (
    FrameEvaluator,
    digit_scores,
    format_frame_rows,
    frame_reference_rows,
    frames_as_video,
    frames_of,
    grouped_jackknife_fd,
    mean_and_se,
    sharpness,
)
from vgcourse.metrics.frechet import gaussian_stats, jackknife_fd, jackknife_std
from vgcourse.metrics.suite import Evaluator
from vgcourse.train import TrainConfig, Trainer


def _shapes_through(module: nn.Module, x: torch.Tensor, kinds: tuple) -> list[tuple]:
    """Output shapes (without the batch) of every layer of the given kinds, in call order."""
    shapes = []
    hooks = [m.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape[1:])))
             for m in module.modules() if isinstance(m, kinds)]
    module(x)
    for h in hooks:
        h.remove()
    return shapes


def test_paper_generator_has_figure_1s_shapes():
    """Radford et al. 2016, Figure 1: 100-d z -> 4×4×1024 -> 8×8×512 -> 16×16×256 -> 32×32×128 -> 64×64×3."""
    g = DCGANGenerator(dcgan_paper()).eval()
    shapes = _shapes_through(g, sample_z(2, 100), (nn.BatchNorm2d, nn.Tanh))
    assert shapes == [(1024, 4, 4), (512, 8, 8), (256, 16, 16), (128, 32, 32), (3, 64, 64)]
    # the projection is one matrix multiply (100 × 4·4·1024, no bias: batch norm follows) and four transposed convs
    n_params = sum(p.numel() for p in g.parameters())
    expected = (100 * 16 * 1024 + 2 * 1024 + 1024 * 512 * 16 + 2 * 512 + 512 * 256 * 16 + 2 * 256
                + 256 * 128 * 16 + 2 * 128 + 128 * 3 * 16 + 3)
    assert n_params == expected


def test_paper_discriminator_mirrors_the_generator():
    d = DCGANDiscriminator(dcgan_paper()).eval()
    x = torch.zeros(2, 3, 64, 64)
    assert _shapes_through(d, x, (nn.LeakyReLU,)) == [(128, 32, 32), (256, 16, 16), (512, 8, 8), (1024, 4, 4)]
    assert d(x).shape == (2,)


def test_architecture_rules():
    """§3: no pooling or hidden linear layers; BN except G's output and D's input; ReLU/Tanh in G, LeakyReLU(0.2)
    in D; weights from N(0, 0.02)."""
    nets = dcgan(dcgan_small())
    g, d = nets["G"], nets["D"]
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in nets.modules())
    assert [type(m) for m in g.net][-2:] == [nn.ConvTranspose2d, nn.Tanh]  # no BN on G's output layer
    assert isinstance(d.net[0], nn.Conv2d) and isinstance(d.net[1], nn.LeakyReLU)  # no BN on D's input layer
    assert sum(isinstance(m, nn.Linear) for m in d.modules()) == 1 and sum(isinstance(m, nn.Linear)
                                                                             for m in g.modules()) == 1
    assert all(m.negative_slope == 0.2 for m in d.modules() if isinstance(m, nn.LeakyReLU))
    assert not any(isinstance(m, nn.LeakyReLU) for m in g.modules())
    w = torch.cat([m.weight.flatten() for m in nets.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))])
    assert w.mean().abs() < 0.002 and abs(w.std().item() - 0.02) < 0.001


def test_generator_range_sampling_and_standing_statistics():
    g = DCGANGenerator(dcgan_tiny())
    frames = g.sample(6, torch.Generator().manual_seed(0))
    assert frames.shape == (6, 1, 16, 16) and frames.abs().max() <= 1 and g.training
    torch.testing.assert_close(frames, g.sample(6, torch.Generator().manual_seed(0)))
    # standing statistics: running stats = the average batch statistics, then eval mode, where a frame no longer
    # depends on the rest of its batch
    norm = g.project_norm
    with torch.no_grad():
        norm.running_mean.fill_(5.0)
    standing_statistics(g, batches=4, batch_size=64, rng=torch.Generator().manual_seed(1))
    assert not g.training and norm.momentum == 0.1 and norm.running_mean.abs().max() < 1
    z = sample_z(8, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        torch.testing.assert_close(g(z)[:1], g(z[:1]))
    with pytest.raises(ValueError, match=r"expected z of shape \(N, 16\)"):
        g(torch.zeros(2, 8))
    with pytest.raises(ValueError, match="expected frames of shape"):
        DCGANDiscriminator(dcgan_tiny())(torch.zeros(2, 1, 32, 32))
    with pytest.raises(ValueError, match="power of two"):
        DCGANConfig(size=24)
    with pytest.raises(ValueError, match="disc_norm"):
        DCGANConfig(disc_norm="layer")


def test_spectral_discriminator_is_one_lipschitz_per_layer():
    d = DCGANDiscriminator(dcgan_tiny(disc_norm="spectral")).train()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in d.modules())
    for _ in range(30):  # power iterations converge while training-mode forwards run
        d(torch.randn(4, 1, 16, 16))
    layers = [m for m in d.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert all(largest_singular_value(m) == pytest.approx(1.0, abs=0.05) for m in layers)


def _trainer(cfg, loss_steps=1, lr=1e-3):
    nets = dcgan(cfg)
    opts = {"disc": torch.optim.Adam(nets["D"].parameters(), lr, betas=(0.5, 0.999)),
            "gen": torch.optim.Adam(nets["G"].parameters(), lr, betas=(0.5, 0.999))}
    return nets, opts


def test_gan_step_is_the_alternating_update_by_hand():
    """One step of the package = D's loss and step, then G's loss through the *updated* D and its step."""
    torch.manual_seed(0)
    cfg = dcgan_tiny()
    nets, opts = _trainer(cfg)
    hand_nets = copy.deepcopy(nets)
    hand_opts = {"disc": torch.optim.Adam(hand_nets["D"].parameters(), 1e-3, betas=(0.5, 0.999)),
                 "gen": torch.optim.Adam(hand_nets["G"].parameters(), 1e-3, betas=(0.5, 0.999))}
    real = torch.rand(8, 1, 16, 16) * 2 - 1
    z = sample_z(8, cfg.z_dim, generator=torch.Generator().manual_seed(1))
    trainer = Trainer(nets, opts, lambda s: real, TrainConfig(steps=1, progress=False, grad_clip=None,
                                                                measure_flops=False),
                      step_fn=lambda t, x: gan_step(t, x, z))
    trainer.fit()
    G, D = hand_nets["G"], hand_nets["D"]
    fake = G(z)
    loss_d = d_nonsaturating(D(real), D(fake.detach()))
    hand_opts["disc"].zero_grad()
    loss_d.backward()
    hand_opts["disc"].step()
    loss_g = g_nonsaturating(D(fake))
    hand_opts["gen"].zero_grad()
    loss_g.backward()
    hand_opts["gen"].step()
    for (name, p), q in zip(nets.named_parameters(), hand_nets.parameters()):
        torch.testing.assert_close(p, q, msg=name)
    assert trainer.history[-1]["loss_d"] == pytest.approx(loss_d.item(), rel=1e-5)
    assert trainer.history[-1]["loss_g"] == pytest.approx(loss_g.item(), rel=1e-5)


def test_gan_step_hinge_r1_and_clipping():
    torch.manual_seed(0)
    cfg = dcgan_tiny(disc_norm="spectral")
    nets, opts = _trainer(cfg)
    before = copy.deepcopy(nets)
    real = torch.rand(8, 1, 16, 16) * 2 - 1
    z = sample_z(8, cfg.z_dim)
    trainer = Trainer(nets, opts, lambda s: real, TrainConfig(steps=1, progress=False, grad_clip=None,
                                                                measure_flops=False),
                      step_fn=lambda t, x: gan_step(t, x, z, loss="hinge", r1_gamma=1.0))
    trainer.fit()
    logs = trainer.history[-1]
    assert {"loss_d", "loss_g", "r1"} <= set(logs) and logs["r1"] > 0
    want = d_hinge(before["D"](real), before["D"](before["G"](z)))  # the same forwards, the same power iterations
    assert logs["loss_d"] == pytest.approx(want.item(), rel=1e-5)
    assert logs["loss_d"] != pytest.approx(d_nonsaturating(before["D"](real), before["D"](before["G"](z))).item())
    # clipping every 2nd step: after steps 1 and 2 every D weight has σ_max <= 1
    cfg = dcgan_tiny()
    nets, opts = _trainer(cfg, lr=0.05)
    trainer = Trainer(nets, opts, lambda s: real, TrainConfig(steps=2, progress=False, grad_clip=None,
                                                                measure_flops=False),
                      step_fn=lambda t, x: gan_step(t, x, z, loss="wasserstein", clip_every=2))
    trainer.fit(1)
    assert max(largest_singular_value(m) for m in nets["D"].modules() if isinstance(m, (nn.Conv2d, nn.Linear))) > 1
    trainer.fit(2)
    assert max(largest_singular_value(m) for m in nets["D"].modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))) <= 1 + 1e-4


def test_dcgan_learns_a_toy_distribution():
    """A GAN whose every real frame is one fixed image learns to draw it (the step's signs are right)."""
    torch.manual_seed(0)
    cfg = dcgan_tiny(disc_norm="spectral")
    nets, opts = _trainer(cfg, lr=2e-3)
    target = torch.zeros(1, 1, 16, 16) - 1
    target[..., 4:12, 6:10] = 1  # a bar
    real = target.expand(16, -1, -1, -1)
    trainer = Trainer(nets, opts, lambda s: real, TrainConfig(steps=150, progress=False, grad_clip=None,
                                                                measure_flops=False),
                      step_fn=lambda t, x: gan_step(t, x, sample_z(16, cfg.z_dim), loss="hinge"))
    before = (nets["G"].sample(16) - target).abs().mean().item()
    trainer.fit()
    after = (nets["G"].sample(16) - target).abs().mean().item()
    assert after < 0.3 < before


# ---- frame scores ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def frame_evaluator():
    return FrameEvaluator(PROTOCOL.dataset(), n_real=32)


def test_layout_helpers():
    video = torch.rand(2, 1, 3, 8, 8) * 2 - 1
    frames = frames_of(video)
    assert frames.shape == (6, 1, 8, 8)
    torch.testing.assert_close(frames[4], video[1, :, 1])  # clip 1, frame 1
    assert frames_as_video(frames).shape == (6, 1, 1, 8, 8)
    with pytest.raises(ValueError, match="clips"):
        frames_as_video(video)


def test_sharpness_by_hand_and_blur_lowers_it():
    x = torch.zeros(1, 1, 5, 5) - 1
    x[0, 0, 2, 2] = 1  # one bright pixel: the Laplacian is -8 at it and +2 at its 4 neighbours, on a 3×3 interior
    assert sharpness(x).item() == pytest.approx((64 + 4 * 4) / 9)
    assert sharpness(torch.zeros(3, 1, 8, 8)).tolist() == [0, 0, 0]


def test_digit_scores_by_hand():
    probs = torch.tensor([[0.9, 0.8, 0.1, 0, 0, 0, 0, 0, 0, 0], [0, 0, 0.5, 0.5, 0.5, 0, 0, 0, 0, 0]])
    s = digit_scores(probs, digits=2)
    torch.testing.assert_close(s["quality"], torch.tensor([1.7 / 2.1, 1.0 / 2.5]))
    assert s["class_coverage"] == pytest.approx(0.4)  # classes {0, 1} and two of {2, 3, 4}
    assert s["class_entropy"] == pytest.approx(math.log(4) / math.log(10))  # four classes, one vote each
    uniform = torch.eye(10).repeat(50, 1)  # 500 frames, every class equally often: the most entropy there is
    one_class = torch.zeros(500, 10)
    one_class[:, 3] = 1
    assert digit_scores(uniform, 1)["class_entropy"] == pytest.approx(1.0)
    assert digit_scores(one_class, 1)["class_entropy"] == pytest.approx(0.0, abs=1e-9)
    assert digit_scores(one_class, 1)["class_entropy_se"] == pytest.approx(0.0, abs=1e-9)
    mixed = torch.eye(10)[torch.randint(0, 10, (400,), generator=torch.Generator().manual_seed(0))]
    assert 0 < digit_scores(mixed, 1)["class_entropy_se"] < 0.02


def test_mean_and_se():
    m, se = mean_and_se(torch.tensor([1.0, 3.0]))
    assert m == 2 and se == pytest.approx(2 ** 0.5 / 2 ** 0.5)
    with pytest.raises(ValueError, match="at least 2"):
        mean_and_se(torch.tensor([1.0]))


def test_grouped_jackknife_agrees_with_leave_one_out():
    """Leaving out 1 of 32 groups estimates the same standard error as leaving out each row (Gaussian features)."""
    g = torch.Generator().manual_seed(0)
    reference = gaussian_stats(torch.randn(4000, 8, generator=g))
    ses = []
    for seed in range(3):
        feats = torch.randn(256, 8, generator=torch.Generator().manual_seed(seed + 1)) * 1.2 + 0.3
        one = jackknife_std(jackknife_fd({"x": feats}, reference)["x"])
        grouped = jackknife_std(grouped_jackknife_fd(feats, reference, groups=32))
        ses.append(grouped / one)
    assert 0.6 < sum(ses) / len(ses) < 1.5
    assert len(grouped_jackknife_fd(torch.randn(10, 8), reference, groups=32)) == 10  # at most one group per row
    with pytest.raises(ValueError, match="at least 2 groups"):
        grouped_jackknife_fd(torch.randn(1, 8), reference)


def test_frame_quality_is_the_evaluators(frame_evaluator):
    """The mean over all frames of clips equals the clip Evaluator's frame_quality (one formula, two layouts)."""
    clips = PROTOCOL.dataset().batch(8, seed=3).video
    clip_scores = Evaluator(PROTOCOL.dataset(), n_real=8)(clips)
    frame_scores = frame_evaluator(frames_of(clips), jackknife=False)
    assert frame_scores["frame_quality"] == pytest.approx(clip_scores["frame_quality"], rel=1e-5)


def test_frame_reference_rows_rank_as_a_person_would(frame_evaluator):
    rows = frame_reference_rows(frame_evaluator, n=64)
    assert list(rows) == ["real frames", "blurred frames", "noise", "mean frame"]
    fd = {k: v["frame_fd"] for k, v in rows.items()}
    assert fd["real frames"] < fd["blurred frames"] < fd["noise"]
    assert fd["real frames"] < fd["mean frame"]
    sharp = {k: v["sharpness"] for k, v in rows.items()}
    assert sharp["mean frame"] < sharp["blurred frames"] < sharp["real frames"] < sharp["noise"]
    assert rows["real frames"]["class_coverage"] > rows["mean frame"]["class_coverage"]
    assert rows["mean frame"]["diversity"] == pytest.approx(0, abs=1e-6) and rows["real frames"]["diversity"] > 0.5
    assert all(r["frame_fd_se"] >= 0 and r["frame_quality_se"] >= 0 and r["n_frames"] == 64 for r in rows.values())
    assert rows["real frames"]["frame_fd_se"] > 0
    assert "±" in format_frame_rows(rows) and "mean frame" in format_frame_rows(rows)


def test_frame_evaluator_refuses_what_it_cannot_score(frame_evaluator):
    with pytest.raises(ValueError, match="clips"):
        frame_evaluator(torch.zeros(4, 1, 2, 32, 32))
    with pytest.raises(ValueError, match="cannot be compared"):
        frame_evaluator(torch.zeros(4, 1, 16, 16))
    with pytest.raises(ValueError, match="at least 3"):
        frame_evaluator(torch.zeros(2, 1, 32, 32))


def test_gan_step_puts_r1_into_the_discriminators_update():
    """A logged r1 > 0 does not show that the penalty reached D's gradient: the update is redone by hand."""
    from vgcourse.gan import d_hinge, dcgan, dcgan_tiny, gan_step, r1_penalty, sample_z

    torch.manual_seed(0)
    cfg = dcgan_tiny(disc_norm="none")
    nets = dcgan(cfg)
    hand = copy.deepcopy(nets)
    real = torch.rand(8, 1, 16, 16) * 2 - 1
    z = sample_z(8, cfg.z_dim, generator=torch.Generator().manual_seed(1))

    def sgd(n):
        return {"disc": torch.optim.SGD(n["D"].parameters(), 0.1), "gen": torch.optim.SGD(n["G"].parameters(), 0.1)}

    Trainer(nets, sgd(nets), lambda s: real, TrainConfig(steps=1, progress=False, grad_clip=None, measure_flops=False),
            step_fn=lambda t, x: gan_step(t, x, z, loss="hinge", r1_gamma=10.0)).fit()
    D, G = hand["D"], hand["G"]
    opt = sgd(hand)
    loss_d = d_hinge(D(real), D(G(z).detach())) + r1_penalty(D, real, 10.0)
    opt["disc"].zero_grad()
    loss_d.backward()
    opt["disc"].step()
    for (name, p), q in zip(nets["D"].named_parameters(), D.parameters()):
        torch.testing.assert_close(p, q, msg=name)
