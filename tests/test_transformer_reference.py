"""Every model built on vgcourse.nn.transformer gives the outputs it gave before the rebuild.

``tests/data/transformer_reference.pt`` holds the outputs of DiTs (each attention layout; class labels, a context
vector, concatenated channels, classifier-free guidance), TextDiT, MaskedDiT, the caption encoder, the U-Net's
attention blocks and the VQ-VAE's axial attention, computed by the code *before* these models were rebuilt on the
shared blocks (each model built with its own attention then). Weights are set by parameter name from fixed seeds,
so that a renamed parameter fails the test as surely as a changed computation. Regenerate (only when a change of
outputs is intended) with ``PYTHONPATH=. python tests/test_transformer_reference.py``. A last test holds the DiT to
one SDPA call per block (its speed on a GPU rests on those calls).
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Callable
from unittest import mock

import pytest
import torch
from torch import nn

from vgcourse.autoencoders.vq import AttentionResBlock
from vgcourse.diffusion import Continuation
from vgcourse.diffusion.unet import JointSpaceTimeAttention, SpatialAttention, TemporalAttention
from vgcourse.dit import DiT, DiTConfig
from vgcourse.dit.generation import MaskedDiT, TextDiT
from vgcourse.nn import CaptionEncoder

REFERENCE = Path(__file__).parent / "data" / "transformer_reference.pt"
SMALL = dict(input_size=8, frames=4, in_channels=2, patch_size=2, temporal_patch=2, hidden_size=32, depth=2,
             num_heads=2, num_classes=0)


def named_weights(model: nn.Module) -> nn.Module:
    """Every tensor of the state dict drawn from a generator seeded by its name; returns the model in eval mode."""
    with torch.no_grad():
        for name, p in model.state_dict().items():
            if not p.is_floating_point():
                continue
            g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
            scale = 0.1 if p.ndim < 2 else 0.6 / p[0].numel() ** 0.5
            p.copy_(torch.randn(p.shape, generator=g) * scale)
    return model.eval()


def _draw(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _video(cfg: DiTConfig, seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    x = _draw(2, cfg.in_channels, cfg.frames, cfg.input_size, cfg.input_size, seed=seed)
    return x, torch.tensor([3, 711])


def _dit(**kw) -> tuple[DiT, DiTConfig]:
    cfg = DiTConfig(**{**SMALL, **kw})
    return named_weights(DiT(cfg)), cfg


def case_dit_full_labels() -> torch.Tensor:
    model, cfg = _dit(num_classes=3, learn_sigma=True)
    x, t = _video(cfg)
    return model(x, t, torch.tensor([0, 2]))


def case_dit_full_cfg() -> torch.Tensor:
    model, cfg = _dit(num_classes=3, learn_sigma=True)
    x, t = _video(cfg)
    return model.forward_with_cfg(x, t, torch.tensor([1, 2]), cfg_scale=3.0)


def case_dit_factorised_context() -> torch.Tensor:
    model, cfg = _dit(attention_layout="factorised")
    x, t = _video(cfg)
    return model(x, t, context=_draw(2, cfg.hidden_size, seed=2))


def case_dit_window_concat() -> torch.Tensor:
    model, cfg = _dit(attention_layout="window", window_size=2, temporal_window=1, cond_channels=2, depth=3)
    x, t = _video(cfg)
    return model(x, t, concat=_draw(2, 2, *x.shape[2:], seed=3))


def case_dit_window_whole_clip_other_grid() -> torch.Tensor:
    model, cfg = _dit(attention_layout="window", window_size=2)
    x = _draw(2, cfg.in_channels, 2, 4, 8, seed=4)  # not the configured grid: positions computed in forward
    return model(x, torch.tensor([5, 6]))


def case_text_dit() -> torch.Tensor:
    model = named_weights(TextDiT(DiTConfig(**SMALL), text_dim=32, text_layers=2))
    x, t = _video(model.config)
    tokens = torch.tensor([[3, 5, 7, 2, 0, 0], [4, 4, 1, 6, 8, 9]])
    return torch.cat([model(x, t, tokens), model(x, t, None)])


def case_text_dit_continuation() -> torch.Tensor:
    model = named_weights(TextDiT(DiTConfig(**{**SMALL, "cond_channels": 1}), text_dim=32, text_layers=1))
    x, t = _video(model.config)
    mask = torch.tensor([1.0, 0, 0, 0]).view(1, 1, 4, 1, 1).expand(2, 1, 4, 1, 1)
    return model(x, t, Continuation(torch.tensor([[3, 5, 0], [2, 2, 2]]), mask))


def case_masked_dit() -> torch.Tensor:
    model = named_weights(MaskedDiT(DiTConfig(**{**SMALL, "cond_channels": 1, "attention_layout": "factorised"})))
    x, t = _video(model.config)
    mask = torch.tensor([1.0, 1, 0, 0]).view(1, 1, 4, 1, 1).expand(2, 1, 4, 1, 1)
    return torch.cat([model(x, t, mask), model(x, t)])


def case_caption_encoder() -> torch.Tensor:
    model = named_weights(CaptionEncoder(dim=32, layers=2, heads=4))
    return model(torch.tensor([[3, 5, 7, 2, 0, 0], [4, 0, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6]]))


def case_caption_encoder_bag_of_words() -> torch.Tensor:
    model = named_weights(CaptionEncoder(dim=32, layers=0))
    return model(torch.tensor([[3, 5, 7, 2, 0, 0], [4, 0, 0, 0, 0, 0]]))


def case_unet_spatial_attention() -> torch.Tensor:
    model = named_weights(SpatialAttention(32, heads=4, groups=8, emb_dim=16))
    return model(_draw(6, 32, 4, 4, seed=5), _draw(6, 16, seed=6))


def case_unet_temporal_attention() -> torch.Tensor:
    model = named_weights(TemporalAttention(32, heads=4, groups=8, max_frames=3, frame_positions=True))
    x = _draw(8, 32, 2, 3, seed=7)  # B = 2 clips of T = 4 frames
    outs = [model(x, 4, True), model(x, 4, False), model(x, 4, torch.tensor([True, False]))]
    return torch.cat(outs)


def case_unet_joint_attention() -> torch.Tensor:
    model = named_weights(JointSpaceTimeAttention(32, heads=2, groups=8, emb_dim=16))
    x, emb = _draw(6, 32, 2, 4, seed=8), _draw(6, 16, seed=9)  # B = 2 clips of T = 3 frames
    return torch.cat([model(x, 3, True, emb), model(x, 3, False, emb), model(x, 3, torch.tensor([False, True]), emb)])


def case_vq_axial_attention() -> torch.Tensor:
    model = named_weights(AttentionResBlock(32, heads=2, groups=8))
    return model(_draw(2, 32, 2, 3, 4, seed=10))


CASES: dict[str, Callable[[], torch.Tensor]] = {
    name[len("case_"):]: fn for name, fn in globals().items() if name.startswith("case_")}


def compute() -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return {name: fn().float() for name, fn in CASES.items()}


@pytest.mark.parametrize("name", list(CASES))
def test_outputs_equal_the_reference(name: str) -> None:
    reference = torch.load(REFERENCE, weights_only=True)
    assert set(reference) == set(CASES)
    with torch.no_grad():
        out = CASES[name]().float()
    assert out.shape == reference[name].shape
    assert out.abs().mean() > 1e-2  # the case reaches its output (no zero-initialised branch left)
    torch.testing.assert_close(out, reference[name], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("layout", ["full", "factorised", "window"])
def test_dit_calls_sdpa_once_per_block_on_views_of_its_qkv(layout: str) -> None:
    """The rebuilt DiT stays as fast: one SDPA call per block, on q, k, v that full attention does not copy."""
    model, cfg = _dit(attention_layout=layout, window_size=2, depth=4)
    x, t = _video(cfg)
    calls = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def counted(q, k, v, **kw):
        calls.append(q)
        return sdpa(q, k, v, **kw)

    with mock.patch("torch.nn.functional.scaled_dot_product_attention", counted), torch.no_grad():
        model(x, t)
    assert len(calls) == cfg.depth
    if layout == "full":
        assert all(q._base is not None for q in calls)  # views of the qkv projection's output, not copies


if __name__ == "__main__":
    torch.set_num_threads(1)
    REFERENCE.parent.mkdir(exist_ok=True)
    torch.save(compute(), REFERENCE)
    print(f"wrote {REFERENCE}: {len(CASES)} cases")
