"""Tests of vgcourse.dit.generation: the text-conditioned DiT, the masked DiT that continues given frames, and the
training masks of continuation."""

from __future__ import annotations

import pytest
import torch

from vgcourse.data import tokenize
from vgcourse.diffusion import Continuation, extend, linear_schedule
from vgcourse.dit import DiT, DiTConfig
from vgcourse.dit.generation import MaskedDiT, TextDiT, random_context


def tiny_text_dit(channels: int = 3) -> TextDiT:
    torch.manual_seed(0)
    cfg = DiTConfig(input_size=8, frames=4, in_channels=channels, num_classes=0, patch_size=4, temporal_patch=2,
                    depth=2, hidden_size=32, num_heads=2, attention_layout="factorised")
    return TextDiT(cfg, text_dim=16, text_layers=0)


def perturbed(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def test_text_dit_is_zero_at_init_and_listens_to_captions() -> None:
    model = tiny_text_dit()
    x, t = torch.randn(2, 3, 4, 8, 8), torch.tensor([3, 90])
    tokens = tokenize(["a red square moves left", "a blue circle moves up"])
    assert torch.equal(model(x, t, tokens), torch.zeros_like(x))
    model = perturbed(model)
    with_caption, without = model(x, t, tokens), model(x, t)
    assert with_caption.shape == x.shape
    assert not torch.allclose(with_caption, without)
    assert torch.equal(model(x, t, tokens), with_caption)  # eval: no caption dropout
    other = model(x, t, tokenize(["a green triangle moves right"] * 2))
    assert not torch.allclose(other, with_caption)
    # another grid (T=2, 8×12) gets its positions on the fly
    assert model(torch.randn(1, 3, 2, 8, 12), torch.tensor([5]), tokens[:1]).shape == (1, 3, 2, 8, 12)


def test_text_dit_rejects_labels_and_bad_tokens() -> None:
    with pytest.raises(ValueError, match="num_classes=0"):
        TextDiT(DiTConfig(input_size=8, frames=2, in_channels=1, num_classes=10, hidden_size=32, num_heads=2))
    with pytest.raises(ValueError, match="caption tokens"):
        tiny_text_dit()(torch.randn(2, 3, 4, 8, 8), torch.tensor([1, 2]), tokenize(["a red square moves left"]))


# ---- continuation with clean context (MaskedDiT) ------------------------------------------------------------
def test_dit_cond_channels_enter_the_patches_and_are_not_predicted():
    from vgcourse.dit import flops_per_forward, measured_flops_per_forward
    cfg = DiTConfig(input_size=8, frames=4, in_channels=2, patch_size=2, hidden_size=32, depth=1, num_heads=2,
                    num_classes=0, cond_channels=1)
    model = DiT(cfg)
    x = torch.randn(3, 2, 4, 8, 8)
    assert model(x, torch.zeros(3, dtype=torch.long)).shape == x.shape  # C out, not C + 1
    assert model.x_embedder.proj.in_channels == 3
    torch.nn.init.normal_(model.final_layer.linear.weight, std=0.1)
    torch.nn.init.normal_(model.final_layer.adaLN_modulation[-1].weight, std=0.1)
    for block in model.blocks:
        torch.nn.init.normal_(block.adaLN_modulation[-1].weight, std=0.1)
    t = torch.full((3,), 10)
    ones = torch.ones(3, 1, 4, 8, 8)
    assert not torch.allclose(model(x, t, concat=ones), model(x, t))  # the channel is read
    torch.testing.assert_close(model(x, t, concat=torch.zeros_like(ones)), model(x, t))  # None = zeros
    with pytest.raises(ValueError, match="cond_channels"):
        model(x, t, concat=torch.ones(3, 2, 4, 8, 8))
    plain = DiTConfig(**{**vars(cfg), "cond_channels": 0})
    assert flops_per_forward(cfg) > flops_per_forward(plain)
    # exact: the condition channel adds only 0.7% of the FLOPs, which a loose tolerance would not see
    assert flops_per_forward(cfg) == pytest.approx(measured_flops_per_forward(cfg), rel=1e-9)


def test_random_context_gives_leading_frames_to_some_clips():
    mask = random_context(4000, 8, 3, p_context=0.3, generator=torch.Generator().manual_seed(0))
    m = mask[:, 0, :, 0, 0]  # (B, T)
    k = m.sum(1)
    assert set(k.unique().tolist()) == {0, 1, 2, 3}
    assert abs((k > 0).float().mean().item() - 0.3) < 0.03
    assert torch.equal(m, (torch.arange(8)[None] < k[:, None]).float())  # always the leading frames
    with pytest.raises(ValueError, match="max_context"):
        random_context(2, 4, 4)


def test_text_dit_with_a_mask_channel_reads_caption_and_frames():
    torch.manual_seed(0)
    cfg = DiTConfig(input_size=8, frames=4, in_channels=3, num_classes=0, patch_size=4, temporal_patch=2, depth=2,
                    hidden_size=32, num_heads=2, cond_channels=1)
    model = perturbed(TextDiT(cfg, text_dim=16, text_layers=0))
    x, t = torch.randn(2, 3, 4, 8, 8), torch.tensor([3, 90])
    tokens = tokenize(["a red square moves left", "a blue circle moves up"])
    mask = torch.zeros(2, 1, 4, 1, 1)
    mask[:, :, :2] = 1
    both = model(x, t, Continuation(tokens, mask))
    assert not torch.allclose(both, model(x, t, tokens))  # the mask is read
    assert not torch.allclose(both, model(x, t, Continuation(None, mask)))  # and the caption
    torch.testing.assert_close(model(x, t, Continuation(tokens, torch.zeros_like(mask))), model(x, t, tokens))
    half = Continuation(tokens, mask)[1:]
    torch.testing.assert_close(model(x[1:], t[1:], half), both[1:])
    assert Continuation(tokens, mask).unconditional().tokens is None
    with pytest.raises(ValueError, match="frame mask"):
        model(x, t, Continuation(tokens, torch.zeros(2, 1, 3, 1, 1)))
    with pytest.raises(ValueError, match="cond_channels=1"):
        tiny_text_dit()(x, t, Continuation(tokens, mask))  # no mask channel
    with pytest.raises(ValueError, match="cond_channels 0 or 1"):
        TextDiT(DiTConfig(**{**vars(cfg), "cond_channels": 2}))


def test_masked_dit_reads_its_mask():
    cfg = DiTConfig(input_size=8, frames=4, in_channels=1, patch_size=2, hidden_size=32, depth=1, num_heads=2,
                    num_classes=0, cond_channels=1)
    model = MaskedDiT(cfg)
    torch.nn.init.normal_(model.dit.final_layer.linear.weight, std=0.1)
    torch.nn.init.normal_(model.dit.final_layer.adaLN_modulation[-1].weight, std=0.1)
    x, t = torch.randn(2, 1, 4, 8, 8), torch.full((2,), 5)
    mask = torch.zeros(2, 1, 4, 1, 1)
    mask[:, :, :2] = 1
    assert not torch.allclose(model(x, t, mask), model(x, t))
    torch.testing.assert_close(model(x, t, torch.zeros_like(mask)), model(x, t))
    torch.testing.assert_close(model(x, t, Continuation(None, mask)), model(x, t, mask))
    with pytest.raises(ValueError, match="no caption"):
        model(x, t, Continuation(torch.zeros(2, 3, dtype=torch.long), mask))
    with pytest.raises(ValueError, match="mask"):
        model(x, t, torch.zeros(2, 1, 3, 1, 1))
    with pytest.raises(ValueError, match="cond_channels=1"):
        MaskedDiT(DiTConfig(**{**vars(cfg), "cond_channels": 0}))


def test_a_masked_dit_continues_a_clip_through_extend():
    """The DiT end to end with the package's extension (any model): clean context in, the given frames kept."""
    torch.manual_seed(0)
    cfg = DiTConfig(input_size=8, frames=4, in_channels=1, patch_size=4, temporal_patch=2, hidden_size=32, depth=1,
                    num_heads=2, num_classes=0, cond_channels=1)
    model = perturbed(MaskedDiT(cfg))
    clip = torch.rand(2, 1, 4, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    long_clip, seams = extend(model, clip, linear_schedule(100), total_frames=7, context=2, steps=3,
                              generator=torch.Generator().manual_seed(1), clean_context=True)
    assert long_clip.shape == (2, 1, 7, 8, 8) and seams == [4, 6]
    assert torch.equal(long_clip[:, :, :4], clip)
    assert long_clip.abs().max() <= 1.0 and not torch.equal(long_clip[:, :, 4], long_clip[:, :, 3])
