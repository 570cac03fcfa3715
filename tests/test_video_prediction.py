"""SAVP-style prediction: CDNA moves pixels, the unroll reads its own output, the KL by hand, the three variants."""

import math

import pytest
import torch

from vgcourse.data import MovingDigits
from vgcourse.gan.video_prediction import (
    MODES,
    PosteriorEncoder,
    PredictionRecipe,
    PredictorConfig,
    VideoPredictor,
    apply_cdna,
    build_predictor,
    kl_to_unit_gaussian,
    prediction_step,
    reparameterise,
)
from vgcourse.train import TrainConfig, Trainer

TINY = PredictorConfig(image_size=16, frames=6, context_frames=2, latent_dim=3, width=8, encoder_width=8,
                       transforms=2, kernel_size=3, disc_width=8)


def test_cdna_kernel_moves_pixels():
    image = torch.zeros(2, 1, 6, 6)
    image[:, 0, 2, 3] = 1.0
    shift = torch.zeros(3, 3)
    shift[0, 1] = 1.0  # out(y, x) = in(y − 1, x): one pixel down
    identity = torch.zeros(3, 3)
    identity[1, 1] = 1.0
    moved = apply_cdna(image, torch.stack([shift, identity])[None].expand(2, -1, -1, -1))  # (B, K, C, H, W)
    assert moved.shape == (2, 2, 1, 6, 6)
    assert moved[0, 0, 0, 3, 3] == 1 and moved[0, 0].sum() == 1  # shifted down
    torch.testing.assert_close(moved[:, 1], image)  # the identity kernel keeps it
    edge = torch.full((1, 1, 4, 4), -1.0)
    assert (apply_cdna(edge, shift[None, None]) == -1).all()  # edges replicate: black stays black


def test_kl_by_hand_and_zero_at_the_prior():
    mean, log_var = torch.tensor([[[1.0, 0.0]]]), torch.tensor([[[0.0, math.log(4.0)]]])
    want = 0.5 * ((1 + 1 - 1 - 0) + (0 + 4 - 1 - math.log(4.0)))
    assert kl_to_unit_gaussian(mean, log_var).item() == pytest.approx(want)
    assert kl_to_unit_gaussian(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4)).item() == 0


def test_reparameterised_samples_have_the_posterior_moments():
    torch.manual_seed(0)
    mean, log_var = torch.full((20000, 1), 2.0), torch.full((20000, 1), math.log(0.25))
    z = reparameterise(mean, log_var)
    assert z.mean().item() == pytest.approx(2.0, abs=0.02) and z.std().item() == pytest.approx(0.5, abs=0.02)


def test_predictor_reads_context_then_its_own_output():
    torch.manual_seed(0)
    g = VideoPredictor(TINY).eval()
    video = MovingDigits(size=16, frames=6, digits=1).batch(2).video
    context = video[:, :, :2]
    z = g.prior_latents(2)
    assert z.shape == (2, 5, 3)
    with torch.no_grad():
        future = g(context, z)
        assert future.shape == (2, 1, 4, 16, 16)
        z2 = z.clone()
        z2[:, 3] += 1.0  # z_3 drives the step to x_4, the third predicted frame
        moved = g(context, z2)
        same_context_other_later_frames = g(context, z)
    diff = (moved - future).abs().amax((0, 1, 3, 4))
    assert (diff[:2] == 0).all() and (diff[2:] > 0).all()
    torch.testing.assert_close(same_context_other_later_frames, future)
    whole = g.predict(context, generator=torch.Generator().manual_seed(0))
    assert whole.shape == (2, 1, 6, 16, 16) and torch.equal(whole[:, :, :2], context)


def test_posterior_encoder_reads_frame_pairs():
    torch.manual_seed(0)
    e = PosteriorEncoder(TINY).eval()
    video = torch.randn(2, 1, 6, 16, 16)
    mean, log_var = e(video)
    assert mean.shape == log_var.shape == (2, 5, 3)
    changed = video.clone()
    changed[:, :, 4] += 1  # frame 4 enters the pairs (3, 4) and (4, 5): steps 3 and 4
    mean2, _ = e(changed)
    diff = (mean2 - mean).abs().amax((0, 2))
    assert (diff[:3] == 0).all() and (diff[3:] > 0).all()


def test_variants_hold_the_networks_they_train():
    assert set(build_predictor(TINY, "hybrid")) == {"G", "E", "D", "D_vae"}
    assert set(build_predictor(TINY, "vae")) == {"G", "E"}
    assert set(build_predictor(TINY, "gan")) == {"G", "D"}
    assert {name: r.networks for name, r in MODES.items()} == {
        "hybrid": {"G", "E", "D", "D_vae"}, "vae": {"G", "E"}, "gan": {"G", "D"}}
    no_kl = build_predictor(TINY, PredictionRecipe(kl_weight=0.0))  # a recipe, not only a name
    assert set(no_kl) == {"G", "E", "D", "D_vae"}
    with pytest.raises(ValueError, match="without a posterior"):
        PredictionRecipe(posterior=False)
    assert (MODES["hybrid"].l1_weight, MODES["hybrid"].kl_weight) == (100.0, 0.1)  # SAVP's BAIR weights
    with pytest.raises(ValueError, match="mode"):
        build_predictor(TINY, "flow")
    with pytest.raises(ValueError, match="context_frames"):
        PredictorConfig(frames=4, context_frames=4)


@pytest.mark.parametrize("mode", ["hybrid", "vae", "gan"])
def test_step_trains_each_variant(mode):
    torch.manual_seed(0)
    m = build_predictor(TINY, mode)
    gen = [p for k in ("G", "E") if k in m for p in m[k].parameters()]
    opt = {"gen": torch.optim.Adam(gen, 1e-3)}
    if "D" in m:
        opt["disc"] = torch.optim.Adam([p for k in ("D", "D_vae") if k in m for p in m[k].parameters()], 1e-3)
    data = MovingDigits(size=16, frames=8, digits=1)  # longer clips than the predictor's: it trims them
    trainer = Trainer(m, opt, data.stream(4), TrainConfig(steps=2, grad_clip=None, progress=False, log_every=1),
                      step_fn=lambda tr, batch: prediction_step(tr, batch, MODES[mode]))
    before = {k: [p.detach().clone() for p in v.parameters()] for k, v in m.items()}
    trainer.fit()
    for k, v in m.items():
        assert any(not torch.equal(p, q) for p, q in zip(v.parameters(), before[k])), f"{k} did not change"
    keys = set(trainer.history[-1])
    assert ("kl" in keys) == (mode != "gan") and ("d" in keys) == (mode != "vae") and "l1" in keys
    assert ("g_D_vae" in keys) == (mode == "hybrid")


def test_vae_learns_to_copy_a_still_frame():
    """On clips whose frames never change, a few dozen VAE steps bring the L1 error of the prediction well down."""
    torch.manual_seed(0)
    still = MovingDigits(size=16, frames=1, digits=1).batch(8, seed=3).video.expand(-1, -1, 6, -1, -1).contiguous()
    m = build_predictor(TINY, "vae")
    opt = {"gen": torch.optim.Adam([p for v in m.values() for p in v.parameters()], 3e-3)}
    recipe = PredictionRecipe(l1_weight=1.0, kl_weight=0.001, gan_weight=0.0, vae_gan_weight=0.0)
    assert recipe.networks == {"G", "E"}
    trainer = Trainer(m, opt, lambda step: still, TrainConfig(steps=60, grad_clip=None, progress=False, log_every=10,
                                                              measure_flops=False),
                      step_fn=lambda tr, batch: prediction_step(tr, batch, recipe))
    trainer.fit()
    assert trainer.history[-1]["l1"] < 0.5 * trainer.history[0]["l1"], trainer.history


def test_an_untrained_predictor_starts_by_copying_the_last_frame():
    torch.manual_seed(0)
    cfg = PredictorConfig(image_size=32, frames=6, context_frames=2)
    g = VideoPredictor(cfg).eval()
    video = MovingDigits(size=32, frames=6).batch(8, seed=1).video
    with torch.no_grad():
        first = g(video[:, :, :2], g.prior_latents(8))[:, :, 0]  # the first predicted frame
    last = video[:, :, 1]
    other = video.roll(1, dims=0)[:, :, 1]  # another clip's frame
    assert (first - last).abs().mean() < 0.5 * (first - other).abs().mean()
    kernels = g.step.kernels.bias.view(cfg.transforms, -1).softmax(-1)
    assert (kernels.argmax(-1) == cfg.kernel_size ** 2 // 2).all()  # every kernel peaked at its centre


def test_teacher_forcing_reads_the_true_frames():
    torch.manual_seed(0)
    g = VideoPredictor(TINY).eval()
    video = MovingDigits(size=16, frames=6, digits=1).batch(2, seed=2).video
    z = g.prior_latents(2)
    changed = video.clone()
    changed[:, :, 3] += 0.5  # the true frame x_3, read by the step to x_4 (the third predicted frame)
    with torch.no_grad():
        free = g(video[:, :, :2], z)
        forced, forced_changed = g(video[:, :, :2], z, video), g(video[:, :, :2], z, changed)
        assert torch.equal(g(video[:, :, :2], z, changed), forced_changed)
    assert torch.equal(free[:, :, 0], forced[:, :, 0])  # the first prediction reads the last context frame
    assert not torch.allclose(free[:, :, 1:], forced[:, :, 1:])  # later ones read true frames, not predictions
    diff = (forced_changed - forced).abs().amax((0, 1, 3, 4))
    assert (diff[:2] == 0).all() and (diff[2:] > 0).all()
    assert MODES["hybrid"].teacher_forcing and MODES["gan"].teacher_forcing
