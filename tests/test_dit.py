"""Tests of vgcourse.dit: the paper's parameter and Gflops tables, adaLN-Zero at init, patching, CFG, positions."""

from __future__ import annotations

from dataclasses import replace
from unittest import mock

import numpy as np
import pytest
import torch
from torch import nn

from vgcourse.dit import (
    DIT_CONFIGS,
    PAPER_GFLOPS,
    PAPER_IMAGENET_256,
    PAPER_PARAMS_M,
    DiT,
    DiT_S_8,
    DiT_Tiny,
    DiT_XL_2,
    DiTConfig,
    PatchEmbed3D,
    flops_per_forward,
    measured_flops_per_forward,
    num_parameters,
    patchify,
    sincos_1d,
    sincos_2d,
    sincos_3d,
    unpatchify,
)

VIDEO = dict(input_size=16, frames=8, in_channels=4, temporal_patch=2, num_classes=10, depth=2)


def perturbed(model: DiT, seed: int = 0) -> DiT:
    """Give every parameter (the zero-initialised ones included) small random values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=g))
    return model


def inputs(cfg: DiTConfig, b: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, cfg.in_channels, cfg.frames, cfg.input_size, cfg.input_size, generator=g)
    t = torch.randint(0, 1000, (b,), generator=g)
    y = torch.randint(0, cfg.num_classes, (b,), generator=g)
    return x, t, y


# ---------------------------------------------------------------- faithfulness to the paper
@pytest.mark.parametrize("name", list(DIT_CONFIGS))
def test_paper_params_and_gflops(name: str) -> None:
    cfg = DIT_CONFIGS[name](**PAPER_IMAGENET_256)
    size = name.split("-")[1].split("/")[0]
    params_m = num_parameters(cfg) / 1e6
    assert abs(params_m / PAPER_PARAMS_M[size] - 1) < 0.01, (name, params_m)
    gflops = flops_per_forward(cfg)
    assert abs(gflops / PAPER_GFLOPS[name] - 1) < 0.02, (name, gflops, PAPER_GFLOPS[name])


def test_xl2_is_675m_and_118_6_gflops() -> None:
    cfg = DiT_XL_2(**PAPER_IMAGENET_256)
    assert round(num_parameters(cfg) / 1e6) == 675
    assert round(flops_per_forward(cfg), 1) == 118.6


@pytest.mark.parametrize("cfg", [DiT_S_8(**PAPER_IMAGENET_256), DiT_Tiny(**VIDEO),
                                 DiT_Tiny(**VIDEO, attention_layout="factorised"),
                                 DiT_Tiny(**VIDEO, attention_layout="window", window_size=4, temporal_window=2)],
                         ids=["S/8", "tiny-video-full", "tiny-video-factorised", "tiny-video-window"])
def test_analytic_flops_equal_flop_counter(cfg: DiTConfig) -> None:
    assert flops_per_forward(cfg) == pytest.approx(measured_flops_per_forward(cfg), rel=1e-9)


def test_patch_size_and_layout_change_flops_not_params() -> None:
    s2, s8 = DIT_CONFIGS["DiT-S/2"](**PAPER_IMAGENET_256), DiT_S_8(**PAPER_IMAGENET_256)
    assert flops_per_forward(s2) > 15 * flops_per_forward(s8)  # 16× the tokens
    assert abs(num_parameters(s2) / num_parameters(s8) - 1) < 0.01
    full, fact = DiT_Tiny(**VIDEO), DiT_Tiny(**VIDEO, attention_layout="factorised")
    assert num_parameters(full) == num_parameters(fact) and flops_per_forward(full) > flops_per_forward(fact)


# ---------------------------------------------------------------- adaLN-Zero initialisation
def test_blocks_are_identity_and_output_is_zero_at_init() -> None:
    torch.manual_seed(0)
    cfg = DiT_Tiny(**VIDEO)
    model = DiT(cfg).eval()
    x, t, y = inputs(cfg)
    tokens = torch.randn(2, 4 * 8 * 8, cfg.hidden_size)
    c = model.t_embedder(t) + model.y_embedder(y, train=False)
    for block in model.blocks:
        assert torch.equal(block(tokens, c, cfg.grid), tokens)
    out = model(x, t, y)
    assert out.shape == x.shape and torch.count_nonzero(out) == 0


def test_learn_sigma_doubles_output_channels() -> None:
    cfg = DiT_Tiny(**VIDEO, learn_sigma=True)
    x, t, y = inputs(cfg)
    assert DiT(cfg)(x, t, y).shape == (2, 8, 8, 16, 16)


# ---------------------------------------------------------------- shapes and patching
def test_video_output_shape() -> None:
    cfg = DiT_Tiny(**VIDEO)
    assert (cfg.temporal_patch, cfg.patch_size, cfg.grid) == (2, 2, (4, 8, 8))
    model = perturbed(DiT(cfg))
    x, t, y = inputs(cfg)
    out = model(x, t, y)
    assert out.shape == (2, 4, 8, 16, 16) and torch.isfinite(out).all() and out.abs().sum() > 0


def test_images_are_one_frame_videos() -> None:
    cfg = DiT_Tiny(input_size=8, frames=1, in_channels=3, num_classes=5, depth=1)
    model = perturbed(DiT(cfg))
    x, t, y = inputs(cfg, b=3)
    assert model(x, t, y).shape == (3, 3, 1, 8, 8)


def test_patchify_unpatchify_round_trip_is_exact() -> None:
    x = torch.randn(2, 3, 6, 8, 12)
    tokens = patchify(x, pt=2, p=4)
    assert tokens.shape == (2, 3 * 2 * 3, 2 * 4 * 4 * 3)
    assert torch.equal(unpatchify(tokens, (3, 2, 3), pt=2, p=4), x)


def test_tubelet_embedding_is_a_linear_map_of_patchified_tubelets() -> None:
    torch.manual_seed(0)
    embed = PatchEmbed3D(in_channels=3, hidden_size=16, patch_size=2, temporal_patch=2)
    x = torch.randn(2, 3, 4, 6, 6)
    w = embed.proj.weight  # (D, C, pt, p, p) -> (D, pt·p·p·C), the order of patchify
    linear = patchify(x, 2, 2) @ w.permute(0, 2, 3, 4, 1).reshape(16, -1).T + embed.proj.bias
    assert torch.allclose(embed(x), linear, atol=1e-5)


def test_other_grid_sizes_use_their_own_positions() -> None:
    cfg = DiT_Tiny(**VIDEO)
    model = perturbed(DiT(cfg)).eval()
    assert torch.equal(model.pos_embed, sincos_3d(cfg.hidden_size, cfg.grid))
    x, t, y = inputs(cfg)
    assert model(x[:, :, :4, :8, :12], t, y).shape == (2, 4, 4, 8, 12)


# ---------------------------------------------------------------- conditioning and guidance
def test_conditioning_changes_output_after_perturbation() -> None:
    cfg = DiT_Tiny(**VIDEO)
    model = perturbed(DiT(cfg)).eval()
    x, t, _ = inputs(cfg)
    y0, y1 = torch.zeros(2, dtype=torch.long), torch.ones(2, dtype=torch.long)
    base = model(x, t, y0)
    assert torch.equal(base, model(x, t, y0))  # deterministic in eval
    assert (base - model(x, t, y1)).abs().max() > 1e-3
    assert (base - model(x, t + 100, y0)).abs().max() > 1e-3


def test_cfg_matches_conditional_and_unconditional_passes() -> None:
    cfg = DiT_Tiny(**VIDEO, learn_sigma=True)
    model = perturbed(DiT(cfg)).eval()
    x, t, y = inputs(cfg)
    cond, uncond = model(x, t, y), model(x, t, None)
    guided = model.forward_with_cfg(x, t, y, cfg_scale=4.0)
    assert guided.shape == (2, 8, 8, 16, 16)
    assert torch.allclose(guided[:, :4], uncond[:, :4] + 4.0 * (cond[:, :4] - uncond[:, :4]), atol=1e-4)
    assert torch.allclose(guided[:, 4:], cond[:, 4:], atol=1e-5)
    assert torch.allclose(model.forward_with_cfg(x, t, y, cfg_scale=1.0), cond, atol=1e-5)


def test_label_dropout_uses_the_null_class_in_training_only() -> None:
    cfg = DiT_Tiny(**VIDEO, class_dropout_prob=1.0)
    model = perturbed(DiT(cfg))
    x, t, y = inputs(cfg)
    model.eval()
    uncond, cond = model(x, t, None), model(x, t, y)
    model.train()
    assert torch.allclose(model(x, t, y), uncond, atol=1e-6) and not torch.allclose(cond, uncond, atol=1e-3)


def test_bf16_autocast_forward() -> None:
    cfg = DiT_Tiny(**VIDEO)
    model = perturbed(DiT(cfg)).eval()
    x, t, y = inputs(cfg)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, t, y)
    assert out.shape == x.shape and torch.isfinite(out).all()
    assert (out.float() - model(x, t, y)).abs().max() < 0.1 * model(x, t, y).abs().max()


# ---------------------------------------------------------------- errors
def test_errors_say_what_was_expected() -> None:
    model = DiT(DiT_Tiny(**VIDEO))
    t, y = torch.zeros(2), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match=r"H, W divisible by patch_size=2, got .*\(2, 4, 8, 15, 16\)"):
        model(torch.randn(2, 4, 8, 15, 16), t, y)
    with pytest.raises(ValueError, match=r"T divisible by temporal_patch=2.*\(2, 4, 7, 16, 16\)"):
        model(torch.randn(2, 4, 7, 16, 16), t, y)
    with pytest.raises(ValueError, match=r"C=4 channels.*\(2, 3, 8, 16, 16\)"):
        model(torch.randn(2, 3, 8, 16, 16), t, y)
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\), got \(2, 4, 16, 16\) \(images\?"):
        model(torch.randn(2, 4, 16, 16), t, y)
    with pytest.raises(ValueError, match=r"labels y of shape \(2,\) and dtype long"):
        model(torch.randn(2, 4, 8, 16, 16), t, y.float())
    with pytest.raises(ValueError, match="input_size divisible by patch_size"):
        DiTConfig(input_size=30, patch_size=4)
    with pytest.raises(ValueError, match="hidden_size divisible by num_heads and by 16"):
        DiTConfig(hidden_size=72, num_heads=6)
    with pytest.raises(ValueError, match="attention_layout in"):
        DiTConfig(attention_layout="sparse")


# ---------------------------------------------------------------- positions
def test_sincos_1d_closed_form() -> None:
    emb = sincos_1d(8, torch.tensor([0.0, 2.0]))
    assert torch.equal(emb[0], torch.tensor([0.0] * 4 + [1.0] * 4))
    omega = torch.tensor([1.0, 0.1, 0.01, 0.001], dtype=torch.float64)  # 1 / 10000^(2i/8)
    expected = torch.cat([torch.sin(2 * omega), torch.cos(2 * omega)]).float()
    assert torch.allclose(emb[1], expected, atol=1e-6)


def dit_reference_2d(dim: int, h: int, w: int) -> np.ndarray:
    """DiT's 2D table (Peebles & Xie 2023; facebookresearch/DiT, get_2d_sincos_pos_embed) restated in numpy.

    The reference's meshgrid takes the column coordinates first, so its first half of the channels embeds the
    column and its second half the row. Each half is [sin(p·ω), cos(p·ω)] over D/4 frequencies
    ω_i = 10000^(−i / (D/4)). Tokens are read row by row. Returns (H·W, D) float64.
    """
    col, row = np.meshgrid(np.arange(w, dtype=np.float64), np.arange(h, dtype=np.float64))  # (H, W) each

    def half(p: np.ndarray) -> np.ndarray:
        k = dim // 4
        angle = np.outer(p.ravel(), 10000.0 ** (-np.arange(k) / k))  # (H·W, D/4)
        return np.concatenate([np.sin(angle), np.cos(angle)], axis=1)  # (H·W, D/2)

    return np.concatenate([half(col), half(row)], axis=1)  # (H·W, D)


@pytest.mark.parametrize("dim, grid", [(16, (3, 5)), (32, (1, 6)), (64, (8, 8)), (384, (4, 7)), (1152, (16, 16))])
def test_sincos_2d_is_the_dit_reference_table(dim: int, grid: tuple[int, int]) -> None:
    ours = sincos_2d(dim, grid)
    assert ours.shape == (grid[0] * grid[1], dim) and ours.dtype == torch.float32
    np.testing.assert_allclose(ours.numpy(), dit_reference_2d(dim, *grid), rtol=0, atol=1e-6)


def test_sincos_2d_puts_the_column_first() -> None:
    d, (h, w) = 16, (3, 5)
    rows, cols = torch.arange(h).repeat_interleave(w), torch.arange(w).repeat(h)
    emb = sincos_2d(d, (h, w))
    assert torch.equal(emb[:, :d // 2], sincos_1d(d // 2, cols))  # the column w first, as DiT's table
    assert torch.equal(emb[:, d // 2:], sincos_1d(d // 2, rows))
    with pytest.raises(ValueError, match="D divisible by 4, got D=18"):
        sincos_2d(18, (h, w))


@pytest.mark.parametrize("name", list(DIT_CONFIGS))
def test_one_frame_table_has_no_constant_channel(name: str) -> None:
    cfg = replace(DIT_CONFIGS[name](**PAPER_IMAGENET_256), depth=1)  # the paper's width and grid, one block
    d, grid = cfg.hidden_size, cfg.grid  # (1, H', W')
    table = DiT(cfg).pos_embed  # (H'·W', D)
    spread = table.amax(0) - table.amin(0)  # (D,): each channel's range over the tokens
    assert (spread > 0).all(), f"{int((spread == 0).sum())} constant channels"
    old = sincos_3d(d, grid)  # the 3D table at T' = 1: its t slice (D/4 channels) is the constant t = 0
    assert int((old.amax(0) == old.amin(0)).sum()) == d // 4


def test_image_dit_uses_the_2d_table() -> None:
    cfg = DiT_Tiny(input_size=16, frames=1, in_channels=3, num_classes=0, depth=1)  # grid (1, 8, 8), D = 64
    model = DiT(cfg)
    assert torch.equal(model.pos_embed, sincos_2d(cfg.hidden_size, (8, 8)))
    assert torch.equal(model.position_table((1, 4, 6)), sincos_2d(cfg.hidden_size, (4, 6)))  # another image size
    assert torch.equal(model.position_table((2, 4, 6)), sincos_3d(cfg.hidden_size, (2, 4, 6)))  # a clip: 3D
    x = torch.randn(2, 3, 1, 8, 12)
    with mock.patch.object(model, "position_table", wraps=model.position_table) as table:
        assert model(x, torch.tensor([1, 2])).shape == (2, 3, 1, 8, 12)
    table.assert_called_once_with((1, 4, 6), device=x.device)


def test_video_dit_keeps_the_3d_table_for_clips_and_images() -> None:
    cfg = DiT_Tiny(**VIDEO)  # grid (4, 8, 8)
    model = DiT(cfg)
    assert torch.equal(model.pos_embed, sincos_3d(cfg.hidden_size, (4, 8, 8)))
    # a one-frame input to a video model: frame 0 of the 3D table, as the images of joint image-video training see
    one_frame = model.position_table((1, 8, 8))
    assert torch.equal(one_frame, sincos_3d(cfg.hidden_size, (1, 8, 8)))
    assert torch.equal(one_frame, model.pos_embed[:64])


def test_sincos_3d_channel_split() -> None:
    d, grid = 32, (3, 4, 5)
    emb = sincos_3d(d, grid)
    assert emb.shape == (60, 32)
    t_idx = torch.arange(3).repeat_interleave(20)
    assert torch.equal(emb[:, :8], sincos_1d(8, t_idx))  # D/4 for t
    assert torch.equal(emb[:, 8:20], sincos_1d(12, torch.arange(4).repeat_interleave(5).repeat(3)))  # 3D/8 for h
    assert torch.equal(emb[:, 20:], sincos_1d(12, torch.arange(5).repeat(12)))  # 3D/8 for w
    assert torch.cdist(emb, emb).add(torch.eye(60)).min() > 0.1  # every token has its own position
    with pytest.raises(ValueError, match="D divisible by 16, got D=40"):
        sincos_3d(40, grid)


def test_meta_device_builds_paper_model_without_memory() -> None:
    with torch.device("meta"):
        model = DiT(DiT_XL_2(**PAPER_IMAGENET_256))
    assert all(p.is_meta for p in model.parameters())
    assert isinstance(model.blocks[0].mlp[1], nn.GELU) and model.blocks[0].mlp[1].approximate == "tanh"
