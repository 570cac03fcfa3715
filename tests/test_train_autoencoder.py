"""The first stage's training block of chapters 10 and 11: train, fit the latent scale, reconstruct."""

import pytest
import torch

from vgcourse.autoencoders import VideoAutoencoder, kl_f4_tiny, train_autoencoder
from vgcourse.data import MovingDigits

DATA = MovingDigits(size=16, frames=2, digits=1, digit_size=8)


def test_train_autoencoder_trains_fits_the_scale_and_returns_the_trainer():
    torch.manual_seed(0)
    ae = VideoAutoencoder(kl_f4_tiny())
    first = [p.detach().clone() for p in ae.parameters()]
    trainer = train_autoencoder(ae, DATA, steps=3, batch=2, lr=1e-3, scale_clips=8, desc="tiny autoencoder")
    assert trainer.summary.steps == 3 and trainer.config.desc == "tiny autoencoder" and not ae.training
    assert {"loss", "recon", "kl"} <= set(trainer.history[-1])           # what the notebooks plot
    assert any(not torch.equal(a, b) for a, b in zip(first, ae.parameters()))
    # the scale factor gives the latents of the scale clips (seed + 1 = 3, as the notebooks) unit std
    with torch.no_grad():
        z = ae.encode_scaled(DATA.batch(8, seed=3).video, torch.Generator().manual_seed(0))
    assert float(ae.scale_factor) != 1.0 and z.std().item() == pytest.approx(1.0, abs=0.1)
    # AdamW with weight decay 0.01 on the conv weights only (the notebooks' torch default, now in groups)
    decay, no_decay = trainer.optimizers["main"].param_groups
    assert decay["weight_decay"] == 0.01 and no_decay["weight_decay"] == 0.0
    norms = {f"{m}.{n}" for m, mod in ae.named_modules() if isinstance(mod, torch.nn.GroupNorm)
             for n, _ in mod.named_parameters()}
    biases = {n for n, _ in ae.named_parameters() if n.endswith(".bias")}
    assert norms and set(no_decay["param_names"]) == norms | biases
    assert all(n.endswith(".weight") and n not in norms for n in decay["param_names"])
    assert trainer.optimizers["main"].param_groups[0]["lr"] == pytest.approx(1e-3)  # constant


def test_reconstruct_is_the_clamped_decoding_of_the_posterior_mean():
    torch.manual_seed(0)
    ae = VideoAutoencoder(kl_f4_tiny()).eval()
    with torch.no_grad():
        ae.decoder.conv_out.weight.mul_(30)  # outputs beyond [-1, 1], so that the clamp is seen
    x = DATA.batch(2, seed=0).video
    recon = ae.reconstruct(x)
    with torch.no_grad():
        raw = ae.decode(ae.encode(x).mean)
    assert recon.shape == x.shape and raw.abs().max() > 1
    torch.testing.assert_close(recon, raw.clamp(-1, 1))
