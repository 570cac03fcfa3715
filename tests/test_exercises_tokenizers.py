"""Tests of the tokenizer exercises: solutions pass, stubs are "not attempted yet", wrong answers fail with a hint."""

from __future__ import annotations

import pytest
import torch
from einops import rearrange

from vgcourse.exercises import FAIL, all_exercises, check, solution
from vgcourse.tokenizers import CViViT, VectorQuantizer, code_counts, cvivit_tiny, usage_and_perplexity

NAMES = ["codebook_perplexity", "cvivit_patches", "restart_dead_codes"]


def test_the_exercises_are_registered() -> None:
    """Each registered exercise's solution passes its check and its stub reads "not attempted yet": that is
    test_results_exercises_build.py's test, over every exercise of the package."""
    assert set(NAMES) <= set(all_exercises())


def test_the_perplexity_solution_is_the_quantizers_statistic() -> None:
    idx = torch.randint(0, 20, (4, 8, 8), generator=torch.Generator().manual_seed(0))
    ours = usage_and_perplexity(code_counts(idx, 32))["perplexity"]
    assert float(solution("codebook_perplexity")(idx, 32)) == pytest.approx(float(ours), rel=1e-5)


def test_the_patches_solution_feeds_the_cvivit_embeddings() -> None:
    torch.manual_seed(0)
    model = CViViT(cvivit_tiny())  # p = 4, pt = 2, 16×16
    x = torch.rand(2, 1, 5, 16, 16) * 2 - 1
    first, rest = solution("cvivit_patches")(x, 4, 2)
    tokens = model.patchify(x)  # (B, 3, 4, 4, D)
    torch.testing.assert_close(model.embed_first(first), tokens[:, :1].flatten(1, 3))
    torch.testing.assert_close(model.embed_rest(rest), tokens[:, 1:].flatten(1, 3))


def test_the_restart_solution_follows_the_quantizers_rule() -> None:
    """The quantizer's restart leaves the same state as the solution's up to which data points are drawn."""
    vq = VectorQuantizer(6, 2, decay=1.0 - 1e-9, dead_code_threshold=1.0, eps=0.0).train()
    vq.cluster_size.copy_(torch.tensor([3.0, 0.5, 2.0, 0.1, 1.5, 0.0]))
    vq.embed_sum.copy_(vq.embedding * vq.cluster_size[:, None])
    z = torch.full((8, 2), 40.0) + torch.arange(8.0)[:, None]  # far away: no code is chosen but the nearest
    e0, n0, m0 = vq.embedding.clone(), vq.cluster_size.clone(), vq.embed_sum.clone()
    vq(z)
    e, n, m = solution("restart_dead_codes")(e0, n0, m0, z, 1.0, torch.Generator().manual_seed(0))
    dead = n0 < 1.0
    torch.testing.assert_close(n[dead], vq.cluster_size[dead])
    assert torch.cdist(vq.embedding[dead], z).min(1).values.max() < 1e-4  # both on data points
    assert torch.cdist(e[dead], z).min(1).values.max() < 1e-4


def perplexity_as_entropy(idx, k):
    p = torch.bincount(idx.flatten(), minlength=k).double()
    p = p / p.sum()
    return -(p[p > 0] * p[p > 0].log()).sum()


def perplexity_as_used_codes(idx, k):
    return float((torch.bincount(idx.flatten(), minlength=k) > 0).sum())


def patches_frame_zero_in_tubelets(x, p, pt):
    first, _ = solution("cvivit_patches")(x, p, pt)
    t = (x.shape[2] // pt) * pt
    rest = rearrange(x[:, :, :t], "b c (t r) (h p) (w q) -> b (t h w) (c r p q)", r=pt, p=p, q=p)
    return first, rest


def patches_channel_last(x, p, pt):
    first = rearrange(x[:, :, :1], "b c 1 (h p) (w q) -> b (h w) (p q c)", p=p, q=p)
    rest = rearrange(x[:, :, 1:], "b c (t r) (h p) (w q) -> b (t h w) (r p q c)", r=pt, p=p, q=p)
    return first, rest


def patches_strided_frames(x, p, pt):  # tubelet k takes frames k, k + n, … instead of consecutive ones
    first, _ = solution("cvivit_patches")(x, p, pt)
    rest = rearrange(x[:, :, 1:], "b c (r t) (h p) (w q) -> b (t h w) (c r p q)", r=pt, p=p, q=p)
    return first, rest


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


def restart_zeroing_live_sums(e, n, m, z, threshold, g):
    e, n, m = solution("restart_dead_codes")(e, n, m, z, threshold, g)
    m = m.clone()
    m[n > threshold] = 0.0  # the live codes' m_k lost: e = m/N no longer holds for them
    return e, n, m


def restart_every_code(e, n, m, z, threshold, g):
    pick = torch.randint(z.shape[0], (e.shape[0],), generator=g)
    return z[pick], torch.full_like(n, threshold), z[pick] * threshold


@pytest.mark.parametrize("name, wrong, says", [
    ("codebook_perplexity", perplexity_as_entropy, "exp(H)"),
    ("codebook_perplexity", perplexity_as_used_codes, "counts the codes in use"),
    ("codebook_perplexity", lambda idx, k: torch.zeros(3), "expected one number"),
    ("cvivit_patches", patches_frame_zero_in_tubelets, "first frame is patched alone"),
    ("cvivit_patches", patches_channel_last, "another order"),
    ("cvivit_patches", patches_strided_frames, "other frames or places"),
    ("cvivit_patches", lambda x, p, pt: x, "expected a pair"),
    ("restart_dead_codes", restart_nothing, "no dead code moved"),
    ("restart_dead_codes", restart_all_on_one_vector, "same encoder output"),
    ("restart_dead_codes", restart_without_count, "count N_k to the threshold"),
    ("restart_dead_codes", restart_every_code, "a live code"),
    ("restart_dead_codes", restart_zeroing_live_sums, "a live code's sum m_k changed"),
])
def test_wrong_answers_fail_with_a_message(name, wrong, says) -> None:
    result = check(name, wrong)
    assert result.status == FAIL and says in result.message, str(result)
