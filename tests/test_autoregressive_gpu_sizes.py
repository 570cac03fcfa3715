"""Chapters 06 (VideoGPT) and 07 (Phenaki) at their gpu profile's sizes, on the CPU.

The smoke build runs both chapters with tiny models; only a GPU run builds the gpu profile's configs. Here they are
built as the notebooks build them (the values that ``pick(smoke=..., cpu=..., gpu=...)`` chooses on the gpu profile,
read from ``notebooks/src`` and checked against the source, so that the two cannot drift apart) and run once each:

- the parameter counts that each chapter's intro table states, to the rounding it prints;
- the tokenizers' code grids (06: 4 × 8 × 8 codes of a 16-frame clip; 07: 5 × 8 × 8 of a 17-frame clip);
- one training step (forward and backward) of each prior at its full sequence, batch 2: shapes, finite values, a
  loss near ln K at initialisation and a finite gradient on every parameter;
- the GPT's KV cache at 256 codes: the same logits as the full pass, at the start and at the end of the sequence,
  and the same samples from :meth:`GPT.generate` with and without it;
- MaskGIT's decoding step on the guided logits of 320 codes, and the masked counts of every step of the schedule;
- Phenaki's extension: one chunk of 8 new frames decoded in one step from a 9-frame context.
"""

from __future__ import annotations

import ast
import math
import re

import pytest
import torch

from vgcourse.autoregressive import (
    GPT,
    NUM_PAIRS,
    MaskGITConfig,
    TextMaskGIT,
    decode_schedule,
    decode_step,
    extend,
    load_tokenizer_if_shipped,
    videogpt_digits,
)
from vgcourse.data import CaptionedShapes, caption, tokenize
from vgcourse.metrics import PROTOCOL
from vgcourse.nn import CaptionEncoder, count_parameters
from vgcourse.paths import REPO_ROOT
from vgcourse.tokenizers import CViViT, CViViTConfig, VQVideoAutoencoder, vq_digits

SOURCES = REPO_ROOT / "notebooks" / "src"
VIDEOGPT, PHENAKI = "06_videogpt.py", "07_phenaki.py"

# Chapter 07's gpu profile (notebooks/src/07_phenaki.py, "Sizes for this profile"); checked against the source below.
WINDOW, LONG_FRAMES = 17, 48                          # frames of a training clip (1 + 4 × 4), of a long path
TOKENIZER_07 = CViViTConfig(in_channels=3, image_size=32, patch_size=4, temporal_patch=4, dim=256, heads=4,
                            spatial_depth=2, temporal_depth=2, codebook_size=512, embedding_dim=32)
WIDTH, LAYERS, HEADS, TEXT_DIM = 384, 8, 6, 128       # the masked transformer and its caption encoder
P_UNCOND, DECODE_STEPS = 0.1, 12
GUIDANCE_GRID = (1.0, 2.0, 3.0)                       # scales tried on validation prompts
GUIDANCE = max(GUIDANCE_GRID)                          # the strongest of them, for the decoding checks below


# ---- the models, built as the notebooks build them -----------------------------------------------------------------
@pytest.fixture(scope="module")
def vq() -> VQVideoAutoencoder:
    """Chapter 06's tokenizer: ``vq_digits()``, which the notebook trains when none ships in data/weights."""
    torch.manual_seed(0)
    return VQVideoAutoencoder(vq_digits()).eval()


@pytest.fixture(scope="module")
def prior(vq: VQVideoAutoencoder) -> GPT:
    """Chapter 06's prior: ``videogpt_digits`` over the tokenizer's code grid of a protocol clip."""
    grid = vq.latent_shape(PROTOCOL.frames, PROTOCOL.size, PROTOCOL.size)
    torch.manual_seed(0)
    return GPT(videogpt_digits(vocab_size=vq.cfg.codebook_size, grid=grid)).eval()


@pytest.fixture(scope="module")
def cvivit() -> CViViT:
    torch.manual_seed(0)
    return CViViT(TOKENIZER_07).eval()


@pytest.fixture(scope="module")
def maskgit(cvivit: CViViT) -> TextMaskGIT:
    """Chapter 07's text-conditioned MaskGIT over the C-ViViT's grid of a 17-frame clip."""
    grid = cvivit.latent_shape(WINDOW, 32, 32)
    cfg = MaskGITConfig(vocab_size=TOKENIZER_07.codebook_size, grid=grid, n_layer=LAYERS, n_head=HEADS, n_embd=WIDTH)
    torch.manual_seed(0)
    text = CaptionEncoder(dim=TEXT_DIM, layers=1, heads=4 if TEXT_DIM % 4 == 0 else 2)
    return TextMaskGIT(cfg, text, text_dim=TEXT_DIM, p_uncond=P_UNCOND).eval()


def shape_clips(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Chapter 07's data: the first 17 frames of captioned 48-frame paths (B, 3, 17, 32, 32), caption tokens (B, 12)."""
    batch = CaptionedShapes(size=32, frames=LONG_FRAMES, object_size=10, speed=0.4).batch(n, seed=1)
    return batch.video[:, :, :WINDOW], tokenize(batch.captions)


# ---- the notebooks' sources: gpu choices and the intro tables --------------------------------------------------------
def assigned(chapter: str, target: str) -> str:
    """The expression a notebook source assigns to ``target`` at top level (its ``gpu=`` argument when it is a
    ``pick(...)``), as ``ast.unparse`` writes it. The target must be assigned exactly once."""
    found = []
    for node in ast.parse((SOURCES / chapter).read_text()).body:
        if isinstance(node, ast.Assign) and ast.unparse(node.targets[0]) == target:
            value = node.value
            if isinstance(value, ast.Call) and ast.unparse(value.func) == "pick":
                value = next(k.value for k in value.keywords if k.arg == "gpu")
            found.append(ast.unparse(value))
    assert len(found) == 1, f"{chapter} assigns {target} {len(found)} times at top level, expected once"
    return found[0]


def gpu_row(chapter: str) -> str:
    """The `gpu` row of a chapter's intro table (its sizes and times per profile)."""
    rows = [line for line in (SOURCES / chapter).read_text().splitlines() if line.startswith("# | `gpu` |")]
    assert len(rows) == 1, f"expected one `gpu` row in {chapter}'s intro table, found {len(rows)}"
    return rows[0]


def stated_millions(chapter: str) -> list[str]:
    """The parameter counts in the `gpu` row of a chapter's intro table, in millions as printed ('1.1', '26')."""
    return re.findall(r"(\d+(?:\.\d+)?)M\b", gpu_row(chapter))


def printed(n: int, stated: str) -> str:
    """n parameters in millions, with as many decimals as ``stated`` has."""
    return f"{n / 1e6:.{len(stated.partition('.')[2])}f}"


def test_the_models_here_are_the_notebooks_gpu_choices(vq, prior, cvivit, maskgit) -> None:
    grid06 = vq.latent_shape(PROTOCOL.frames, PROTOCOL.size, PROTOCOL.size)
    assert eval(assigned(VIDEOGPT, "tokenizer_config"), {"vq_digits": vq_digits}) == vq.cfg
    shipped = load_tokenizer_if_shipped()  # the notebook uses a shipped tokenizer when there is one
    assert shipped is None or shipped.cfg == vq.cfg
    assert eval(assigned(VIDEOGPT, "cfg"), {"videogpt_digits": videogpt_digits, "tokenizer": vq,
                                            "grid": grid06}) == prior.config
    assert eval(assigned(VIDEOGPT, "prior_sizes"))["gpu"] == dict(n_layer=8, n_head=8, n_embd=512)  # as printed
    assert (prior.config.n_layer, prior.config.n_head, prior.config.n_embd) == (8, 8, 512)
    assert assigned(VIDEOGPT, "grid") == "tokenizer.latent_shape(frames, size, size)"

    assert eval(assigned(PHENAKI, "tok_cfg"), {"CViViTConfig": CViViTConfig}) == TOKENIZER_07 == cvivit.cfg
    assert eval(assigned(PHENAKI, "(width, layers, heads, text_dim)")) == (WIDTH, LAYERS, HEADS, TEXT_DIM)
    assert eval(assigned(PHENAKI, "(window, long_frames, speed)")) == (WINDOW, LONG_FRAMES, 0.4)
    assert eval(assigned(PHENAKI, "(p_uncond, decode_steps)")) == (P_UNCOND, DECODE_STEPS)
    assert eval(assigned(PHENAKI, "guidance_grid")) == GUIDANCE_GRID
    sizes = dict(tok_cfg=TOKENIZER_07, grid=maskgit.config.grid, layers=LAYERS, heads=HEADS, width=WIDTH)
    assert eval(assigned(PHENAKI, "gen_cfg"), {"MaskGITConfig": MaskGITConfig, **sizes}) == maskgit.config
    # the model line, which the maskgit fixture writes out
    assert assigned(PHENAKI, "model") == ("TextMaskGIT(gen_cfg, CaptionEncoder(dim=text_dim, layers=1, heads=4 if "
                                          "text_dim % 4 == 0 else 2), text_dim=text_dim, p_uncond=p_uncond)"
                                          ".to(S.device)")


def test_parameter_counts_are_those_the_intro_tables_state(vq, prior, cvivit, maskgit) -> None:
    for chapter, models in ((VIDEOGPT, (vq, prior)), (PHENAKI, (cvivit, maskgit))):
        stated = stated_millions(chapter)  # (tokenizer, prior) in the table's column order
        assert len(stated) == len(models), f"{chapter}'s gpu row states {stated}"
        assert [printed(count_parameters(m), s) for m, s in zip(models, stated)] == stated, chapter
    assert stated_millions(VIDEOGPT) == ["1.1", "26"] and stated_millions(PHENAKI) == ["6.5", "15"]
    # and the sizes beside them
    assert f"{vq.cfg.hidden_channels} channels, {vq.cfg.codebook_size} codes" in gpu_row(VIDEOGPT)
    assert f"{prior.config.n_layer} layers × {prior.config.n_embd}" in gpu_row(VIDEOGPT)
    assert f"{cvivit.cfg.dim} wide, {cvivit.cfg.codebook_size} codes" in gpu_row(PHENAKI)
    assert f"{maskgit.config.n_layer} × {maskgit.config.n_embd}" in gpu_row(PHENAKI)


# ---- chapter 06 ----------------------------------------------------------------------------------------------------
def test_the_videogpt_tokenizer_makes_a_4x8x8_grid_of_a_protocol_clip(vq) -> None:
    video = PROTOCOL.dataset().batch(1, seed=0).video  # (1, 1, 16, 32, 32)
    with torch.no_grad():
        recon, out = vq(video)
        codes = vq.encode(video)
        decoded = vq.decode_indices(codes)
    assert recon.shape == decoded.shape == video.shape == (1, 1, 16, 32, 32)
    assert codes.shape == (1, 4, 8, 8) and 0 <= codes.min() and codes.max() < vq.cfg.codebook_size
    assert torch.isfinite(recon).all() and torch.isfinite(decoded).all() and torch.isfinite(out.losses["loss"])
    assert torch.equal(out.indices, codes)
    torch.testing.assert_close(decoded, recon)  # the sampling path (codes -> pixels) is the reconstruction's


def test_the_prior_trains_one_step_over_256_codes(prior) -> None:
    cfg = prior.config
    codes = torch.randint(cfg.vocab_size, (2, *cfg.grid), generator=torch.Generator().manual_seed(0))
    y = torch.tensor([0, NUM_PAIRS - 1])
    prior.train()
    try:
        logits, loss = prior(codes, y)
        loss.backward()
        assert logits.shape == (2, 256, 512) and torch.isfinite(logits).all()
        assert abs(loss.item() - math.log(cfg.vocab_size)) < 0.5  # N(0, 0.02) weights: near-uniform predictions
        missing = [n for n, p in prior.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        assert not missing, f"no finite gradient for {missing}"
        assert prior.head.weight.grad.abs().sum() > 0 and prior.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
    finally:
        prior.zero_grad(set_to_none=True)
        prior.eval()


def test_the_kv_cache_gives_the_full_pass_logits_at_both_ends_of_256_codes(prior) -> None:
    cfg = prior.config
    codes = torch.randint(cfg.vocab_size, (1, cfg.block_size), generator=torch.Generator().manual_seed(1))
    y = torch.tensor([17])
    with torch.no_grad():
        full, _ = prior(codes, y)  # (1, 256, 512): teacher forcing, every position at once
        ids = torch.cat([prior.start_ids(1, y, codes.device), codes[:, :-1]], dim=1)  # (1, 256)
        cache = prior.new_cache()
        first = torch.cat([prior.logits(ids[:, i:i + 1], cache) for i in range(4)], dim=1)  # one code at a time
        prior.logits(ids[:, 4:250], cache)  # the middle in one call
        last = torch.cat([prior.logits(ids[:, i:i + 1], cache) for i in range(250, 256)], dim=1)
        assert cache[0].length == cache[-1].length == 256
        with pytest.raises(ValueError, match="within the 256 of the grid"):
            prior.logits(ids[:, :1], cache)  # a 257th code has no position
    torch.testing.assert_close(first, full[:, :4], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(last, full[:, 250:], rtol=1e-4, atol=1e-4)


def test_generate_draws_the_same_last_codes_with_and_without_the_cache(prior) -> None:
    prefix = torch.randint(512, (1, 254), generator=torch.Generator().manual_seed(2))  # all but the last two codes
    y = torch.tensor([40])
    drawn = [prior.generate(y=y, prefix=prefix, generator=torch.Generator().manual_seed(5), use_cache=use_cache)
             for use_cache in (True, False)]
    assert drawn[0].shape == (1, 4, 8, 8)
    assert torch.equal(drawn[0], drawn[1])
    assert torch.equal(drawn[0].flatten(1)[:, :254], prefix)  # the given codes are kept


# ---- chapter 07 ----------------------------------------------------------------------------------------------------
def test_the_cvivit_makes_a_5x8x8_grid_of_a_17_frame_clip(cvivit) -> None:
    video, _ = shape_clips(1)  # (1, 3, 17, 32, 32)
    with torch.no_grad():
        recon, out = cvivit(video)
        codes = cvivit.encode(video)
        decoded = cvivit.decode_indices(codes)
    assert recon.shape == decoded.shape == video.shape == (1, 3, 17, 32, 32)
    assert codes.shape == (1, 5, 8, 8) and 0 <= codes.min() and codes.max() < TOKENIZER_07.codebook_size
    assert torch.isfinite(recon).all() and torch.isfinite(out.losses["loss"])
    assert torch.equal(out.indices, codes)
    torch.testing.assert_close(decoded, recon)


def test_the_masked_transformer_trains_one_step_over_320_codes(maskgit) -> None:
    cfg = maskgit.config
    codes = torch.randint(cfg.vocab_size, (2, cfg.block_size), generator=torch.Generator().manual_seed(0))
    captions = tokenize([caption(0, 0, 0), caption(2, 1, 3)])
    maskable = torch.ones(2, *cfg.grid, dtype=torch.bool)
    maskable[1, :3] = False  # the second clip a continuation example: its first 3 time steps given (the notebook's)
    maskable = maskable.flatten(1)
    mask = maskgit.random_mask(2, codes.device, maskable, generator=torch.Generator().manual_seed(1))
    assert not (mask & ~maskable).any() and mask.any(1).all()
    maskgit.train()
    try:
        logits, loss = maskgit(codes, captions, mask=mask)
        loss.backward()
        assert logits.shape == (2, 320, 512) and torch.isfinite(logits).all()
        assert abs(loss.item() - math.log(cfg.vocab_size)) < 0.5
        missing = [n for n, p in maskgit.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        assert not missing, f"no finite gradient for {missing}"
        assert maskgit.text_proj.weight.grad.abs().sum() > 0  # the caption reaches the loss
    finally:
        maskgit.zero_grad(set_to_none=True)
        maskgit.eval()


def test_one_guided_decoding_step_over_320_codes_follows_the_schedule(maskgit) -> None:
    n, mask_id = maskgit.config.block_size, maskgit.mask_id
    ids = torch.full((1, n), mask_id)
    with torch.no_grad():
        logits = maskgit.guided_logits(ids, tokenize([caption(1, 2, 0)]), GUIDANCE)  # generate's first step
    assert logits.shape == (1, n, 512) and torch.isfinite(logits).all()
    unknown = (ids == mask_id).sum(1)
    after = decode_step(logits, ids, mask_id, 0, DECODE_STEPS, unknown, generator=torch.Generator().manual_seed(0))
    assert int((after == mask_id).sum()) == decode_schedule(n, DECODE_STEPS)[0] == 317
    assert after[after != mask_id].max() < 512


@pytest.mark.parametrize("given_steps", [0, 3])  # text to video (320 codes to draw), extension (3 of 5 steps given)
def test_every_step_of_the_schedule_at_the_gpu_grid(maskgit, given_steps: int) -> None:
    """decode_step's masked counts, step by step, are those decode_schedule prints (random logits: the counts do not
    depend on them); given codes never change."""
    t, h, w = maskgit.config.grid
    g = torch.Generator().manual_seed(given_steps)
    given = torch.randint(512, (2, given_steps * h * w), generator=g)
    ids = torch.cat([given, torch.full((2, (t - given_steps) * h * w), maskgit.mask_id)], dim=1)  # (2, 320)
    unknown = (ids == maskgit.mask_id).sum(1)
    counts = []
    for step in range(DECODE_STEPS):
        ids = decode_step(torch.randn(2, t * h * w, 512, generator=g), ids, maskgit.mask_id, step, DECODE_STEPS,
                          unknown, generator=g)
        counts.append((ids == maskgit.mask_id).sum(1).tolist())
        assert torch.equal(ids[:, :given.shape[1]], given)
    assert counts == [[k, k] for k in decode_schedule(int(unknown[0]), DECODE_STEPS)]


def test_extension_adds_one_chunk_from_a_9_frame_context(maskgit, cvivit) -> None:
    clips, captions = shape_clips(1)
    context = 1 + 2 * TOKENIZER_07.temporal_patch  # the notebook's: 9 frames, 3 time steps of codes
    long, seams = extend(maskgit, cvivit, clips, captions, frames=WINDOW + 8, context=context, steps=1,
                         guidance=GUIDANCE, generator=torch.Generator().manual_seed(0))
    assert long.shape == (1, 3, 25, 32, 32) and seams == [WINDOW]
    assert torch.equal(long[:, :, :WINDOW], clips)  # the clip is kept, 8 new frames appended
    new = long[:, :, WINDOW:]
    assert torch.isfinite(new).all() and new.abs().max() <= 1 and new.std() > 0
