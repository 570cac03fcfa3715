"""Exercises on vector-quantized tokenizers: the nearest code, the EMA codebook update and dead-code restarts."""

from __future__ import annotations

import torch

from vgcourse.exercises import Wrong, exercise


def _shape(x: object) -> object:
    return tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__


# ---- 1. the nearest code -------------------------------------------------------------------------------------------
def nearest_code_solution(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """z (N, D), codebook (K, D) -> (N,) long: k = argmin_j ‖z − e_j‖² (van den Oord et al. 2017, eq. (2))."""
    dist = z.pow(2).sum(1, keepdim=True) - 2 * z @ codebook.t() + codebook.pow(2).sum(1)[None]  # (N, K)
    return dist.argmin(1)


@exercise("nearest_code", "Quantize: for vectors z (N, D) and a codebook (K, D), return the index (N,) of each "
          "vector's nearest code in Euclidean distance, k = argmin_j ‖z − e_j‖² (van den Oord et al. 2017, eq. (2)).",
          nearest_code_solution)
def check_nearest_code(answer) -> None:
    g = torch.Generator().manual_seed(0)
    codebook = torch.randn(16, 4, generator=g) * torch.linspace(0.2, 3.0, 16)[:, None]  # codes of unequal lengths
    z = torch.randn(64, 4, generator=g)
    want = nearest_code_solution(z, codebook)
    out = answer(z, codebook)
    if not isinstance(out, torch.Tensor) or out.shape != want.shape:
        raise Wrong(f"expected one index per vector, shape {tuple(want.shape)}, got {_shape(out)}")
    if out.is_floating_point():
        raise Wrong("expected integer code indices (argmin returns them), got a float tensor")
    if torch.equal(out, want):
        return
    if torch.equal(out, (z @ codebook.t()).argmax(1)):
        raise Wrong("you picked the largest dot product z·e; the nearest code minimises ‖z − e‖² = ‖z‖² − 2 z·e + "
                    "‖e‖², and with codes of different lengths the ‖e‖² term changes the answer")
    if torch.equal(out, torch.cdist(z, codebook).argmax(1)):
        raise Wrong("you picked the farthest code: take the argmin of the distance")
    raise Wrong(f"{int((out != want).sum())} of {len(z)} vectors got another code than their nearest one")


# ---- 2. the EMA codebook update ------------------------------------------------------------------------------------
def ema_update_solution(cluster_size: torch.Tensor, embed_sum: torch.Tensor, z: torch.Tensor, idx: torch.Tensor,
                        decay: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One EMA step (van den Oord et al. 2017, App. A.1, eqs. (6)-(8)): returns the new N (K,), m (K, D), e (K, D)."""
    onehot = torch.nn.functional.one_hot(idx, cluster_size.shape[0]).to(z.dtype)  # (N, K)
    n = decay * cluster_size + (1 - decay) * onehot.sum(0)  # eq. (6)
    m = decay * embed_sum + (1 - decay) * onehot.t() @ z  # eq. (7)
    return n, m, m / n[:, None]  # eq. (8)


@exercise("ema_codebook_update", "The EMA codebook: given the running counts N (K,), the running sums m (K, D), "
          "a batch of encoder outputs z (N, D), their codes idx (N,) and the decay γ, return (N', m', e'): "
          "N' = γN + (1 − γ)·n (n: how many vectors chose each code), m' = γm + (1 − γ)·Σ z (the sum of the vectors "
          "that chose each code) and e' = m'/N' (van den Oord et al. 2017, App. A.1, eqs. (6)–(8)).",
          ema_update_solution)
def check_ema_codebook_update(answer) -> None:
    g = torch.Generator().manual_seed(1)
    k, d, decay = 6, 3, 0.9
    n0 = torch.rand(k, generator=g) + 0.5
    m0 = torch.randn(k, d, generator=g) * n0[:, None]
    z = torch.randn(40, d, generator=g)
    idx = torch.randint(0, k, (40,), generator=g)
    want = ema_update_solution(n0, m0, z, idx, decay)
    out = answer(n0.clone(), m0.clone(), z, idx, decay)
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        raise Wrong(f"expected a tuple (N', m', e'), got {type(out).__name__}")
    for name, got, ref in zip(("N'", "m'", "e'"), out, want):
        if not isinstance(got, torch.Tensor) or got.shape != ref.shape:
            raise Wrong(f"{name}: expected shape {tuple(ref.shape)}, got {_shape(got)}")
    n, m, e = out
    if not torch.allclose(n, want[0], atol=1e-5):
        if torch.allclose(n, decay * n0 + torch.bincount(idx, minlength=k), atol=1e-5):
            raise Wrong("N': the batch counts enter with weight (1 − γ): N' = γN + (1 − γ)·n")
        raise Wrong("N' is not γN + (1 − γ)·n, with n the number of vectors that chose each code")
    if not torch.allclose(m, want[1], atol=1e-5):
        raise Wrong("m' is not γm + (1 − γ)·Σ z over the vectors that chose each code")
    if not torch.allclose(e, want[2], atol=1e-5):
        batch_means = want[1] * 0
        batch_means.index_add_(0, idx, z)
        if torch.allclose(e, batch_means / torch.bincount(idx, minlength=k).clamp(min=1)[:, None], atol=1e-5):
            raise Wrong("e' is the mean of this batch alone; the EMA codebook is the running m' / N'")
        raise Wrong("e' should be m' / N', code by code")


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
    on_data = torch.cdist(e[dead], z).min(1).values.lt(1e-5)  # (dead,)
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
