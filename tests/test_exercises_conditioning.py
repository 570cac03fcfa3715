"""The conditioning exercises: every solution passes its check, untouched stubs are "not attempted", wrong answers
fail with a hint."""

import pytest
import torch

from vgcourse.diffusion import guided_eps
from vgcourse.exercises import FAIL, PASS, all_exercises, check, solution
from vgcourse.metrics import mask_iou

NAMES = ["mask_iou", "caption_pool", "two_condition_guidance"]



def test_registered():
    assert set(NAMES) <= set(all_exercises())



def _iou_per_frame(a, b):
    a, b = a.flatten(3) > 0.5, b.flatten(3) > 0.5  # (B, 1, T, HW)
    inter, union = (a & b).sum(-1).float(), (a | b).sum(-1).float()
    return torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union)).mean((1, 2))


def _iou_empty_zero(a, b):
    a, b = a.flatten(1) > 0.5, b.flatten(1) > 0.5
    return (a & b).sum(1).float() / (a | b).sum(1).float().clamp(min=1)


def _iou_swapped(a, b):
    a, b = a.flatten(1) > 0.5, b.flatten(1) > 0.5
    return (a | b).sum(1).float() / (a & b).sum(1).float().clamp(min=1)


@pytest.mark.parametrize("wrong, hint", [(_iou_per_frame, "frame by frame"), (_iou_empty_zero, "empty"),
                                         (_iou_swapped, "above 1"), (lambda a, b: a.sum(), "shape")])
def test_mask_iou_wrong_answers_fail_with_a_hint(wrong, hint):
    result = check("mask_iou", wrong)
    assert result.status == FAIL and hint in result.message


def test_mask_iou_solution_is_the_package_function():
    g = torch.Generator().manual_seed(0)
    a = (torch.rand(4, 1, 3, 8, 8, generator=g) > 0.5).float()
    b = (torch.rand(4, 1, 3, 8, 8, generator=g) > 0.5).float()
    torch.testing.assert_close(solution("mask_iou")(a, b), mask_iou(a, b))


@pytest.mark.parametrize("wrong, hint", [
    (lambda w, t: w.mean(1), "padding included"),
    (lambda w, t: (w * (t != 0)[..., None]).sum(1), "sum of the words"),
    (lambda w, t: (w * (t != 0)[..., None]).sum(1) / (t != 0).sum(1, keepdim=True), "NaN"),
    (lambda w, t: w[:, 0], "differ"),
    (lambda w, t: w, "shape")])
def test_caption_pool_wrong_answers_fail_with_a_hint(wrong, hint):
    result = check("caption_pool", wrong)
    assert result.status == FAIL and hint in result.message


def _swapped(e0, ei, eb, s_i, s_t):
    return solution("two_condition_guidance")(e0, ei, eb, s_t, s_i)


@pytest.mark.parametrize("wrong, hint", [(_swapped, "swapped"),
                                         (lambda e0, ei, eb, s_i, s_t: e0 + s_t * (eb - e0), "one-condition"),
                                         (lambda e0, ei, eb, s_i, s_t: eb + s_i * (ei - e0), "off by"),
                                         (lambda e0, ei, eb, s_i, s_t: eb[0], "shape")])
def test_two_condition_guidance_wrong_answers_fail_with_a_hint(wrong, hint):
    result = check("two_condition_guidance", wrong)
    assert result.status == FAIL and hint in result.message


def test_two_condition_guidance_reduces_to_ordinary_cfg():
    """With s_image = s_text = s it is CFG towards (c_I, c_T) against ε(∅, ∅), as guided_eps computes it."""
    g = torch.Generator().manual_seed(0)
    e0, ei, eb = (torch.randn(2, 1, 2, 4, 4, generator=g) for _ in range(3))
    toy = lambda x, t, c=None: eb if c is not None else e0  # noqa: E731 — a model that returns fixed predictions
    x, t = torch.zeros_like(e0), torch.zeros(2, dtype=torch.long)
    torch.testing.assert_close(solution("two_condition_guidance")(e0, ei, eb, 4.0, 4.0),
                               guided_eps(toy, x, t, cond="c", guidance_scale=4.0))


def test_an_answer_that_hits_an_unimplemented_torch_op_fails_instead_of_reading_not_attempted():
    """`&` on float masks raises NotImplementedError inside torch; only the stub's bare raise means "not attempted"."""
    def float_and(a, b):
        a, b = a.flatten(1), b.flatten(1)
        inter, union = (a & b).sum(1), (a | b).sum(1)
        return torch.where(union > 0, inter / union.clamp(min=1), 1.0)

    result = check("mask_iou", float_and)
    assert result.status == FAIL and "NotImplementedError" in result.message, str(result)

    def hinted(a, b):
        a, b = a.flatten(1) > 0.5, b.flatten(1) > 0.5
        inter, union = (a & b).sum(1), (a | b).sum(1)
        return torch.where(union > 0, inter / union.clamp(min=1), 1.0)

    assert check("mask_iou", hinted).status == PASS
