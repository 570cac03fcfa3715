"""Exercises on video tokenizers: the codebook's perplexity, C-ViViT's patches (the first frame alone, then
tubelets) and dead-code restarts."""

from __future__ import annotations

import torch
from einops import rearrange

from vgcourse.exercises import Wrong, exercise


def _shape(x: object) -> object:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


# ---- 1. perplexity ------------------------------------------------------------------------------------------------
def codebook_perplexity_solution(indices: torch.Tensor, codebook_size: int) -> torch.Tensor:
    """exp(H(p)) of the histogram p of the codes in ``indices`` (any shape): K when all K codes are equally used."""
    counts = torch.bincount(indices.flatten().long(), minlength=codebook_size).double()
    p = counts / counts.sum()
    return torch.exp(-(p[p > 0] * p[p > 0].log()).sum())


@exercise("codebook_perplexity", "The codebook's perplexity: from code indices (any shape) and the codebook size K, "
          "the histogram p of the codes, its entropy H(p) = −Σ p log p (unused codes add nothing) and exp(H(p)): the "
          "number of equally used codes that would give the same entropy (K at best, 1 when one code takes "
          "everything).", codebook_perplexity_solution)
def check_codebook_perplexity(answer) -> None:
    g = torch.Generator().manual_seed(0)
    cases = [(torch.arange(8), 8), (torch.zeros(2, 5, dtype=torch.long), 8), (torch.tensor([0, 0, 1, 2]), 4),
             (torch.randint(0, 12, (3, 4, 4), generator=g) ** 2 % 12, 16)]
    for idx, k in cases:
        want = float(codebook_perplexity_solution(idx, k))
        out = answer(idx, k)
        try:
            got = float(out)
        except (TypeError, ValueError, RuntimeError):
            raise Wrong(f"expected one number, got {_shape(out)}") from None
        if abs(got - want) < 1e-4 * max(1.0, want):
            continue
        counts = torch.bincount(idx.flatten(), minlength=k).double()
        p = counts / counts.sum()
        entropy = float(-(p[p > 0] * p[p > 0].log()).sum())
        if abs(got - entropy) < 1e-4:
            raise Wrong(f"codes {idx.flatten().tolist()[:8]}…: that is the entropy H = {entropy:.3f}; the perplexity "
                        f"is exp(H)")
        if abs(got - float((counts > 0).sum())) < 1e-4:
            raise Wrong("that counts the codes in use; the perplexity weighs them by how often each is used "
                        "(codes 0, 0, 1, 2 of K = 4 give 2^1.5 ≈ 2.83, not 3)")
        raise Wrong(f"codes {idx.flatten().tolist()[:8]}… (K = {k}): expected perplexity {want:.4f}, got {got:.4f}")


# ---- 2. the first frame alone, then tubelets ---------------------------------------------------------------------
def cvivit_patches_solution(x: torch.Tensor, p: int, pt: int) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, C, 1 + n·pt, H, W) -> first-frame patches (B, h·w, C·p·p), tubelets (B, n·h·w, C·pt·p·p)."""
    first = rearrange(x[:, :, :1], "b c 1 (h p) (w q) -> b (h w) (c p q)", p=p, q=p)
    rest = rearrange(x[:, :, 1:], "b c (t r) (h p) (w q) -> b (t h w) (c r p q)", r=pt, p=p, q=p)
    return first, rest


@exercise("cvivit_patches", "C-ViViT's patches (Villegas et al. 2023, §2.1): cut the first frame of x (B, C, 1 + n·pt, "
          "H, W) into p × p patches on its own, and the remaining frames into tubelets of pt × p × p. Return "
          "(first (B, h·w, C·p·p), tubelets (B, n·h·w, C·pt·p·p)), tokens in row-major (t, h, w) order, each flattened "
          "as x[b, :, frames, rows, columns].reshape(-1) (channel first, then frame, row, column).",
          cvivit_patches_solution)
def check_cvivit_patches(answer) -> None:
    g = torch.Generator().manual_seed(4)
    for c, frames, size, p, pt in [(1, 5, 8, 4, 2), (3, 7, 12, 4, 3), (1, 1, 8, 2, 2)]:
        x = torch.randn(2, c, frames, size, size, generator=g)
        want_first, want_rest = cvivit_patches_solution(x, p, pt)
        out = answer(x, p, pt)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise Wrong(f"expected a pair (first-frame patches, tubelets), got {type(out).__name__}")
        first, rest = out
        for name, got, want in [("first-frame patches", first, want_first), ("tubelets", rest, want_rest)]:
            if not isinstance(got, torch.Tensor) or got.shape != want.shape:
                raise Wrong(f"x {tuple(x.shape)}, p={p}, pt={pt}: {name} should have shape {tuple(want.shape)}, got "
                            f"{_shape(got)}")
            if torch.equal(got, want):
                continue
            n = want_rest.shape[1] // ((size // p) ** 2)
            from_zero = rearrange(x[:, :, :n * pt], "b c (t r) (h p) (w q) -> b (t h w) (c r p q)", r=pt, p=p, q=p)
            if name == "tubelets" and torch.equal(got, from_zero):
                raise Wrong("the tubelets start at frame 0; the first frame is patched alone, so the tubelets "
                            "cover frames 1 … n·pt")
            rows = lambda z: sorted(z.flatten(0, 1).sort(1).values.tolist())  # noqa: E731 — each token's pixel set
            if rows(got) == rows(want):
                raise Wrong(f"every one of the {name} holds the right pixels, in another order: flatten each as "
                            "(C, frames, p, p), channel first, and list them in row-major (t, h, w) order")
            raise Wrong(f"{name}: a token holds pixels of other frames or places: tubelet (k, i, j) covers frames "
                        "1 + k·pt … (k+1)·pt, rows i·p … (i+1)·p − 1 and columns j·p … (j+1)·p − 1")


# ---- 3. dead-code restarts -----------------------------------------------------------------------------------------
def restart_dead_codes_solution(embedding: torch.Tensor, cluster_size: torch.Tensor, embed_sum: torch.Tensor,
                                z: torch.Tensor, threshold: float, generator: torch.Generator
                                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Codes with N_k < threshold jump onto random rows of z (drawn with ``generator``); then N_k = threshold and
    m_k = N_k·e_k."""
    dead = cluster_size < threshold  # (K,)
    pick = torch.randint(z.shape[0], (int(dead.sum()),), generator=generator)
    embedding, cluster_size, embed_sum = embedding.clone(), cluster_size.clone(), embed_sum.clone()
    embedding[dead] = z[pick]
    cluster_size[dead] = threshold
    embed_sum[dead] = z[pick] * threshold
    return embedding, cluster_size, embed_sum


@exercise("restart_dead_codes", "Dead-code restarts: every code whose running count N_k is under the threshold is "
          "moved onto a random encoder output (a row of z); give it N_k = threshold and m_k = threshold·e_k so that "
          "e = m/N still holds. Return new (embedding, cluster_size, embed_sum); live codes keep their values.",
          restart_dead_codes_solution)
def check_restart_dead_codes(answer) -> None:
    g = torch.Generator().manual_seed(2)
    k, d, threshold = 10, 3, 1.0
    embedding = torch.randn(k, d, generator=g)
    cluster_size = torch.tensor([5.0, 0.2, 3.0, 0.0, 0.99, 1.0, 7.0, 0.5, 2.0, 0.01])
    embed_sum = embedding * cluster_size[:, None]
    z = torch.randn(32, d, generator=g) + 10.0  # far from every code: a restarted code is easy to see
    dead = cluster_size < threshold
    before = (embedding.clone(), cluster_size.clone(), embed_sum.clone())
    out = answer(embedding, cluster_size, embed_sum, z, threshold, torch.Generator().manual_seed(3))
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise Wrong(f"expected a tuple (embedding, cluster_size, embed_sum), got {type(out).__name__}")
    e, n, m = out
    if not all(isinstance(t, torch.Tensor) for t in out) or e.shape != (k, d) or n.shape != (k,) or m.shape != (k, d):
        raise Wrong(f"expected shapes ({k}, {d}), ({k},), ({k}, {d}), got {[_shape(t) for t in out]}")
    if not torch.equal(e[~dead], before[0][~dead]) or not torch.equal(n[~dead], before[1][~dead]):
        raise Wrong("a live code (N_k ≥ threshold) changed: only codes under the threshold restart")
    if not torch.equal(m[~dead], before[2][~dead]):
        raise Wrong("a live code's sum m_k changed: only codes under the threshold restart (e = m/N must still hold)")
    # exact comparison, not torch.cdist: its matrix-multiply path loses ~1e-5 to cancellation on rows near 10
    on_data = (e[dead][:, None, :] == z[None, :, :]).all(-1).any(1)  # (dead,)
    if torch.equal(e[dead], before[0][dead]):
        raise Wrong("no dead code moved: codes with N_k < threshold must jump onto rows of z")
    if not on_data.all():
        if on_data.any():
            raise Wrong("some dead codes were not restarted: every code with N_k < threshold must move")
        raise Wrong("a restarted code must sit exactly on an encoder output (a row of z)")
    if not torch.allclose(n[dead], torch.full((int(dead.sum()),), threshold)):
        raise Wrong("set a restarted code's count N_k to the threshold, or it is dead again at once")
    if not torch.allclose(m[dead], e[dead] * threshold):
        raise Wrong("set a restarted code's sum m_k = N_k·e_k, so that the next EMA step keeps it where it is")
    if len({tuple(r.tolist()) for r in e[dead]}) < 2:
        raise Wrong("every dead code got the same encoder output: draw one random row of z per dead code")
