"""Tests of vgcourse.autoregressive.videogpt: digit-pair labels, encoding a dataset, token batches by step, the
prior's loss, held-out bits, sampling and decoding, and loading the shipped tokenizer (absent, or hash-checked)."""

from __future__ import annotations

import math

import pytest
import torch

from vgcourse.autoregressive import (
    GPT,
    NO_CLASS,
    NUM_PAIRS,
    TokenBatches,
    encode_dataset,
    gpt_tiny,
    heldout_bits,
    load_tokenizer_if_shipped,
    pair_digits,
    pair_label,
    prior_loss,
    sample_videos,
    videogpt_digits,
)
from vgcourse.autoregressive.gpt import num_parameters
from vgcourse.checkpoint import CheckpointError, save_checkpoint, sha256
from vgcourse.data import MovingDigits
from vgcourse.tokenizers import VQVideoAutoencoder, shippable_state, vq_tiny


def test_pair_labels_are_a_bijection_on_unordered_pairs() -> None:
    pairs = torch.tensor([(a, b) for a in range(10) for b in range(10)])
    ids = pair_label(pairs)
    assert ids.min() == 0 and ids.max() == NUM_PAIRS - 1 and ids.unique().numel() == 55 == NUM_PAIRS
    assert torch.equal(ids, pair_label(pairs.flip(1)))  # {a, b} = {b, a}
    assert pair_label(torch.tensor([[0, 0], [0, 9], [1, 1], [9, 9], [3, 2]])).tolist() == [0, 9, 10, 54, 20]
    back = pair_digits(ids)
    assert torch.equal(back, pairs.sort(1).values)
    with pytest.raises(ValueError, match="digit classes"):
        pair_label(torch.tensor([[1, 10]]))
    with pytest.raises(ValueError, match="pair ids"):
        pair_digits(torch.tensor([55]))


def test_videogpt_digits_is_the_bair_prior_size() -> None:
    cfg = videogpt_digits()
    assert cfg.grid == (4, 8, 8) and cfg.block_size == 256 and cfg.num_classes == 55
    assert 25e6 < num_parameters(cfg) < 27e6  # VideoGPT's 8 × 512 prior, ≈ 26M


def tiny_tokenizer() -> VQVideoAutoencoder:
    torch.manual_seed(0)
    return VQVideoAutoencoder(vq_tiny(downsample=(4, 4, 4))).eval()


def test_encode_dataset_gives_the_tokenizers_codes_and_the_pair_labels() -> None:
    data, tok = MovingDigits(size=16, frames=8), tiny_tokenizer()
    codes, labels = encode_dataset(tok, data, 5, chunk=3, seed=2)
    assert codes.shape == (5, 2, 4, 4) and codes.dtype == torch.int16 and labels.shape == (5,)
    first = data.batch(3, seed=2_000_000)
    torch.testing.assert_close(codes[:3].long(), tok.encode(first.video))
    assert torch.equal(labels[:3], pair_label(first.labels["classes"]))


def test_token_batches_are_fixed_by_step() -> None:
    codes = torch.arange(40).view(10, 1, 2, 2) % 7
    labels = torch.arange(10)
    batches = TokenBatches(codes, labels, 4, seed=1)
    a, ya = batches(3)
    b, yb = batches(3)
    c, _ = batches(4)
    assert a.shape == (4, 1, 2, 2) and a.dtype == torch.long and torch.equal(a, b) and torch.equal(ya, yb)
    assert not torch.equal(a, c)
    assert torch.equal(a, codes[ya].long())  # each row keeps its own label
    with pytest.raises(ValueError, match="codes"):
        TokenBatches(codes.float(), labels, 4)
    with pytest.raises(ValueError, match="one device"):      # one index tensor draws both: a GPU run would fail
        TokenBatches(codes, labels.to("meta"), 4)


def test_token_batches_drop_labels_to_no_class_at_the_asked_rate() -> None:
    codes = torch.zeros(1000, 1, 2, 2, dtype=torch.long)
    labels = torch.arange(1000) % 5
    batches = TokenBatches(codes, labels, 500, seed=0, p_uncond=0.2)
    ys = torch.cat([batches(i)[1] for i in range(8)])
    dropped = (ys == NO_CLASS).float().mean().item()
    assert abs(dropped - 0.2) < 0.03 and ys.min() >= NO_CLASS
    assert torch.equal(batches(2)[1], batches(2)[1])  # fixed by step
    assert (TokenBatches(codes, labels, 500)(0)[1] >= 0).all()  # no dropout by default
    with pytest.raises(ValueError, match="p_uncond"):
        TokenBatches(codes, labels, 4, p_uncond=1.0)


def test_prior_loss_is_the_gpts_cross_entropy_in_nats_and_bits() -> None:
    torch.manual_seed(0)
    gpt = GPT(gpt_tiny(vocab_size=16, grid=(2, 2, 2), num_classes=NUM_PAIRS))
    codes, y = torch.randint(16, (3, 2, 2, 2)), torch.tensor([0, 54, 7])
    out = prior_loss(gpt, (codes, y))
    torch.testing.assert_close(out["loss"], gpt(codes, y)[1])
    torch.testing.assert_close(out["bits_per_token"], out["loss"] / math.log(2))
    assert heldout_bits(gpt, codes, y, batch=2) == pytest.approx(float(out["loss"].detach()) / math.log(2), rel=1e-5)
    unconditional = GPT(gpt_tiny(vocab_size=16, grid=(2, 2, 2)))
    torch.testing.assert_close(prior_loss(unconditional, (codes, y))["loss"], unconditional(codes)[1])


def test_sample_videos_decodes_codes_and_the_cache_changes_nothing() -> None:
    tok = tiny_tokenizer()
    torch.manual_seed(1)
    gpt = GPT(gpt_tiny(vocab_size=tok.cfg.codebook_size, grid=(2, 4, 4), num_classes=NUM_PAIRS)).eval()
    y = torch.tensor([3, 4, 5])
    videos, codes, seconds = sample_videos(gpt, tok, y=y, batch=2, seed=0)
    assert videos.shape == (3, 1, 8, 16, 16) and codes.shape == (3, 2, 4, 4) and seconds > 0
    assert videos.min() >= -1 and videos.max() <= 1
    torch.testing.assert_close(videos, tok.decode_indices(codes).clamp(-1, 1))
    _, uncached, _ = sample_videos(gpt, tok, y=y, batch=2, seed=0, use_cache=False)
    assert torch.equal(codes, uncached)
    prefix = codes[:, :1].flatten(1)
    _, continued, _ = sample_videos(gpt, tok, y=y, prefix=prefix, seed=5)
    assert torch.equal(continued[:, :1], codes[:, :1])
    with pytest.raises(ValueError, match="positive number"):
        sample_videos(gpt, tok)


def test_the_shipped_tokenizer_loads_when_listed_and_fails_loudly_when_altered(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VGCOURSE_DATA", str(tmp_path))
    (tmp_path / "weights").mkdir()
    assert load_tokenizer_if_shipped("tok") is None  # nothing ships: the chapter trains its own
    tok = tiny_tokenizer()
    path = save_checkpoint(tmp_path / "weights" / "tok.pt", **shippable_state(tok))
    with pytest.raises(CheckpointError, match="not listed"):
        load_tokenizer_if_shipped("tok")
    (tmp_path / "weights" / "SHA256SUMS").write_text(f"{sha256(path)}  tok.pt\n")
    loaded = load_tokenizer_if_shipped("tok")
    x = MovingDigits(size=16, frames=8).batch(2, seed=0).video
    assert torch.equal(loaded.encode(x), tok.encode(x))  # bf16 weights keep these codes
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_tokenizer_if_shipped("tok")
