"""make_gan_trainer: each side's Adam holds exactly its own networks, at its own learning rate, and a GAN step run
through it moves G with the generator's loss alone."""

import pytest
import torch
from torch import nn

from vgcourse.gan import build_predictor, gan_optimizers, make_gan_trainer
from vgcourse.gan.video_prediction import PredictorConfig


def toy_gan() -> nn.ModuleDict:
    return nn.ModuleDict({"G": nn.Linear(2, 3), "D_I": nn.Linear(3, 1), "D_V": nn.Linear(3, 1)})


def ids(opt: torch.optim.Optimizer) -> set[int]:
    return {id(p) for group in opt.param_groups for p in group["params"]}


def test_each_side_holds_its_own_networks_at_its_own_rate():
    model = toy_gan()
    opts = gan_optimizers(model, lr_g=1e-4, lr_d=4e-4, betas=(0.0, 0.999))
    assert ids(opts["gen"]) == {id(p) for p in model["G"].parameters()}
    assert ids(opts["disc"]) == {id(p) for name in ("D_I", "D_V") for p in model[name].parameters()}
    assert opts["gen"].param_groups[0]["lr"] == 1e-4 and opts["disc"].param_groups[0]["lr"] == 4e-4
    assert opts["disc"].param_groups[0]["betas"] == (0.0, 0.999)


def test_an_encoder_is_on_the_generator_side_and_no_discriminator_means_no_disc_optimizer():
    config = PredictorConfig(image_size=16, frames=4, context_frames=2, width=8, encoder_width=8, latent_dim=4,
                             disc_width=8)
    vae_only = build_predictor(config, "vae")
    opts = gan_optimizers(vae_only, 1e-3, 1e-3)
    assert set(opts) == {"gen"}
    assert ids(opts["gen"]) == {id(p) for p in vae_only.parameters()}


def test_a_network_on_neither_side_is_refused():
    with pytest.raises(ValueError, match="neither side"):
        gan_optimizers(nn.ModuleDict({"G": nn.Linear(1, 1), "critic": nn.Linear(1, 1)}), 1e-3, 1e-3)
    with pytest.raises(ValueError, match="'G'"):
        gan_optimizers(nn.ModuleDict({"D": nn.Linear(1, 1)}), 1e-3, 1e-3)


def test_a_step_moves_g_by_the_generator_loss_alone_and_keeps_an_ema_of_g():
    torch.manual_seed(0)
    model = toy_gan()
    real = torch.randn(8, 3)
    z = torch.randn(8, 2)

    def step(trainer, batch):
        g, d = trainer.model["G"], trainer.model["D_I"]
        d_loss = nn.functional.softplus(-d(batch)).mean() + nn.functional.softplus(d(g(z).detach())).mean()
        trainer.optimize(d_loss, "disc")
        g_loss = nn.functional.softplus(-d(g(z))).mean()
        trainer.optimize(g_loss, "gen")
        return {"d": d_loss.detach(), "g": g_loss.detach()}

    # G's update by hand: one Adam step on the generator loss, D as it is after its own step
    reference = toy_gan()
    reference.load_state_dict(model.state_dict())
    opt_d = torch.optim.Adam(list(reference["D_I"].parameters()) + list(reference["D_V"].parameters()), 4e-4,
                             betas=(0.0, 0.99))
    opt_g = torch.optim.Adam(reference["G"].parameters(), 1e-4, betas=(0.0, 0.99))
    g_, d_ = reference["G"], reference["D_I"]
    (nn.functional.softplus(-d_(real)).mean() + nn.functional.softplus(d_(g_(z).detach())).mean()).backward()
    opt_d.step()
    opt_g.zero_grad()
    nn.functional.softplus(-d_(g_(z))).mean().backward()
    opt_g.step()

    trainer = make_gan_trainer(model, step, 1, lambda s: real, lr_g=1e-4, lr_d=4e-4, ema_decay=0.5,
                               progress=False, measure_flops=False, log_every=1)
    assert trainer.config.grad_clip is None and trainer.config.amp is False
    trainer.fit()
    for name in ("G", "D_I"):
        for a, b in zip(model[name].parameters(), reference[name].parameters()):
            torch.testing.assert_close(a, b)
    assert trainer.ema is not None
    assert isinstance(trainer.ema.model, nn.Linear)  # the EMA follows G, not the whole ModuleDict
    assert make_gan_trainer(toy_gan(), step, 1, lambda s: real, lr_g=1e-4, lr_d=4e-4, ema=False,
                            progress=False).ema is None
