"""Exercises on conditioning video diffusion: mask IoU, pooling a caption, guidance on two conditions."""

from __future__ import annotations

import torch

from vgcourse.exercises import Wrong, exercise
from vgcourse.metrics import mask_iou


def _shape(x: object) -> str:
    return str(tuple(x.shape)) if isinstance(x, torch.Tensor) else type(x).__name__


# ---- 1. mask IoU ------------------------------------------------------------------------------------------------
def mask_iou_solution(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU per clip of two {0, 1} mask videos (B, 1, T, H, W), counted over all frames; two empty masks give 1."""
    a, b = a.flatten(1) > 0.5, b.flatten(1) > 0.5  # (B, N)
    inter, union = (a & b).sum(1).float(), (a | b).sum(1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))


@exercise("mask_iou", "Intersection over union of two mask videos (B, 1, T, H, W), one number per clip counted "
          "over all its frames (two empty masks agree: IoU 1). It scores how well an edit keeps the source's "
          "structure.", mask_iou_solution)
def check_mask_iou(answer) -> None:
    a = torch.zeros(3, 1, 2, 4, 4)
    b = torch.zeros(3, 1, 2, 4, 4)
    a[0, :, 0, :2] = 1  # frame 0: 8 pixels; b covers 4 of them and 4 more
    b[0, :, 0, 1:3] = 1
    a[0, :, 1] = 1  # frame 1: identical, 16 pixels
    b[0, :, 1] = 1
    a[1, :, :, 0, 0] = 1  # clip 1: disjoint
    b[1, :, :, 3, 3] = 1
    want = mask_iou(a, b)  # clip 0: (4 + 16) / (12 + 16); clip 1: 0; clip 2: empty, 1
    out = answer(a.clone(), b.clone())
    if not isinstance(out, torch.Tensor) or out.shape != (3,):
        raise Wrong(f"expected one IoU per clip, shape (3,), got {_shape(out)}")
    out = out.float()
    if torch.allclose(out, want, atol=1e-5):
        return
    per_frame = torch.tensor([(4 / 12 + 1) / 2, 0.0, 1.0])
    if torch.allclose(out, per_frame, atol=1e-5):
        raise Wrong("that averages IoU frame by frame; count intersection and union over all frames of a clip")
    if (out > 1 + 1e-6).any():
        raise Wrong("an IoU above 1: the union goes in the denominator (|A ∩ B| / |A ∪ B|)")
    if torch.isnan(out[2]) or abs(out[2].item()) < 1e-6:
        raise Wrong(f"two empty masks gave {out[2].item()}; they agree perfectly, so their IoU is 1")
    raise Wrong(f"expected {want.tolist()}, got {out.tolist()}")


# ---- 2. pooling a caption ----------------------------------------------------------------------------------------
def caption_pool_solution(words: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The mean of the word vectors (B, L, D) over the real words of each caption (token != 0) -> (B, D)."""
    w = (tokens != 0).to(words.dtype)[..., None]  # (B, L, 1)
    return (words * w).sum(1) / w.sum(1).clamp(min=1)  # (B, D)


@exercise("caption_pool", "Pool a caption's word vectors (B, L, D) into one vector (B, D): the mean over its words, "
          "leaving out the padding (token 0), so that a caption means the same however much it is padded.",
          caption_pool_solution)
def check_caption_pool(answer) -> None:
    g = torch.Generator().manual_seed(0)
    tokens = torch.tensor([[1, 7, 13, 2, 0, 0], [1, 8, 14, 2, 19, 0], [0, 0, 0, 0, 0, 0]])
    words = torch.randn(3, 6, 5, generator=g)
    out = answer(words.clone(), tokens.clone())
    want = caption_pool_solution(words, tokens)
    if not isinstance(out, torch.Tensor) or out.shape != (3, 5):
        raise Wrong(f"expected pooled vectors of shape (B, D) = (3, 5), got {_shape(out)}")
    if torch.allclose(out[:2], want[:2], atol=1e-5):
        if not torch.isfinite(out[2]).all():
            raise Wrong("an all-padding caption gave NaN: divide by max(number of words, 1)")
        return
    if torch.allclose(out[:2], words[:2].mean(1), atol=1e-5):
        raise Wrong("that is the mean over all L positions, padding included: average the real words only")
    if torch.allclose(out[:2], (words * (tokens != 0)[..., None]).sum(1)[:2], atol=1e-5):
        raise Wrong("that is the sum of the words; divide by how many words each caption has")
    raise Wrong(f"the pooled vectors differ from the mean over words by up to {(out[:2] - want[:2]).abs().max():.3g}")


# ---- 3. guidance on two conditions ---------------------------------------------------------------------------------
def two_condition_guidance_solution(eps_none: torch.Tensor, eps_image: torch.Tensor, eps_both: torch.Tensor,
                                    s_image: float, s_text: float) -> torch.Tensor:
    """ε̃ = ε(∅, ∅) + s_I (ε(c_I, ∅) − ε(∅, ∅)) + s_T (ε(c_I, c_T) − ε(c_I, ∅)), Brooks et al. 2023, eq. (3)."""
    return eps_none + s_image * (eps_image - eps_none) + s_text * (eps_both - eps_image)


@exercise("two_condition_guidance", "Classifier-free guidance with two conditions, an image c_I (e.g. the first "
          "frame or the structure) and a text c_T, each with its own scale (InstructPix2Pix, Brooks et al. 2023, "
          "eq. (3)), from the three predictions ε(∅, ∅), ε(c_I, ∅) and ε(c_I, c_T).",
          two_condition_guidance_solution)
def check_two_condition_guidance(answer) -> None:
    g = torch.Generator().manual_seed(1)
    e0, ei, eb = (torch.randn(2, 3, 4, 4, 4, generator=g) for _ in range(3))
    for s_i, s_t in [(1.5, 7.5), (1.0, 1.0), (2.0, 0.0)]:
        out = answer(e0.clone(), ei.clone(), eb.clone(), s_i, s_t)
        want = two_condition_guidance_solution(e0, ei, eb, s_i, s_t)
        if not isinstance(out, torch.Tensor) or out.shape != e0.shape:
            raise Wrong(f"expected ε of shape {tuple(e0.shape)}, got {_shape(out)}")
        if torch.allclose(out, want, atol=1e-5):
            continue
        if torch.allclose(out, two_condition_guidance_solution(e0, ei, eb, s_t, s_i), atol=1e-5):
            raise Wrong("the scales are swapped: s_image multiplies ε(c_I, ∅) − ε(∅, ∅), "
                        "s_text ε(c_I, c_T) − ε(c_I, ∅)")
        if torch.allclose(out, e0 + s_t * (eb - e0), atol=1e-5):
            raise Wrong("that is one-condition guidance towards (c_I, c_T) with s_text; the image term needs "
                        "its own scale")
        if s_i == s_t == 1.0:
            raise Wrong("with s_image = s_text = 1 guidance must give the conditional prediction ε(c_I, c_T)")
        raise Wrong(f"for s_image={s_i}, s_text={s_t} the result is off by up to {(out - want).abs().max():.3g}")
