"""Tests of the autoregressive exercises: solutions pass, stubs are "not attempted yet", wrong answers fail with a
hint, and each solution agrees with the package (the GPT's inputs, the NÜWA mask, the GPT's sampler)."""

from __future__ import annotations

import pytest
import torch

from vgcourse.autoregressive import GPT, gpt_tiny
from vgcourse.exercises import FAIL, all_exercises, check, solution
from vgcourse.nn import nearby_mask

NAMES = ["shift_right", "nearby_causal_mask", "top_k_logits"]


def test_the_exercises_are_registered() -> None:
    """Each registered exercise's solution passes its check and its stub reads "not attempted yet": that is
    test_results_exercises_build.py's test, over every exercise of the package."""
    assert set(NAMES) <= set(all_exercises())


def test_the_shift_solution_is_what_the_gpt_reads() -> None:
    torch.manual_seed(0)
    gpt = GPT(gpt_tiny(vocab_size=16, grid=(2, 2, 2), num_classes=3)).eval()
    codes, y = torch.randint(16, (2, 8)), torch.tensor([0, 2])
    ids = solution("shift_right")(codes, gpt.start_ids(2, y, codes.device)[:, 0])
    torch.testing.assert_close(gpt.logits(ids), gpt(codes, y)[0])


def test_the_top_k_solution_samples_like_the_gpts_sampler() -> None:
    from vgcourse.autoregressive import sample_next
    logits = torch.randn(6, 10, generator=torch.Generator().manual_seed(0))
    filtered = solution("top_k_logits")(logits, 3)
    a = sample_next(logits, top_k=3, generator=torch.Generator().manual_seed(1))
    b = torch.multinomial(torch.softmax(filtered, -1), 1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


@pytest.mark.parametrize("name, wrong, says", [
    ("shift_right", lambda c, s: c, "codes themselves"),
    ("shift_right", lambda c, s: torch.cat([c[:, 1:], s[:, None]], 1), "shifts left"),
    ("shift_right", lambda c, s: torch.cat([torch.zeros_like(s)[:, None], c[:, :-1]], 1), "start token"),
    ("shift_right", lambda c, s: c[:, :-1], "expected inputs of shape"),
    ("nearby_causal_mask", lambda g, e: nearby_mask(g, e, causal=False), "causal"),
    ("nearby_causal_mask", lambda g, e: nearby_mask(g, e).T, "transposed"),
    ("nearby_causal_mask", lambda g, e: torch.ones(g[0] * g[1] * g[2], g[0] * g[1] * g[2]).tril().bool(),
     "full causal attention"),
    ("nearby_causal_mask", lambda g, e: nearby_mask(g, tuple(x + 1 for x in e)), "off by one"),
    ("top_k_logits", lambda x, k: x.masked_fill(x < torch.topk(x, k).values[:, -1:], 0.0), "-inf"),
    ("top_k_logits", lambda x, k: x.masked_fill(x < torch.topk(x.flatten(), k).values[-1], float("-inf")), "per row"),
    ("top_k_logits", lambda x, k: torch.softmax(solution("top_k_logits")(x, k), -1).log(), "values changed"),
])
def test_wrong_answers_fail_with_a_message(name, wrong, says) -> None:
    result = check(name, wrong)
    assert result.status == FAIL and says in result.message, str(result)
