"""vgcourse.tokenizers: the vector quantizer's statistics and restarts, the VQ objective, 3D and per-frame VQ-VAEs.

(The VQ-VAE's original tests, from before it moved here, stay in test_autoencoders.py and run through the old path.)
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from overfitting import moving_squares, overfit

import vgcourse.autoencoders.vq as old_path
from vgcourse.checkpoint import load_checkpoint, save_checkpoint
from vgcourse.metrics.reconstruction import codebook_usage, psnr
from vgcourse.tokenizers import (
    AxialAttention,
    VectorQuantizer,
    VQVideoAutoencoder,
    VQVideoAutoencoderConfig,
    code_counts,
    load_tokenizer,
    shippable_state,
    usage_and_perplexity,
    videogpt_bair,
    vq_digits,
    vq_digits_per_frame,
    vq_loss,
    vq_tiny,
)


def _video(b, c, t, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, t, h, w, generator=g) * 2 - 1


# ---------------------------------------------------------------- quantizer

def test_counts_usage_and_perplexity_agree_with_the_metrics():
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 20, (3, 7, 5), generator=g)  # 20 of 32 codes at most
    counts = code_counts(idx, 32)
    assert counts.shape == (32,) and counts.sum() == idx.numel()
    assert torch.equal(counts, torch.bincount(idx.flatten(), minlength=32).float())
    ours = {k: float(v) for k, v in usage_and_perplexity(counts).items()}
    assert ours == pytest.approx(codebook_usage(idx, 32))
    assert usage_and_perplexity(torch.tensor([5.0, 0, 0, 0]))["perplexity"] == pytest.approx(1.0)


def test_restarts_report_and_replace_every_dead_code():
    torch.manual_seed(0)
    vq = VectorQuantizer(6, 2, decay=0.5, dead_code_threshold=1.0).train()
    vq.embedding.copy_(torch.tensor([[0.0, 0.0]] + [[100.0, float(i)] for i in range(5)]))
    vq.embed_sum.copy_(vq.embedding)
    z = 0.1 * torch.randn(40, 2)  # every vector lands on code 0
    _, idx, losses = vq(z)
    assert (idx == 0).all()
    # codes 1-5: N = 0.5·1 + 0.5·0 < 1, dead; code 0: N = 0.5 + 20 stays
    assert losses["restarted"].item() == 5
    for k in range(1, 6):
        assert (vq.embedding[k] - z).abs().sum(1).min() < 1e-6  # each now sits on an encoder output
        assert vq.embed_sum[k].tolist() == pytest.approx(vq.embedding[k].tolist())  # m_k = threshold · e_k
    assert vq.cluster_size[1:].tolist() == [1.0] * 5
    _, _, again = vq(z)
    assert again["restarted"].item() < 5  # restarted codes take vectors and survive
    assert vq.eval()(z).losses["restarted"].item() == 0  # nothing restarts outside training


def test_restarts_off_keep_dead_codes_where_they_are():
    vq = VectorQuantizer(4, 2, dead_code_threshold=0.0).train()
    before = vq.embedding[1:].clone()
    far = torch.full((16, 2), 50.0)
    vq.embedding[0] = 50.0
    vq.embed_sum[0] = 50.0
    _, idx, losses = vq(far)
    assert (idx == 0).all() and losses["restarted"].item() == 0
    # unused codes keep e = m / N: both decay by the same factor (up to the Laplace smoothing)
    torch.testing.assert_close(vq.embedding[1:], before, rtol=1e-3, atol=1e-3)


def test_vq_loss_is_the_scaled_mse_plus_the_commitment_term():
    torch.manual_seed(0)
    model = VQVideoAutoencoder(vq_tiny()).eval()
    x = _video(2, 1, 4, 16, 16)
    out = vq_loss(model, x)
    recon, vq = model(x)
    mse = F.mse_loss(recon, x)
    torch.testing.assert_close(out["recon"], mse)
    torch.testing.assert_close(out["loss"], mse / 0.06 + 0.25 * vq.losses["commitment"])
    torch.testing.assert_close(out["psnr"], 10 * torch.log10(4 / mse))
    assert psnr(recon, x).mean().item() >= out["psnr"].item() - 1e-4  # mean of per-clip PSNR ≥ PSNR of the mean MSE
    assert {"usage", "perplexity", "restarted", "commitment"} <= set(out)
    torch.testing.assert_close(vq_loss(model, x, recon_scale=1.0)["loss"], mse + 0.25 * vq.losses["commitment"])


def test_a_training_step_traces_as_one_graph():
    """No host sync in the forward (restarts, counts, input checks): torch.compile sees one graph."""
    torch.manual_seed(0)
    for cfg in (vq_tiny(), vq_tiny(downsample=(1, 4, 4), per_frame=True)):
        model = VQVideoAutoencoder(cfg).train()
        explained = torch._dynamo.explain(lambda x: vq_loss(model, x)["loss"])(_video(2, 1, 4, 16, 16))
        assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons


# ---------------------------------------------------------------- VQ-VAEs: 3D and per-frame tokens

def test_the_course_tokenizers_have_the_same_token_count_and_fit_a_small_checkpoint():
    three_d, per_frame = VQVideoAutoencoder(vq_digits()), VQVideoAutoencoder(vq_digits_per_frame())
    assert three_d.latent_shape(16, 32, 32) == (4, 8, 8) and per_frame.latent_shape(16, 32, 32) == (16, 4, 4)
    assert three_d.tokens_per_clip(16, 32, 32) == per_frame.tokens_per_clip(16, 32, 32) == 256
    params = sum(p.numel() for p in three_d.parameters()) + sum(b.numel() for b in three_d.buffers())
    assert 2 * params < 2.5e6  # in bf16, the shippable checkpoint stays under 2.5 MB
    with pytest.raises(ValueError, match=r"per-frame tokenizer keeps every frame"):
        VQVideoAutoencoderConfig(downsample=(2, 8, 8), per_frame=True)


def test_per_frame_tokens_see_one_frame_and_3d_tokens_see_several():
    torch.manual_seed(0)
    x = _video(2, 1, 4, 16, 16)
    y = x.clone()
    y[:, :, 2] = _video(2, 1, 1, 16, 16, seed=1)[:, :, 0]  # frame 2 changes
    per_frame = VQVideoAutoencoder(vq_tiny(downsample=(1, 4, 4), per_frame=True)).eval()
    zx, zy = per_frame.quantize(x), per_frame.quantize(y)
    assert zx.indices.shape == (2, 4, 4, 4)
    changed = (zx.quantized - zy.quantized).abs().flatten(2).sum(2)  # (B, T)
    assert (changed[:, 2] > 0).all() and (changed[:, [0, 1, 3]] == 0).all()
    rx, ry = per_frame.decode(zx.quantized), per_frame.decode(zy.quantized)
    assert torch.equal(rx[:, :, [0, 1, 3]], ry[:, :, [0, 1, 3]])  # each frame decoded from its own codes alone
    assert not hasattr(per_frame.encoder[-4].block[-1], "attn_t")  # attention along H and W only

    three_d = VQVideoAutoencoder(vq_tiny(downsample=(2, 4, 4))).eval()
    zx, zy = three_d.quantize(x), three_d.quantize(y)
    changed = (zx.quantized - zy.quantized).abs().flatten(2).sum(2)  # (B, T/2)
    assert (changed[:, 0] > 0).all()  # 3×3×3 convs and attention along T carry frame 2 into step 0 (frames 0-1)


def test_axial_attention_on_chosen_axes():
    torch.manual_seed(0)
    attn = AxialAttention(8, 2, axes=("h", "w"))
    assert {n.split(".")[0] for n, _ in attn.named_parameters()} == {"attn_h", "attn_w"}
    x = torch.randn(1, 8, 3, 4, 5)
    y = x.clone()
    y[0, :, 1, 2, 3] += 1.0
    d = (attn(x) - attn(y)).abs().sum(1)[0]  # (t, h, w)
    assert d[1, 0, 3] > 0 and d[1, 2, 0] > 0  # along h and along w
    assert d[0, 2, 3] == 0 and d[2, 2, 3] == 0  # not along t
    with pytest.raises(ValueError, match="attention axes"):
        AxialAttention(8, 2, axes=("x",))


def test_the_old_path_reexports_the_same_objects():
    import vgcourse.tokenizers as tokenizers

    for name in old_path.__all__:
        assert getattr(old_path, name) is getattr(tokenizers, name)


def test_per_frame_tokenizer_learns_a_tiny_set():
    """A per-frame tokenizer overfits four clips on the CPU (the 3D one is tested in test_autoencoders.py)."""
    torch.manual_seed(0)
    x = moving_squares(frames=4, seed=3, wrap=True)
    model = VQVideoAutoencoder(vq_tiny(downsample=(1, 4, 4), per_frame=True, hidden_channels=32,
                                      codebook_size=64))
    first, final = overfit(model, x, lr=3e-3, steps=120)
    assert final < first / 8


def test_a_shipped_tokenizer_reloads_and_gives_the_same_codes(tmp_path):
    torch.manual_seed(0)
    model = VQVideoAutoencoder(vq_tiny(downsample=(2, 4, 4))).eval()
    state = shippable_state(model)
    assert all(v.dtype == torch.bfloat16 for v in state["model"].values() if v.is_floating_point())
    assert "quantizer.embed_sum" not in state["model"]
    path = save_checkpoint(tmp_path / "tok.pt", **state)
    again = load_tokenizer(load_checkpoint(path))  # weights_only=True
    assert again.cfg == model.cfg and not again.training
    x = _video(2, 1, 4, 16, 16)
    with torch.no_grad():
        same = (again.encode(x) == model.encode(x)).float().mean().item()
        recon_gap = (again.decode_indices(model.encode(x)) - model.decode_indices(model.encode(x))).abs().max()
    assert same > 0.9  # bf16 rounding may move a code that sits half-way between two
    assert recon_gap < 0.1
    with pytest.raises(ValueError, match="'config' and 'model'"):
        load_tokenizer({"model": state["model"]})


def test_a_compiled_training_step_moves_the_codebook_like_the_eager_one_and_compiles_once():
    """What chapter 05 does on the GPU, where the smoke build never compiles: the EMA step and the restarts run inside
    the compiled forward and must reach the module's buffers; a second tokenizer of the same class compiled in
    between, and an eager evaluation in eval mode, must not make the first one's training compile again."""
    from torch._dynamo.utils import counters

    torch.compiler.reset()
    counters.clear()
    x = _video(2, 1, 4, 16, 16)
    models = {}
    for name in ("eager", "compiled"):
        torch.manual_seed(0)
        model = VQVideoAutoencoder(vq_tiny()).train()
        step = torch.compile(model, backend="aot_eager") if name == "compiled" else model
        torch.manual_seed(1)
        with torch.autocast("cpu", dtype=torch.bfloat16):  # the GPU run's bf16 autocast
            vq_loss(step, x)["loss"].backward()
        models[name] = (model, step)
    eager, compiled = models["eager"][0].quantizer, models["compiled"][0].quantizer
    assert not torch.equal(compiled.cluster_size, torch.ones_like(compiled.cluster_size))  # the EMA step landed
    for buffer in ("cluster_size", "embed_sum", "embedding"):
        torch.testing.assert_close(getattr(compiled, buffer), getattr(eager, buffer))
    model, step = models["compiled"]
    per_frame = VQVideoAutoencoder(vq_tiny(downsample=(1, 4, 4), per_frame=True)).train()
    other = torch.compile(per_frame, backend="aot_eager")  # chapter 05's per-frame tokenizer
    with torch.autocast("cpu", dtype=torch.bfloat16):
        vq_loss(other, x)["loss"].backward()
    graphs = counters["stats"]["unique_graphs"]
    with torch.no_grad():
        model.eval()(x)  # the chapter's evaluation: eager, eval mode
    step.train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        vq_loss(step, x)["loss"].backward()  # the second cycle: the same compiled forward
    assert counters["stats"]["unique_graphs"] == graphs == 2
    assert not any("_orig_mod" in k for k in shippable_state(model)["model"])


# VideoGPT's public code (wilson1yan/VideoGPT, videogpt/vqvae.py): ``VQVAE`` built with the defaults of
# ``add_model_specific_args`` (embedding_dim 256, n_codes 2048, n_hiddens 240, n_res_layers 4, downsample 4, 4, 4)
# has these parameters, counted with ``sum(p.numel() for p in vqvae.parameters())``: encoder and pre-VQ conv
# 11,348,656, decoder and post-VQ conv 9,792,963; its codebook is a buffer.
VIDEOGPT_VQVAE_PARAMS = 21_141_619


def test_videogpt_bair_tokenizer_matches_the_authors_code() -> None:
    with torch.device("meta"):
        model = VQVideoAutoencoder(videogpt_bair())
    assert sum(p.numel() for p in model.parameters()) == VIDEOGPT_VQVAE_PARAMS
    assert sum(p.numel() for p in model.encoder.parameters()) == 11_348_656
    assert model.latent_shape(16, 64, 64) == (4, 16, 16)  # the paper's BAIR setting: 1,024 codes a clip
    assert tuple(model.quantizer.embedding.shape) == (2048, 256)
    with torch.device("meta"):  # the course's default keeps q, k, v biases: 8 blocks × 3 axes × 3 × 240 more
        biased = VQVideoAutoencoder(videogpt_bair(qkv_bias=True))
    assert sum(p.numel() for p in biased.parameters()) == VIDEOGPT_VQVAE_PARAMS + 8 * 3 * 3 * 240
