"""Tests of vgcourse.autoregressive.gpt: causality, the KV cache (logits and samples), prefix and class
conditioning, the optimizer groups, FLOPs per token against a counter, VideoGPT's parameter count, overfitting."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from vgcourse.autoregressive import (
    GPT,
    NO_CLASS,
    VIDEOGPT_BAIR_PRIOR_PARAMS,
    GPTConfig,
    flops_per_token,
    gpt_tiny,
    num_parameters,
    sample_next,
    videogpt_bair,
)
from vgcourse.nn.positions import GridPositions


def model(seed: int = 0, **kw) -> GPT:
    torch.manual_seed(seed)
    cfg = gpt_tiny(**{**dict(vocab_size=16, grid=(2, 3, 4), n_layer=2, n_head=2, n_embd=32), **kw})
    gpt = GPT(cfg).eval()
    with torch.no_grad():  # a trained-looking model: logits that differ between codes
        gpt.head.weight.normal_(std=0.3)
    return gpt


def codes(gpt: GPT, b: int = 3, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(gpt.config.vocab_size, (b, *gpt.config.grid), generator=g)


def test_forward_shapes_and_loss_near_log_k_at_init() -> None:
    torch.manual_seed(0)
    gpt = GPT(gpt_tiny(vocab_size=64, grid=(2, 3, 4)))
    x = torch.randint(64, (5, 2, 3, 4))
    logits, loss = gpt(x)
    assert logits.shape == (5, 24, 64)
    assert abs(loss.item() - math.log(64)) < 0.1  # near-uniform predictions at initialisation
    torch.testing.assert_close(gpt(x.flatten(1))[1], loss)  # (B, L) and (B, T, H, W) are the same codes


@pytest.mark.parametrize("position", ["factorised", "learned"])
def test_causal_logits_of_earlier_codes_ignore_later_codes(position: str) -> None:
    gpt = model(position=position)
    x = codes(gpt).flatten(1)
    changed = x.clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 16
    a, b = gpt(x)[0], gpt(changed)[0]
    torch.testing.assert_close(a[:, :11], b[:, :11], rtol=0, atol=1e-6)  # logit i reads codes < i
    assert (a[:, 11:] - b[:, 11:]).abs().max() > 1e-3


def test_cached_logits_equal_uncached_token_by_token() -> None:
    gpt = model(num_classes=3)
    x, y = codes(gpt).flatten(1), torch.tensor([0, 2, 1])
    full, _ = gpt(x, y)  # (B, L, K)
    ids = torch.cat([gpt.start_ids(3, y, x.device), x[:, :-1]], 1)  # what forward feeds
    cache = gpt.new_cache()
    with torch.no_grad():
        stepped = torch.cat([gpt.logits(ids[:, i:i + 1], cache) for i in range(ids.shape[1])], 1)
    torch.testing.assert_close(stepped, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kw", [dict(), dict(temperature=0.7, top_k=5), dict(prefix_frames=1)])
def test_cached_generation_equals_uncached_under_a_fixed_seed(kw: dict) -> None:
    gpt = model(num_classes=2)
    kw = dict(kw)
    prefix = codes(gpt)[:, :kw.pop("prefix_frames")].flatten(1) if "prefix_frames" in kw else None
    y = torch.tensor([1, 0, 1])
    cached = gpt.generate(y=y, prefix=prefix, generator=torch.Generator().manual_seed(5), **kw)
    uncached = gpt.generate(y=y, prefix=prefix, generator=torch.Generator().manual_seed(5), use_cache=False, **kw)
    assert cached.shape == (3, 2, 3, 4) and torch.equal(cached, uncached)
    other = gpt.generate(y=y, prefix=prefix, generator=torch.Generator().manual_seed(6), **kw)
    assert not torch.equal(cached, other)  # the seed matters: the samples are drawn, not fixed
    if prefix is not None:
        assert torch.equal(cached.flatten(1)[:, :prefix.shape[1]], prefix)  # the given codes are kept


def test_no_class_label_is_the_unconditional_start_token() -> None:
    gpt = model(num_classes=3)
    x = codes(gpt)
    torch.testing.assert_close(gpt(x, torch.full((3,), NO_CLASS))[0], gpt(x)[0])  # y = -1: the start token K
    with pytest.raises(ValueError, match="no class"):
        gpt.generate(y=torch.tensor([0, -2, 1]))


@pytest.mark.parametrize("use_cache", [True, False])
def test_generate_leaves_cudnn_attention_out_while_decoding_and_restores_it(use_cache: bool) -> None:
    gpt = model()
    seen = []
    logits = gpt.logits

    def spy(*args, **kw):  # the SDPA backend flags while a decode step runs
        seen.append((torch.backends.cuda.cudnn_sdp_enabled(), torch.backends.cuda.flash_sdp_enabled()))
        return logits(*args, **kw)

    gpt.logits = spy
    before = torch.backends.cuda.cudnn_sdp_enabled()
    gpt.generate(n=2, use_cache=use_cache)
    assert len(seen) == gpt.config.block_size and set(seen) == {(False, True)}
    assert torch.backends.cuda.cudnn_sdp_enabled() == before  # restored after the loop
    seen.clear()
    gpt.decode_backends = None  # PyTorch's own choice: the flags as they were
    gpt.generate(n=2, use_cache=use_cache)
    assert set(seen) == {(before, True)}


@pytest.mark.parametrize("use_cache", [True, False])
def test_guided_generation_follows_the_guided_logits(use_cache: bool) -> None:
    gpt = model(num_classes=3)
    y = torch.tensor([0, 2, 1])
    s = 2.5
    got = gpt.generate(y=y, guidance=s, top_k=1, use_cache=use_cache)  # greedy: the argmax of the guided logits
    want = torch.zeros(3, 0, dtype=torch.long)
    with torch.no_grad():
        for _ in range(gpt.config.block_size):  # written out: ℓ(∅) + s (ℓ(y) − ℓ(∅)) on the codes so far
            cond = gpt.logits(torch.cat([gpt.start_ids(3, y, y.device), want], 1))[:, -1]
            uncond = gpt.logits(torch.cat([gpt.start_ids(3, None, y.device), want], 1))[:, -1]
            want = torch.cat([want, (uncond + s * (cond - uncond)).argmax(-1, keepdim=True)], 1)
    assert torch.equal(got.flatten(1), want)
    assert not torch.equal(gpt.generate(y=y, top_k=1).flatten(1), want)  # guidance changed the codes
    g = torch.Generator().manual_seed(3)
    plain = gpt.generate(y=y, generator=g)
    assert torch.equal(gpt.generate(y=y, guidance=1.0, generator=torch.Generator().manual_seed(3)), plain)
    with pytest.raises(ValueError, match="guidance needs labels"):
        gpt.generate(n=3, guidance=2.0)


def test_sample_next_temperature_and_top_k() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]]).expand(4000, 4)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(sample_next(logits, top_k=1, generator=g), torch.zeros(4000, 1, dtype=torch.long))
    top2 = sample_next(logits, top_k=2, generator=g)
    assert set(top2.unique().tolist()) == {0, 1}
    freq = top2.float().mean().item()  # P(code 1 | top 2) = 1 / (1 + e)
    assert abs(freq - 1 / (1 + math.e)) < 0.03
    cold = sample_next(logits, temperature=0.25, generator=g)  # sharper: code 0 far more often
    assert (cold == 0).float().mean() > 0.95


def test_configure_optimizers_decays_matrices_only() -> None:
    gpt = model()
    opt = gpt.configure_optimizers(weight_decay=0.1, learning_rate=1e-3)
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(gpt.parameters()))
    assert any(p is gpt.tok_emb.weight for p in decay["params"])
    assert any(p is gpt.ln_f.weight for p in no_decay["params"])


def test_videogpt_bair_prior_parameter_count() -> None:
    # The paper code's prior (VIDEOGPT_BAIR_PRIOR_PARAMS, 25.87M) within 2%: ours embeds codes by a table (K+1)·D
    # instead of projecting 256-d code vectors, sums per-axis position tables and keeps nanoGPT's biases.
    ours = num_parameters(videogpt_bair())
    assert abs(ours / VIDEOGPT_BAIR_PRIOR_PARAMS - 1) < 0.02, (ours, VIDEOGPT_BAIR_PRIOR_PARAMS)
    assert round(VIDEOGPT_BAIR_PRIOR_PARAMS / 1e6, 2) == 25.87
    assert num_parameters(videogpt_bair(), non_embedding=True) == ours - 1025 * 512 - (8 + 32 + 32) * 512


@pytest.mark.parametrize("position", ["factorised", "learned"])
def test_flops_per_token_equal_the_flop_counter(position: str) -> None:
    cfg = GPTConfig(vocab_size=64, grid=(2, 4, 4), n_layer=2, n_head=4, n_embd=64, position=position)
    with torch.device("meta"):  # on the meta device the counter also sees SDPA (on a CPU it does not)
        gpt = GPT(cfg)
        x = torch.zeros(2, *cfg.grid, dtype=torch.long)
    with FlopCounterMode(display=False) as counter:
        gpt(x)[1].backward()
    per_token = counter.get_total_flops() / (2 * cfg.block_size)
    # the counter sees matrix products only; 6N also counts the biases and norms (6 FLOPs per parameter)
    vectors = sum(p.numel() for p in gpt.parameters() if p.dim() < 2)
    assert per_token + 6 * vectors == flops_per_token(cfg)
    assert per_token == pytest.approx(flops_per_token(cfg), rel=0.02)


def test_factorised_positions_sum_one_vector_per_axis() -> None:
    gpt = model()
    pos = gpt.pos(0, 24)  # (L, D), raster order over (2, 3, 4)
    t, h, w = 1, 2, 3
    torch.testing.assert_close(pos[t * 12 + h * 4 + w], gpt.pos.t[t] + gpt.pos.h[h] + gpt.pos.w[w])
    torch.testing.assert_close(gpt.pos(13, 2), pos[13:15])
    assert sum(p.numel() for p in gpt.pos.parameters()) == (2 + 3 + 4) * 32
    learned = model(position="learned")
    assert torch.equal(learned.pos(5, 3), learned.pos.table[5:8]) and learned.pos.table.shape == (24, 32)
    with pytest.raises(ValueError, match="cells within the 24 of the grid"):
        gpt.pos(20, 5)


def test_overfits_a_tiny_set_and_generates_it_back() -> None:
    torch.manual_seed(0)
    gpt = GPT(gpt_tiny(vocab_size=16, grid=(2, 2, 2), n_layer=2, n_head=2, n_embd=32, num_classes=4))
    data = torch.randint(16, (4, 2, 2, 2), generator=torch.Generator().manual_seed(3))
    y = torch.arange(4)
    opt = gpt.configure_optimizers(weight_decay=0.0, learning_rate=1e-2, device_type="cpu")
    for _ in range(150):
        loss = gpt(data, y)[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05
    gpt.eval()
    assert torch.equal(gpt.generate(y=y, top_k=1), data)  # each class's clip, code for code
    first_frame = data[:, :1].flatten(1)  # the 4 codes of latent frame 0
    assert torch.equal(gpt.generate(y=y, prefix=first_frame, top_k=1), data)


def test_errors_say_what_was_expected() -> None:
    gpt = model()
    with pytest.raises(ValueError, match=r"expected codes of shape \(B, T, H, W\) = \(B, 2, 3, 4\)"):
        gpt(torch.zeros(2, 3, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="unconditional"):
        gpt(codes(gpt), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="give the number of clips"):
        gpt.generate()
    with pytest.raises(ValueError, match="fewer than L=24 codes"):
        gpt.generate(prefix=codes(gpt).flatten(1))
    with pytest.raises(ValueError, match=r"labels y of shape \(2,\) in \[0, 3\)"):
        model(num_classes=3).generate(y=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="n_embd divisible by n_head"):
        GPTConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="position 'factorised' or 'learned'"):
        GPTConfig(position="rotary")
    k = gpt.config.vocab_size
    for bad in (k, -1):  # id K is the start token: without the check it would be read as one, silently
        x = codes(gpt)
        x[0, 0, 0, 0] = bad
        with pytest.raises(ValueError, match=rf"codes in \[0, {k}\)"):
            gpt(x)
    with pytest.raises(ValueError, match="position kind 'factorised' or 'learned'"):
        GridPositions((2, 2, 2), 8, "rotary")
