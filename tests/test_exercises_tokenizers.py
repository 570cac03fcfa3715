"""Tests of the tokenizer exercises: solutions pass, stubs are "not attempted yet", wrong answers fail with a hint."""

from __future__ import annotations

import pytest
import torch

from vgcourse.exercises import FAIL, NOT_ATTEMPTED, PASS, all_exercises, check, solution
from vgcourse.tokenizers import VectorQuantizer

NAMES = ["nearest_code", "ema_codebook_update", "restart_dead_codes"]


def stub(*args, **kwargs):
    raise NotImplementedError


@pytest.mark.parametrize("name", NAMES)
def test_solutions_pass_and_stubs_are_not_attempted(name) -> None:
    assert name in all_exercises()
    assert check(name, solution(name)).status == PASS, check(name, solution(name))
    assert check(name, stub).status == NOT_ATTEMPTED


def test_the_nearest_code_solution_is_the_quantizers_choice() -> None:
    vq = VectorQuantizer(16, 4).eval()
    z = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(solution("nearest_code")(z, vq.embedding), vq(z).indices)


def test_the_ema_solution_is_the_quantizers_update() -> None:
    """Without smoothing and restarts, the package's EMA step gives the same N, m and e."""
    vq = VectorQuantizer(5, 3, decay=0.8, dead_code_threshold=0.0, eps=0.0).train()
    n0, m0 = vq.cluster_size.clone(), vq.embed_sum.clone()
    z = torch.randn(30, 3, generator=torch.Generator().manual_seed(1))
    idx = vq(z).indices
    n, m, e = solution("ema_codebook_update")(n0, m0, z, idx, 0.8)
    torch.testing.assert_close(n, vq.cluster_size)
    torch.testing.assert_close(m, vq.embed_sum)
    torch.testing.assert_close(e, vq.embedding)


def nearest_by_dot_product(z, codebook):
    return (z @ codebook.t()).argmax(1)


def farthest(z, codebook):
    return torch.cdist(z, codebook).argmax(1)


def ema_without_one_minus_decay(n, m, z, idx, decay):
    onehot = torch.nn.functional.one_hot(idx, n.shape[0]).float()
    n2 = decay * n + onehot.sum(0)
    m2 = decay * m + onehot.t() @ z
    return n2, m2, m2 / n2[:, None]


def ema_batch_mean(n, m, z, idx, decay):
    good_n, good_m, _ = solution("ema_codebook_update")(n, m, z, idx, decay)
    sums = torch.zeros_like(m).index_add_(0, idx, z)
    return good_n, good_m, sums / torch.bincount(idx, minlength=n.shape[0]).clamp(min=1)[:, None]


def restart_nothing(e, n, m, z, threshold, g):
    return e, n, m


def restart_all_on_one_vector(e, n, m, z, threshold, g):
    e, n, m = e.clone(), n.clone(), m.clone()
    dead = n < threshold
    e[dead], n[dead], m[dead] = z[0], threshold, z[0] * threshold
    return e, n, m


def restart_without_count(e, n, m, z, threshold, g):
    e, _, m2 = solution("restart_dead_codes")(e, n, m, z, threshold, g)
    return e, n, m2


def restart_every_code(e, n, m, z, threshold, g):
    pick = torch.randint(z.shape[0], (e.shape[0],), generator=g)
    return z[pick], torch.full_like(n, threshold), z[pick] * threshold


@pytest.mark.parametrize("name, wrong, says", [
    ("nearest_code", nearest_by_dot_product, "largest dot product"),
    ("nearest_code", farthest, "farthest"),
    ("nearest_code", lambda z, codebook: torch.zeros(len(z)), "integer"),
    ("nearest_code", lambda z, codebook: torch.zeros(3, dtype=torch.long), "one index per vector"),
    ("ema_codebook_update", ema_without_one_minus_decay, "(1 − γ)"),
    ("ema_codebook_update", ema_batch_mean, "this batch alone"),
    ("ema_codebook_update", lambda n, m, z, idx, decay: n, "expected a tuple"),
    ("restart_dead_codes", restart_nothing, "no dead code moved"),
    ("restart_dead_codes", restart_all_on_one_vector, "same encoder output"),
    ("restart_dead_codes", restart_without_count, "count N_k to the threshold"),
    ("restart_dead_codes", restart_every_code, "a live code"),
])
def test_wrong_answers_fail_with_a_message(name, wrong, says) -> None:
    result = check(name, wrong)
    assert result.status == FAIL and says in result.message, str(result)
