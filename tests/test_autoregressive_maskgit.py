"""Tests of vgcourse.autoregressive.maskgit: the cosine schedule, training masks, the masked loss, bidirectional
attention, iterative decoding step by step, and overfitting a tiny set (by class and from given first frames)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vgcourse.autoregressive import MaskGIT, MaskGITConfig, cosine_schedule, decode_schedule, maskgit_tiny


def model(seed: int = 0, **kw) -> MaskGIT:
    torch.manual_seed(seed)
    gen = MaskGIT(maskgit_tiny(**{**dict(grid=(2, 3, 4)), **kw})).eval()
    with torch.no_grad():
        gen.head.weight.normal_(std=0.3)
    return gen


def test_cosine_schedule_and_decode_counts() -> None:
    assert float(cosine_schedule(0.0)) == 1.0 and float(cosine_schedule(1.0)) == pytest.approx(0.0, abs=1e-12)
    assert float(cosine_schedule(0.5)) == pytest.approx(math.cos(math.pi / 4))
    r = torch.linspace(0, 1, 101)
    assert (cosine_schedule(r).diff() <= 0).all()
    counts = decode_schedule(64, 8)
    assert counts == [math.floor(math.cos(math.pi / 2 * (t + 1) / 8) * 64) for t in range(8)]
    assert counts[-1] == 0 and all(a > b for a, b in zip([64] + counts, counts))
    assert decode_schedule(3, 12) == [2, 1, 0] + [0] * 9  # at least one code fixed per step
    with pytest.raises(ValueError, match="at least one decoding step"):
        decode_schedule(4, 0)


def test_random_masks_follow_the_cosine_schedule() -> None:
    gen = model()
    g = torch.Generator().manual_seed(0)
    masks = gen.random_mask(4000, torch.device("cpu"), generator=g)  # (B, N = 24)
    assert masks.any(1).all()  # at least one masked code per clip
    fraction = masks.float().mean().item()  # E[⌈γ(r)·N⌉]/N ≈ ∫ cos(πr/2) dr = 2/π, plus at most 1/N from ⌈·⌉
    assert 2 / math.pi - 0.01 < fraction < 2 / math.pi + 1 / 24 + 0.01
    maskable = torch.zeros(4000, 24, dtype=torch.bool)
    maskable[:, 12:] = True  # frame 0 given: only frame 1 may be masked
    masks = gen.random_mask(4000, torch.device("cpu"), maskable, generator=g)
    assert not masks[:, :12].any() and masks[:, 12:].any(1).all()


def test_loss_is_cross_entropy_on_masked_codes_and_attention_is_bidirectional() -> None:
    gen = model()
    x = torch.randint(16, (3, 24), generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(3, 24, dtype=torch.bool)
    mask[:, [2, 5, 20]] = True
    logits, loss = gen(x, mask=mask)
    expected = F.cross_entropy(logits[mask], x[mask])
    torch.testing.assert_close(loss, expected)
    assert torch.equal(gen.logits(x.masked_fill(mask, gen.mask_id)), logits)
    later = x.clone()
    later[:, 23] = (later[:, 23] + 1) % 16
    assert (gen(later, mask=mask)[0][:, 2] - logits[:, 2]).abs().max() > 1e-4  # code 2 sees code 23


def test_decoding_unmasks_on_schedule_and_keeps_given_codes() -> None:
    gen = model()
    calls = []
    logits = gen.logits

    def recording(ids, y=None):
        calls.append((ids == gen.mask_id).sum(1))
        return logits(ids, y)

    gen.logits = recording
    given = torch.randint(16, (2, 24), generator=torch.Generator().manual_seed(2))
    known = torch.zeros(2, 24, dtype=torch.bool)
    known[:, :12] = True  # the first frame's codes
    known[1, 12:14] = True  # clip 1 has two more
    out = gen.generate(given=given, known=known, steps=8, generator=torch.Generator().manual_seed(0)).flatten(1)
    assert len(calls) == 8 and not (out == gen.mask_id).any()
    assert torch.equal(out[known], given[known])
    seen = torch.stack(calls)  # (steps, B): masked codes at the input of each step
    assert seen[:, 0].tolist() == [12] + decode_schedule(12, 8)[:-1]
    assert seen[:, 1].tolist() == [10] + decode_schedule(10, 8)[:-1]


def test_overfits_a_tiny_set_and_decodes_it_in_a_few_steps() -> None:
    torch.manual_seed(0)
    gen = MaskGIT(maskgit_tiny(num_classes=4))
    data = torch.randint(16, (4, 2, 2, 2), generator=torch.Generator().manual_seed(3))
    y, g = torch.arange(4), torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(gen.parameters(), lr=3e-3, weight_decay=0.0)
    for _ in range(300):
        loss = gen(data.repeat(4, 1, 1, 1), y.repeat(4), generator=g)[1]
        opt.zero_grad()
        loss.backward()
        opt.step()
    gen.eval()
    mask = torch.ones(4, 8, dtype=torch.bool)
    assert gen(data, y, mask=mask)[1].item() < 0.05  # every code from the class alone
    assert torch.equal(gen.generate(y=y, steps=4, temperature=0.01, generator=g), data)
    known = torch.zeros(4, 8, dtype=torch.bool)
    known[:, :4] = True  # frame 0 given
    assert torch.equal(gen.generate(y=y, given=data, known=known, steps=2, temperature=0.01, generator=g), data)


def test_errors_say_what_was_expected() -> None:
    gen = model()
    with pytest.raises(ValueError, match=r"expected codes of shape \(B, T, H, W\) = \(B, 2, 3, 4\)"):
        gen(torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="unconditional"):
        gen(torch.zeros(2, 24, dtype=torch.long), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="class-conditional"):
        model(num_classes=3).generate(n=2)
    with pytest.raises(ValueError, match="known mask"):
        gen.generate(given=torch.zeros(2, 24, dtype=torch.long))
    with pytest.raises(ValueError, match="give the number of clips"):
        gen.generate()
    with pytest.raises(ValueError, match=r"bool mask of shape \(2, 24\)"):
        gen(torch.zeros(2, 24, dtype=torch.long), mask=torch.ones(2, 24))
    with pytest.raises(ValueError, match="n_embd divisible by n_head"):
        MaskGITConfig(n_embd=30, n_head=4)
    with pytest.raises(ValueError, match="position 'factorised' or 'learned'"):
        MaskGITConfig(position="rotary")
    with pytest.raises(ValueError, match="vocab_size ≥ 2"):
        MaskGITConfig(vocab_size=1)
    with pytest.raises(ValueError, match=r"codes in \[0, 16\)"):  # id K is [MASK]: never a code
        gen(torch.full((2, 24), 16))
    given, known = torch.zeros(2, 24, dtype=torch.long), torch.zeros(2, 24, dtype=torch.bool)
    given[0, 3], known[0, 3] = 16, True  # a kept code of K would read as [MASK] and be drawn again
    with pytest.raises(ValueError, match=r"codes in \[0, 16\)"):
        gen.generate(given=given, known=known, steps=2)
    given[0, 3], known[0, 3] = 16, False  # where nothing is kept, the given value is never read
    assert gen.generate(given=given, known=known, steps=2).shape == (2, 2, 3, 4)
