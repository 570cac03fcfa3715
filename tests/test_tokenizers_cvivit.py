"""Phenaki's causal C-ViViT: shapes, causality in time (encoder and decoder), the shared blocks, errors, learning."""

from __future__ import annotations

import pytest
import torch
from overfitting import moving_squares, overfit

from vgcourse.nn.transformer import Block
from vgcourse.tokenizers import CViViT, CViViTConfig, cvivit_digits, cvivit_tiny, vq_loss


def _video(b, c, t, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, t, h, w, generator=g) * 2 - 1


@pytest.mark.parametrize("frames", [1, 3, 7])
def test_shapes_first_frame_alone_then_tubelets(frames):
    torch.manual_seed(0)
    model = CViViT(cvivit_tiny()).eval()  # 16×16 frames, patches 4×4, tubelets of 2 frames
    x = _video(2, 1, frames, 16, 16)
    steps = 1 + (frames - 1) // 2
    idx = model.encode(x)
    assert idx.shape == (2, steps, 4, 4) and idx.dtype == torch.long
    assert model.latent_shape(frames, 16, 16) == (steps, 4, 4) and model.frames_for(steps) == frames
    assert model.tokens_per_clip(frames, 16, 16) == steps * 16
    recon, vq = model(x)
    assert recon.shape == x.shape and vq.quantized.shape == (2, steps, 4, 4, 8)
    torch.testing.assert_close(model.decode_indices(idx), recon)  # eval: decode(encode(x)) is the forward


def test_patchify_embeds_the_first_frame_and_each_tubelet_as_one_vector():
    torch.manual_seed(0)
    model = CViViT(cvivit_tiny())
    x = _video(1, 1, 5, 16, 16)
    tokens = model.patchify(x)  # (1, 3, 4, 4, D)
    first_patch = x[0, 0, 0, 4:8, 8:12].reshape(-1)  # row 1, column 2 of the first frame
    torch.testing.assert_close(tokens[0, 0, 1, 2], model.embed_first(first_patch))
    tube = x[0, 0, 3:5, 0:4, 4:8].reshape(-1)  # the second tubelet (frames 3-4), row 0, column 1: (pt, p, p)
    torch.testing.assert_close(tokens[0, 2, 0, 1], model.embed_rest(tube))


def test_tokens_of_the_first_steps_ignore_later_frames():
    """The C-ViViT is causal in time: codes of time step k see frames ≤ 1 + (k − 1)·pt only (Phenaki, §2.1)."""
    torch.manual_seed(0)
    model = CViViT(cvivit_tiny()).eval()
    x = _video(2, 1, 7, 16, 16)  # steps: frame 0 | frames 1-2 | frames 3-4 | frames 5-6
    for k in (1, 2, 3):  # keep the first k steps' frames, change every later frame
        y = x.clone()
        y[:, :, model.frames_for(k):] = _video(2, 1, 7 - model.frames_for(k), 16, 16, seed=k)
        zx, zy = model.quantize(x), model.quantize(y)
        assert torch.equal(zx.indices[:, :k], zy.indices[:, :k])
        torch.testing.assert_close(zx.quantized[:, :k], zy.quantized[:, :k], rtol=0, atol=0)
        assert not torch.equal(zx.quantized[:, k:], zy.quantized[:, k:])
    # not vacuous: a change in the first frame reaches every later step (the temporal transformer carries it)
    y = x.clone()
    y[:, :, 0] = -x[:, :, 0]
    before = model.enc_norm.register_forward_hook(lambda m, i, o: captured.append(o))
    captured: list[torch.Tensor] = []
    model.quantize(x), model.quantize(y)
    before.remove()
    moved = (captured[0] - captured[1]).abs().reshape(2, 4, 16, -1).sum((2, 3))  # (B, steps)
    assert (moved > 0).all()


def test_decoded_first_frames_depend_on_the_first_codes_only():
    torch.manual_seed(0)
    model = CViViT(cvivit_tiny()).eval()
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 32, (2, 4, 4, 4), generator=g)
    later = idx.clone()
    later[:, 2:] = torch.randint(0, 32, (2, 2, 4, 4), generator=g)
    a, b = model.decode_indices(idx), model.decode_indices(later)
    frames = model.frames_for(2)  # frames 0-2 come from steps 0 and 1
    torch.testing.assert_close(a[:, :, :frames], b[:, :, :frames], rtol=0, atol=0)
    assert not torch.allclose(a[:, :, frames:], b[:, :, frames:])


def test_built_on_the_shared_blocks_spatial_then_causal_temporal():
    model = CViViT(cvivit_tiny(spatial_depth=2, temporal_depth=3))
    for stack, step, causal in [(model.enc_spatial, "spatial", False), (model.enc_temporal, "temporal", True),
                                (model.dec_temporal, "temporal", True), (model.dec_spatial, "spatial", False)]:
        assert all(isinstance(b, Block) and b.attn.step == step and b.attn.causal == causal for b in stack)
    assert len(model.enc_spatial) == 2 and len(model.dec_temporal) == 3
    digits = CViViT(cvivit_digits())
    assert digits.latent_shape(16, 32, 32) == (4, 8, 8) and digits.tokens_per_clip(16, 32, 32) == 256


def test_errors_say_what_was_expected():
    model = CViViT(cvivit_tiny())
    with pytest.raises(ValueError, match=r"1 \+ n·2 frames of 16×16"):
        model.encode(_video(1, 1, 4, 16, 16))
    with pytest.raises(ValueError, match=r"1 \+ n·2 frames of 16×16"):
        model.encode(_video(1, 1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\[0, 32\)"):
        model.decode_indices(torch.full((1, 2, 4, 4), 32))
    with pytest.raises(ValueError, match="divisible by patch_size"):
        CViViTConfig(image_size=30, patch_size=4)


def test_a_training_step_traces_as_one_graph():
    torch.manual_seed(0)
    model = CViViT(cvivit_tiny()).train()
    explained = torch._dynamo.explain(lambda x: vq_loss(model, x)["loss"])(_video(2, 1, 5, 16, 16))
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons


def test_overfits_a_tiny_set_on_the_cpu():
    torch.manual_seed(0)
    x = moving_squares(frames=5, seed=2, wrap=False)
    model = CViViT(cvivit_tiny(dim=64, codebook_size=64))
    first, final = overfit(model, x, lr=2e-3, steps=150)
    assert final < first / 10
