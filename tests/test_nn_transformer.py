"""Tests of vgcourse.nn.transformer: attention against eq. (1) by hand, the causal mode, masks, the KV cache,
the pre-LN and adaLN-Zero blocks, and the errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from vgcourse.nn import SelfAttention, count_parameters, randomised
from vgcourse.nn.attention import attention
from vgcourse.nn.layouts import temporal_attention
from vgcourse.nn.transformer import MLP, AdaLNBlock, Attention, Block, KVCache, causal_mask, modulate

D, HEADS = 32, 4


def tokens(n: int = 2, length: int = 7, dim: int = D, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, length, dim, generator=torch.Generator().manual_seed(seed))


def stack(causal: bool = True, depth: int = 3, seed: int = 0) -> nn.ModuleList:
    torch.manual_seed(seed)
    return nn.ModuleList(Block(D, HEADS, causal=causal) for _ in range(depth)).eval()


def run(blocks: nn.ModuleList, x: torch.Tensor, caches: list[KVCache] | None = None, **kw) -> torch.Tensor:
    for i, block in enumerate(blocks):
        x = block(x, cache=None if caches is None else caches[i], **kw)
    return x


def by_hand(attn: Attention, x: torch.Tensor, allowed: torch.Tensor | None = None) -> torch.Tensor:
    """Vaswani et al. 2017, eq. (1) per head, heads concatenated and projected (§3.2.2), written out."""
    n, length, dim = x.shape
    d = dim // attn.heads
    q, k, v = attn.qkv(x).split(dim, dim=-1)  # (N, L, D) each
    heads = []
    for h in range(attn.heads):
        sl = slice(h * d, (h + 1) * d)
        scores = q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(d)  # (N, L, L)
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        heads.append(scores.softmax(-1) @ v[..., sl])  # (N, L, d)
    return attn.proj(torch.cat(heads, -1))  # (N, L, D)


# ---------------------------------------------------------------- attention is eq. (1)
def test_attention_equals_softmax_qk_v_by_hand() -> None:
    torch.manual_seed(0)
    attn, x = Attention(D, HEADS).eval(), tokens()
    torch.testing.assert_close(attn(x), by_hand(attn, x), rtol=1e-5, atol=1e-5)
    causal = Attention(D, HEADS, causal=True).eval()
    causal.load_state_dict(attn.state_dict())
    tril = torch.ones(7, 7, dtype=torch.bool).tril()
    torch.testing.assert_close(causal(x), by_hand(attn, x, tril), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(causal(x), attn(x), atol=1e-3)  # the causal mode changes something


def test_self_attention_is_the_old_name_of_attention() -> None:
    from vgcourse.nn.attention import SelfAttention as OldPath
    assert SelfAttention is Attention and OldPath is Attention


def test_causal_mask_aligns_queries_to_the_last_keys() -> None:
    assert torch.equal(causal_mask(3, 3), torch.ones(3, 3, dtype=torch.bool).tril())
    assert torch.equal(causal_mask(2, 4), torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool))
    assert causal_mask(1, 5).all()
    with pytest.raises(ValueError, match="no more queries than keys"):
        causal_mask(4, 2)


# ---------------------------------------------------------------- causal: the past does not see the future
def test_causal_prefix_invariance() -> None:
    blocks, x = stack(causal=True), tokens(length=10)
    changed = x.clone()
    changed[:, 6:] = torch.randn(2, 4, D)  # new tokens from position 6 on
    out, out_changed = run(blocks, x), run(blocks, changed)
    torch.testing.assert_close(out[:, :6], out_changed[:, :6], rtol=0, atol=1e-6)
    assert (out[:, 6:] - out_changed[:, 6:]).abs().max() > 1e-2
    bidirectional = stack(causal=False)
    assert (run(bidirectional, x)[:, :6] - run(bidirectional, changed)[:, :6]).abs().max() > 1e-2


# ---------------------------------------------------------------- the KV cache
@pytest.mark.parametrize("prefix", [1, 4])
def test_cached_decoding_equals_the_full_forward_token_by_token(prefix: int) -> None:
    blocks, x = stack(causal=True), tokens(length=9)
    full = run(blocks, x)  # (N, L, D) in one causal pass
    caches = [KVCache(9) for _ in blocks]
    with torch.no_grad():
        steps = [run(blocks, x[:, :prefix], caches)]  # the prefix in one call, then one token at a time
        steps += [run(blocks, x[:, i:i + 1], caches) for i in range(prefix, 9)]
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=1e-5)
    assert all(c.length == 9 for c in caches)


def test_cache_appends_chunks_after_a_prefix_with_the_causal_offset() -> None:
    blocks, x = stack(causal=True), tokens(length=8)
    caches = [KVCache(8) for _ in blocks]
    with torch.no_grad():
        out = torch.cat([run(blocks, x[:, a:b], caches) for a, b in ((0, 3), (3, 6), (6, 8))], 1)
    torch.testing.assert_close(out, run(blocks, x), rtol=1e-5, atol=1e-5)


def test_cache_reset_and_limits() -> None:
    cache, k = KVCache(4), torch.randn(2, HEADS, 3, 8)
    keys, _ = cache.append(k, k)
    assert keys.shape == (2, HEADS, 3, 8) and cache.length == 3
    with pytest.raises(ValueError, match="holds 4 tokens: 3 cached \\+ 2 new"):
        cache.append(k[:, :, :2], k[:, :, :2])
    with pytest.raises(ValueError, match="expected keys of shape"):
        cache.append(torch.randn(3, HEADS, 1, 8), torch.randn(3, HEADS, 1, 8))
    cache.reset()
    keys, _ = cache.append(k[:, :, :1], k[:, :, :1])
    assert cache.length == 1 and torch.equal(keys, k[:, :, :1])
    with pytest.raises(ValueError, match="at least one token"):
        KVCache(0)


# ---------------------------------------------------------------- masks
def test_bool_and_additive_masks_agree_and_hide_keys() -> None:
    torch.manual_seed(1)
    attn, x = Attention(D, HEADS).eval(), tokens(length=6)
    keep = torch.tensor([True, True, False, True, False, True])  # hide keys 2 and 4
    bool_mask = keep[None, None, None]  # (1, 1, 1, L)
    additive = torch.zeros(6).masked_fill(~keep, float("-inf"))  # (L,), broadcast
    out = attn(x, mask=bool_mask)
    torch.testing.assert_close(out, attn(x, mask=additive), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out, by_hand(attn, x, keep.expand(6, 6)), rtol=1e-5, atol=1e-5)
    hidden_changed = x.clone()
    hidden_changed[:, [2, 4]] += 3.0
    visible = [0, 1, 3, 5]  # what visible queries read does not depend on the hidden tokens
    torch.testing.assert_close(attn(hidden_changed, mask=bool_mask)[:, visible], out[:, visible], rtol=0, atol=1e-6)


def test_per_sample_mask_and_causal_combine() -> None:
    torch.manual_seed(2)
    attn, x = Attention(D, HEADS, causal=True).eval(), tokens(length=5)
    pad = torch.tensor([[True] * 5, [True, True, True, False, False]])  # sample 1: its last two keys are padding
    out = attn(x, mask=pad[:, None, None])  # (N, 1, 1, L)
    for i in range(2):
        allowed = pad[i].expand(5, 5) & torch.ones(5, 5, dtype=torch.bool).tril()
        torch.testing.assert_close(out[i:i + 1], by_hand(attn, x[i:i + 1], allowed), rtol=1e-5, atol=1e-5)
    additive = torch.zeros(2, 1, 1, 5).masked_fill(~pad[:, None, None], float("-inf"))
    torch.testing.assert_close(attn(x, mask=additive), out, rtol=1e-5, atol=1e-6)


def test_chunked_sdpa_keeps_per_sample_masks() -> None:
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(5, 2, 4, 8, generator=g) for _ in range(3))
    mask = torch.rand(5, 1, 4, 4, generator=g) > 0.3
    mask[..., 0] = True  # every query sees at least one key
    whole = attention(q, k, v, bias=mask)
    torch.testing.assert_close(attention(q, k, v, bias=mask, max_batch=4), whole)  # 2 samples per SDPA call
    torch.testing.assert_close(attention(q, k, v, bias=mask[0, 0], max_batch=4), attention(q, k, v, bias=mask[0, 0]))


# ---------------------------------------------------------------- layouts through the module
def test_causal_temporal_step_sees_only_earlier_frames() -> None:
    grid, g = (4, 2, 3), torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(2, 2, 24, 8, generator=g) for _ in range(3))
    causal = temporal_attention(q, k, v, grid, causal=True)
    later = [z.clone() for z in (q, k, v)]
    for z in later:
        z[:, :, 12:] = torch.randn(2, 2, 12, 8)  # frames 2 and 3 change
    torch.testing.assert_close(temporal_attention(*later, grid, causal=True)[:, :, :12], causal[:, :, :12])
    bidirectional = temporal_attention(*later, grid)[:, :, :12] - temporal_attention(q, k, v, grid)[:, :, :12]
    assert bidirectional.abs().max() > 1e-3
    torch.manual_seed(0)
    attn = Attention(D, HEADS, step="temporal", causal=True).eval()
    x = tokens(length=24)
    changed = x.clone()
    changed[:, 12:] += 1.0
    torch.testing.assert_close(attn(changed, grid)[:, :12], attn(x, grid)[:, :12], rtol=0, atol=1e-6)


def test_full_step_with_a_grid_equals_the_plain_sequence() -> None:
    torch.manual_seed(0)
    attn, x = Attention(D, HEADS).eval(), tokens(length=12)
    assert torch.equal(attn(x, (3, 2, 2)), attn(x))


# ---------------------------------------------------------------- blocks
def test_block_is_pre_ln_by_hand_and_names_its_parameters() -> None:
    torch.manual_seed(0)
    block, x = Block(D, HEADS, causal=True).eval(), tokens()
    h = x + block.attn(nn.functional.layer_norm(x, (D,), block.norm1.weight, block.norm1.bias))
    expected = h + block.mlp[2](nn.functional.gelu(block.mlp[0](block.norm2(h))))
    torch.testing.assert_close(block(x), expected)
    names = {n for n, _ in block.named_parameters()}
    assert names == {"norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
                     "attn.proj.bias", "norm2.weight", "norm2.bias", "mlp.0.weight", "mlp.0.bias", "mlp.2.weight",
                     "mlp.2.bias"}
    no_bias = Block(D, HEADS, bias=False)
    assert not any(n.endswith("bias") for n, _ in no_bias.named_parameters())


def test_mlp_shapes_and_tanh_gelu() -> None:
    torch.manual_seed(0)
    mlp, x = MLP(D, 48, approximate="tanh"), tokens()
    assert mlp[0].out_features == 48 and mlp(x).shape == x.shape
    torch.testing.assert_close(mlp(x), mlp[2](nn.functional.gelu(mlp[0](x), approximate="tanh")))
    assert MLP(D)[0].out_features == 4 * D


def test_dropout_acts_in_training_only() -> None:
    torch.manual_seed(0)
    block, x = Block(D, HEADS, dropout=0.5), tokens()
    plain = Block(D, HEADS)
    plain.load_state_dict(block.state_dict())
    block.eval()
    plain.eval()
    torch.testing.assert_close(block(x), plain(x))
    block.train()
    assert not torch.allclose(block(x), block(x))


def test_adaln_zero_block_is_the_identity_at_init_and_listens_to_c() -> None:
    torch.manual_seed(0)
    block, x = AdaLNBlock(D, HEADS, cond_dim=16).eval(), tokens()
    c = torch.randn(2, 16)
    assert torch.equal(block(x, c), x)  # every gate is zero
    with torch.no_grad():
        for p in block.adaLN_modulation.parameters():
            p.normal_(std=0.1)
    out = block(x, c)
    assert (out - x).abs().max() > 1e-3 and (block(x, c + 1) - out).abs().max() > 1e-3
    shift_a, scale_a, gate_a, shift_m, scale_m, gate_m = block.adaLN_modulation(c).chunk(6, dim=1)
    h = x + gate_a[:, None] * block.attn(modulate(nn.functional.layer_norm(x, (D,), eps=1e-6), shift_a, scale_a))
    expected = h + gate_m[:, None] * block.mlp(modulate(nn.functional.layer_norm(h, (D,), eps=1e-6), shift_m, scale_m))
    torch.testing.assert_close(out, expected)
    assert not torch.equal(AdaLNBlock(D, HEADS, zero_init=False)(x, torch.randn(2, D)), x)


def test_causal_adaln_block_with_a_cache() -> None:
    torch.manual_seed(0)
    block, x, c = AdaLNBlock(D, HEADS, causal=True).eval(), tokens(length=5), torch.randn(2, D)
    with torch.no_grad():
        block.adaLN_modulation[-1].weight.normal_(std=0.1)
        cache = KVCache(5)
        steps = torch.cat([block(x[:, i:i + 1], c, cache=cache) for i in range(5)], 1)
    torch.testing.assert_close(steps, block(x, c), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------- errors say what was expected
def test_errors_say_what_was_expected() -> None:
    attn = Attention(D, HEADS)
    with pytest.raises(ValueError, match="divisible by heads"):
        Attention(30, 4)
    with pytest.raises(ValueError, match="expected step in"):
        Attention(D, HEADS, step="diagonal")
    with pytest.raises(ValueError, match="expected a causal step"):
        Attention(D, HEADS, step="spatial", causal=True)
    with pytest.raises(ValueError, match=r"expected tokens of shape \(N, L, D=32\), got \(2, 7\)"):
        attn(torch.randn(2, 7))
    with pytest.raises(ValueError, match=r"expected tokens of shape \(N, L, D=32\), got \(2, 7, 16\)"):
        attn(torch.randn(2, 7, 16))
    with pytest.raises(ValueError, match=r"broadcastable to \(N, heads, Lq, Lk\) = \(2, 4, 7, 7\), got \(3, 7\)"):
        attn(tokens(), mask=torch.ones(3, 7, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool mask"):
        attn(tokens(), mask=torch.ones(7, 7, dtype=torch.long))
    with pytest.raises(ValueError, match="L = T'·H'·W'"):
        attn(tokens(), (2, 2, 2))
    spatial = Attention(D, HEADS, step="spatial")
    with pytest.raises(ValueError, match="needs the token grid"):
        spatial(tokens(length=8))
    with pytest.raises(ValueError, match="a mask and a KV cache work with the 'full' step"):
        spatial(tokens(length=8), (2, 2, 2), mask=torch.ones(8, 8, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"c of shape \(B, cond_dim\) = \(2, 32\), got \(2, 16\)"):
        AdaLNBlock(D, HEADS)(tokens(), torch.randn(2, 16))


def test_count_parameters_counts_every_scalar_once_or_the_trainable_ones() -> None:
    block = Block(16, 2)  # LN (2·16) + qkv (16·48 + 48) + proj (16·16 + 16) + LN (2·16) + MLP (16·64 + 64 + 64·16 + 16)
    assert count_parameters(block) == 2 * 16 + 16 * 48 + 48 + 16 * 16 + 16 + 2 * 16 + 16 * 64 + 64 + 64 * 16 + 16
    tied = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    tied.append(tied[0])  # the same layer twice: its parameters count once
    assert count_parameters(tied) == 4 * 4 + 4
    block.norm1.requires_grad_(False)  # frozen: left out of the trainable count
    assert count_parameters(block, trainable_only=True) == count_parameters(block) - 2 * 16


def test_randomised_wakes_only_the_zero_parameters_and_is_reproducible() -> None:
    block = AdaLNBlock(D, HEADS)  # adaLN-Zero: its modulation layer starts at zero, so the block is the identity
    x, c = tokens(), torch.randn(2, D)
    assert torch.equal(block(x, c), x)
    before = {name: p.clone() for name, p in block.named_parameters()}
    randomised(block, seed=3)
    for name, p in block.named_parameters():
        if before[name].any():
            assert torch.equal(p, before[name]), name            # a parameter that was not all zero is kept
        else:
            assert p.any(), name                                 # every all-zero one now has values
    assert not torch.allclose(block(x, c), x) and not block.training
    twin = AdaLNBlock(D, HEADS)
    twin.load_state_dict(before)
    randomised(twin, seed=3)                                     # the same seed gives the same values
    for (name, p), q in zip(block.named_parameters(), twin.parameters()):
        assert torch.equal(p, q), name
