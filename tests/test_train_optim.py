"""AdamW's weight-decay groups hold exactly the parameters they should; make_trainer builds the chapters' trainer."""

import pytest
import torch
from torch import nn

from vgcourse.data import MovingDigits
from vgcourse.diffusion import VideoUNet, video_unet_tiny
from vgcourse.dit import DiT, DiTConfig
from vgcourse.train import TrainConfig, Trainer, configure_adamw, make_trainer, warmup_cosine, weight_decay_groups


class Everything(nn.Module):
    """One of each kind of parameter: linear, conv and transposed conv weights; biases; norms; an embedding with a
    head tied to it; a free position table; a frozen layer."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.conv = nn.Conv3d(1, 2, 3)
        self.up = nn.ConvTranspose2d(2, 2, 2, bias=False)
        self.ln = nn.LayerNorm(4)
        self.gn = nn.GroupNorm(1, 2)
        self.emb = nn.Embedding(10, 4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.emb.weight  # tied, as GPT-2's output head
        self.pos = nn.Parameter(torch.zeros(8, 4))
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)


def names(group: dict) -> set[str]:
    return set(group["param_names"])


def test_groups_hold_exactly_the_parameters_they_should():
    model = Everything()
    decay, no_decay = weight_decay_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert names(decay) == {"linear.weight", "conv.weight", "up.weight"}
    assert names(no_decay) == {"linear.bias", "conv.bias", "ln.weight", "ln.bias", "gn.weight", "gn.bias",
                               "emb.weight", "pos"}  # the tied head is emb.weight: once, not decayed
    assert all(p is dict(model.named_parameters())[n] for g in (decay, no_decay)
               for p, n in zip(g["params"], g["param_names"]))
    with pytest.raises(ValueError, match="weight_decay >= 0"):
        weight_decay_groups(model, -0.1)


@pytest.mark.parametrize("make", [
    lambda: VideoUNet(video_unet_tiny()),
    lambda: DiT(DiTConfig(input_size=8, frames=4, in_channels=1, temporal_patch=2, patch_size=4, num_classes=10,
                          depth=1, hidden_size=32, num_heads=2)),
], ids=["unet", "dit"])
def test_course_models_decay_matrices_of_products_only(make):
    model = make()
    decay, no_decay = weight_decay_groups(model, 0.05)
    modules = dict(model.named_modules())
    for name in decay["param_names"]:
        owner, leaf = name.rsplit(".", 1)
        assert leaf == "weight" and isinstance(modules[owner], (nn.Linear, nn.modules.conv._ConvNd)), name
    assert all(p.dim() >= 2 for p in decay["params"])
    assert not any(isinstance(modules[n.rsplit(".", 1)[0]], (nn.GroupNorm, nn.LayerNorm, nn.Embedding))
                   for n in decay["param_names"] if "." in n)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(decay["param_names"] + no_decay["param_names"]) == sorted(trainable)  # each exactly once
    assert decay["params"] and no_decay["params"]


def test_adamw_decays_only_the_decay_group():
    # With zero gradients Adam's step is 0 and only the decoupled decay acts: θ ← θ (1 - lr λ) (Loshchilov & Hutter).
    torch.manual_seed(0)
    model = Everything()
    with torch.no_grad():
        model.pos.normal_()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = configure_adamw(model, lr=0.1, weight_decay=0.5)
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    decayed = {"linear.weight", "conv.weight", "up.weight"}
    for n, p in model.named_parameters():
        expected = before[n] * (1 - 0.1 * 0.5) if n in decayed else before[n]
        torch.testing.assert_close(p.detach(), expected, msg=n)
    assert not opt.defaults["fused"]  # the fused kernel is for CUDA only


def tiny_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv3d(1, 4, 3, padding=1), nn.GroupNorm(2, 4), nn.GELU(), nn.Conv3d(4, 1, 3, padding=1))


def denoise_loss(model, batch):
    noise = torch.randn(batch.video.shape, generator=torch.Generator().manual_seed(batch.video.shape[0]))
    return (model(batch.video + 0.3 * noise) - batch.video).pow(2).mean()


DATA = MovingDigits(16, frames=4, digits=1, digit_size=8)


def test_make_trainer_without_decay_trains_as_the_notebooks_plain_adamw():
    # Chapters 10-12 built AdamW(model.parameters(), weight_decay=0) and warmup_cosine by hand: the same weights.
    steps, lr = 4, 1e-2
    ours = make_trainer(tiny_model(), DATA.stream(2, seed=1), steps, denoise_loss, lr=lr, warmup=2, decay_to=0.1,
                        betas=(0.9, 0.99), progress=False)
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.0)
    theirs = Trainer(model, opt, DATA.stream(2, seed=1), TrainConfig(steps=steps, progress=False),
                     loss_fn=denoise_loss, schedulers={"main": warmup_cosine(opt, 2, steps, final=0.1)})
    ours.fit()
    theirs.fit()
    for a, b in zip(ours.model.parameters(), theirs.model.parameters()):
        torch.testing.assert_close(a, b)
    assert ours.optimizers["main"].param_groups[0]["lr"] == pytest.approx(0.1 * lr)  # decayed to decay_to × lr


def test_make_trainer_options_reach_the_loop():
    trainer = make_trainer(tiny_model(), DATA.stream(2, seed=1), 3, denoise_loss, lr=1e-3, warmup=2, ema_decay=0.9,
                           minutes=5.0, desc="tiny", weight_decay=0.1, log_every=1, progress=False,
                           model_config={"width": 4})
    cfg = trainer.config
    assert (cfg.steps, cfg.ema_decay, cfg.max_minutes, cfg.desc, cfg.log_every) == (3, 0.9, 5.0, "tiny", 1)
    assert trainer.ema is not None and trainer.model_config == {"width": 4}
    decay, no_decay = trainer.optimizers["main"].param_groups
    assert decay["weight_decay"] == 0.1 and set(no_decay["param_names"]) == {"0.bias", "1.weight", "1.bias",
                                                                               "3.bias"}
    trainer.fit()
    lrs = [g["lr"] for g in trainer.optimizers["main"].param_groups]
    assert lrs == [pytest.approx(1e-3)] * 2  # decay_to=None: the peak is kept after the warm-up
    assert len(trainer.history) == 3
    with pytest.raises(TypeError):
        make_trainer(tiny_model(), DATA.stream(2), 3, denoise_loss, lr=1e-3, no_such_option=1)
