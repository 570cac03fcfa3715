"""The recurrent baseline of the transformer era's claim check: a GRU prior with GPT's interface."""

import math

import pytest
import torch

from vgcourse.autoregressive import (
    GPT,
    GPTConfig,
    GRUPrior,
    GRUPriorConfig,
    TokenBatches,
    gru_flops_per_token,
    gru_matching,
    gru_parameters,
    heldout_bits,
    heldout_bits_per_clip,
    prior_loss,
)
from vgcourse.nn import count_parameters

GRID = (2, 3, 3)


def test_parameter_count_and_flops_follow_the_formula():
    cfg = GRUPriorConfig(vocab_size=16, grid=GRID, n_layer=2, hidden=24, num_classes=3)
    model = GRUPrior(cfg)
    assert count_parameters(model) == gru_parameters(cfg)
    assert gru_parameters(cfg, non_embedding=True) == gru_parameters(cfg) - (16 + 1 + 3) * 24
    assert gru_flops_per_token(cfg) == 6 * gru_parameters(cfg, non_embedding=True)


def test_gru_matching_a_gpt_has_about_its_parameters():
    gpt = GPTConfig(vocab_size=512, grid=(5, 8, 8), n_layer=4, n_head=4, n_embd=192)
    target = count_parameters(GPT(gpt))
    cfg = gru_matching(target, 512, (5, 8, 8), n_layer=2)
    assert abs(gru_parameters(cfg) - target) / target < 0.01
    with pytest.raises(ValueError, match="positive"):
        gru_matching(0, 512, (5, 8, 8))


def test_forward_is_causal_and_starts_uniform():
    torch.manual_seed(0)
    cfg = GRUPriorConfig(vocab_size=16, grid=GRID, n_layer=2, hidden=32)
    model = GRUPrior(cfg).eval()
    codes = torch.randint(16, (3, *GRID))
    logits, loss = model(codes)
    assert logits.shape == (3, 18, 16)
    assert abs(loss.item() - math.log(16)) < 0.3  # small random weights: close to uniform over 16 codes
    changed = codes.flatten(1).clone()
    changed[:, 10:] = (changed[:, 10:] + 1) % 16  # later codes change ...
    with torch.no_grad():
        again, _ = model(changed)
    torch.testing.assert_close(again[:, :11], logits[:, :11])  # ... the logits of positions 0..10 do not
    assert not torch.allclose(again[:, 11:], logits[:, 11:])
    with pytest.raises(ValueError, match="codes of shape"):
        model(torch.randint(16, (3, 17)))
    with pytest.raises(ValueError, match="codes of shape"):
        model(torch.rand(3, *GRID))


def test_labels_pick_the_start_token_and_no_class_is_the_plain_one():
    cfg = GRUPriorConfig(vocab_size=16, grid=GRID, n_layer=1, hidden=8, num_classes=4)
    model = GRUPrior(cfg)
    ids = model.start_ids(3, torch.tensor([0, 3, -1]), torch.device("cpu"))
    assert ids.flatten().tolist() == [17, 20, 16]
    with pytest.raises(ValueError, match="labels y"):
        model.start_ids(3, torch.tensor([0, 1]), torch.device("cpu"))


def test_the_same_loop_pieces_train_and_read_it():
    torch.manual_seed(0)
    cfg = GRUPriorConfig(vocab_size=8, grid=GRID, n_layer=1, hidden=32)
    model = GRUPrior(cfg)
    codes = (torch.arange(18).view(1, *GRID).expand(64, -1, -1, -1) % 8).contiguous()  # one clip, repeated
    labels = torch.zeros(64, dtype=torch.long)
    before = heldout_bits_per_clip(model, codes[:8], None)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    batches = TokenBatches(codes, labels, 16)
    for step in range(60):
        opt.zero_grad()
        prior_loss(model, batches(step))["loss"].backward()
        opt.step()
    after = heldout_bits_per_clip(model, codes[:8], None)
    assert after.shape == (8,) and after.mean() < 0.5 * before.mean()  # a deterministic sequence is learnt
    with torch.no_grad():  # the per-clip reading agrees with the loop's loss on the same clips
        assert after.mean().item() == pytest.approx(prior_loss(model, (codes[:8], None))["bits_per_token"].item(),
                                                    rel=1e-4)
    assert heldout_bits(model, codes[:8], None) == pytest.approx(after.mean().item(), rel=1e-6)


def test_runs_under_autocast_with_the_gru_in_fp32():
    model = GRUPrior(GRUPriorConfig(vocab_size=16, grid=GRID, n_layer=1, hidden=8))
    codes = torch.randint(16, (2, *GRID))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, loss = model(codes)
    assert logits.shape == (2, 18, 16) and torch.isfinite(loss)
    torch.testing.assert_close(loss, model(codes)[1], rtol=0.05, atol=0.05)   # only the head ran in bf16
