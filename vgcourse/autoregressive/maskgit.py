"""MaskGIT (Chang et al. 2022): a bidirectional transformer that fills in masked codes, decoded in a few parallel steps.

Training (§3.1): draw r ~ U(0, 1), mask ⌈γ(r)·N⌉ of a clip's N codes at random (replaced by the [MASK] token), and
predict the masked ones from all the others, L_mask = −E[Σ_{i masked} log p(y_i | y_unmasked)] (eq. (1)).
γ is the mask schedule, here the cosine γ(r) = cos(π r / 2) (§3.3), 1 at r = 0 and 0 at r = 1.

Decoding (§3.2): start from all [MASK] (or from given codes, e.g. a clip's first frames, which stay). At each of T
steps: predict every masked code, sample one per masked position, score it by its probability (its confidence),
keep the most confident ones and mask the n = ⌊γ((t + 1)/T)·N⌋ least confident again for the next step (eq. (4),
with t counted from 0 as in the authors' code). After T steps (8 to 16; the paper uses 8 to 12) every code is
fixed, against N steps for the GPT prior. As in the authors' code, Gumbel noise scaled by
``choice_temperature``·(1 − (t + 1)/T) is added to the log-confidences, so that early steps do not always keep the
same likeliest codes.

Class conditioning prepends a class token to the sequence (the authors' ImageNet model does the same); the shared
bidirectional :class:`~vgcourse.nn.transformer.Block` and learned grid positions carry the rest. MaskGIT sits in
this family with the GPT prior: both model the codes of a tokenizer (:mod:`vgcourse.autoencoders`), share the code
grid, its positions and the generate-beside-the-model shape, and are compared at equal training FLOPs (Phenaki,
chapter 07, uses MaskGIT on C-ViViT's codes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vgcourse.autoregressive.grid_config import CodeGridConfig
from vgcourse.nn.positions import GridPositions, check_code_range, raster_codes
from vgcourse.nn.transformer import Block


def cosine_schedule(r: torch.Tensor | float) -> torch.Tensor:
    """γ(r) = cos(π r / 2): the fraction of codes masked at ratio r ∈ [0, 1] (Chang et al. 2022, §3.3).

    r float or tensor -> float64 tensor of r's shape (() for a float)."""
    return torch.cos(math.pi / 2 * torch.as_tensor(r, dtype=torch.float64)).clamp(0.0, 1.0)


def decode_schedule(n: int, steps: int) -> list[int]:
    """How many of n unknown codes are still masked after each of the ``steps`` decoding steps:
    ⌊γ((t + 1)/T)·n⌋, at most the count before it minus one (each step fixes at least one code), ending at 0."""
    if steps < 1:
        raise ValueError(f"expected at least one decoding step, got steps={steps}")
    masked, out = n, []
    for t in range(steps):
        target = math.floor(float(cosine_schedule((t + 1) / steps)) * n)
        masked = 0 if t == steps - 1 else max(0, min(target, masked - 1))
        out.append(masked)
    return out


@dataclass
class MaskGITConfig(CodeGridConfig):
    """Shape of a MaskGIT: :class:`CodeGridConfig` (the code grid, the bidirectional transformer's size, its
    conditioning: a class token is prepended); id K = ``vocab_size`` is the [MASK] token."""


class MaskGIT(nn.Module):
    """A bidirectional transformer over code grids with a [MASK] token: logits of every code given the unmasked ones.

    Inputs (forward): tokens (B, T, H, W) or (B, N) long codes; y (B,) labels (with ``num_classes``) or None; mask
    (B, N) bool, True = masked (None: drawn by the cosine schedule); maskable (B, N) bool, the codes the drawn mask may
    cover (None: all; e.g. False on given first frames). Returns logits (B, N, K) and the cross-entropy over the
    masked codes (eq. (1)).
    """

    def __init__(self, config: MaskGITConfig):
        super().__init__()
        self.config = cfg = config
        d = cfg.n_embd
        self.mask_id = cfg.vocab_size
        self.tok_emb = nn.Embedding(cfg.vocab_size + 1, d)  # the K codes and [MASK]
        self.cls_emb = nn.Embedding(cfg.num_classes, d) if cfg.num_classes else None
        self.pos = GridPositions(cfg.grid, d, cfg.position)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(d, cfg.n_head, cfg.mlp_ratio, dropout=cfg.dropout)
                                    for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, cfg.vocab_size)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        # BERT / MaskGIT: linear and embedding weights N(0, 0.02) (the authors truncate at 2σ), zero biases
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(module.weight, std=0.02, a=-0.04, b=0.04)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)

    def _flat(self, tokens: torch.Tensor) -> torch.Tensor:
        """Codes (B, T, H, W) or (B, L) in [0, K) -> (B, L) in raster order, checked (:func:`raster_codes`)."""
        return raster_codes(tokens, self.config.grid, self.config.vocab_size)

    def prefix(self, ids: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor | None:
        """The condition's tokens placed before the codes, (B, P, D), or None: here the class token (P = 1)."""
        if self.cls_emb is not None:
            if y is None or y.shape != ids.shape[:1] or y.is_floating_point():
                raise ValueError(f"this MaskGIT is class-conditional: expected labels y of shape ({ids.shape[0]},), "
                                 f"got {None if y is None else tuple(y.shape)}")
            return self.cls_emb(y)[:, None]  # (B, 1, D)
        if y is not None:
            raise ValueError("this MaskGIT is unconditional (num_classes=0), got labels y; pass y=None")
        return None

    def transformer(self, ids: torch.Tensor, prefix: torch.Tensor | None = None) -> torch.Tensor:
        """ids (B, N) (codes and [MASK]) after the prefix (B, P, D), every position seeing every other: (B, N, K)."""
        x = self.tok_emb(ids) + self.pos()  # (B, N, D)
        if prefix is not None:
            x = torch.cat([prefix.to(x.dtype), x], dim=1)  # (B, P + N, D): the condition first
        x = self.drop(x)
        for block in self.blocks:
            x = block(x)  # (B, [P +] N, D)
        x = x[:, x.shape[1] - ids.shape[1]:]  # (B, N, D)
        return self.head(self.ln_f(x))  # (B, N, K)

    def logits(self, ids: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (B, N, K) of every code of ids (B, N) given the condition y (or None)."""
        return self.transformer(ids, self.prefix(ids, y))

    def guided_logits(self, ids: torch.Tensor, y: torch.Tensor, guidance: float) -> torch.Tensor:
        """Classifier-free guidance: needs a model trained with its condition dropped (see
        :class:`vgcourse.autoregressive.phenaki.TextMaskGIT`, whose override maps ids (B, N) and y to guided logits
        (B, N, K)); this base class has none and raises ValueError."""
        raise ValueError(f"{type(self).__name__} has no unconditional model to guide against; use guidance=1.0")

    def random_mask(self, batch: int, device: torch.device, maskable: torch.Tensor | None = None,
                    generator: torch.Generator | None = None) -> torch.Tensor:
        """Training masks (B, N) bool: per clip r ~ U(0, 1) and ⌈γ(r)·M⌉ of its M maskable codes masked at random
        (at least one)."""
        n = self.config.block_size
        maskable = torch.ones(batch, n, dtype=torch.bool, device=device) if maskable is None else maskable.to(device)
        r = torch.rand(batch, device=device, generator=generator)  # (B,)
        count = torch.ceil(cosine_schedule(r).to(device) * maskable.sum(1)).clamp(min=1)  # (B,)
        scores = torch.rand(batch, n, device=device, generator=generator).masked_fill(~maskable, 2.0)  # (B, N)
        rank = scores.argsort(dim=1).argsort(dim=1)  # (B, N): 0 = first to mask
        return rank < count[:, None]

    def forward(self, tokens: torch.Tensor, y: torch.Tensor | None = None, mask: torch.Tensor | None = None,
                maskable: torch.Tensor | None = None,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self._flat(tokens)  # (B, N)
        if mask is None:
            mask = self.random_mask(tokens.shape[0], tokens.device, maskable, generator)  # (B, N)
        elif mask.shape != tokens.shape or mask.dtype != torch.bool:
            raise ValueError(f"expected a bool mask of shape {tuple(tokens.shape)}, "
                             f"got {tuple(mask.shape)} {mask.dtype}")
        logits = self.logits(tokens.masked_fill(mask, self.mask_id), y)  # (B, N, K)
        per_code = F.cross_entropy(logits.flatten(0, 1).float(), tokens.flatten(), reduction="none")  # (B·N,)
        weight = mask.flatten().to(per_code.dtype)  # eq. (1): the masked codes only (no boolean index: compiles whole)
        loss = (per_code * weight).sum() / weight.sum().clamp(min=1)
        return logits, loss

    @torch.no_grad()
    def generate(self, n: int | None = None, y: torch.Tensor | None = None, given: torch.Tensor | None = None,
                 known: torch.Tensor | None = None, steps: int = 12, temperature: float = 1.0,
                 choice_temperature: float = 4.5, guidance: float = 1.0,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Iterative parallel decoding (§3.2): code grids (B, T, H, W) in ``steps`` steps.

        Inputs: n clips, or as many as labels y (B,) / given codes; given (B, N) or (B, T, H, W) codes with known
        (same shape, bool) saying which of them are fixed (e.g. the first frames: frame prediction); temperature
        of the code sampling; choice_temperature of the Gumbel noise on the confidences (0: keep the most likely);
        guidance: the classifier-free guidance scale s (1: none; needs :meth:`guided_logits`); generator on the
        model's device.
        """
        cfg, device = self.config, self.head.weight.device
        sizes = [z.shape[0] for z in (y, given) if z is not None] + ([n] if n is not None else [])
        if not sizes or len(set(sizes)) != 1:
            raise ValueError(f"give the number of clips n, labels y or given codes, with one batch size; got {sizes}")
        if (given is None) != (known is None):
            raise ValueError("given codes need their known mask (True = fixed), and a known mask needs given codes")
        b, length = sizes[0], cfg.block_size
        ids = torch.full((b, length), self.mask_id, dtype=torch.long, device=device)
        if given is not None:
            known = known.reshape(b, length).to(device)
            given = raster_codes(given.reshape(b, length).to(device), cfg.grid)  # (B, N); only kept codes are read
            check_code_range(given[known], cfg.vocab_size)  # a kept code of K would read as [MASK] and be redrawn
            ids = torch.where(known, given, ids)
        y = None if y is None else y.to(device)
        if steps < 1:
            raise ValueError(f"expected at least one decoding step, got steps={steps}")
        unknown = (ids == self.mask_id).sum(1)  # (B,): the codes to draw, per clip
        for t in range(steps):
            logits = self.logits(ids, y) if guidance == 1.0 else self.guided_logits(ids, y, guidance)  # (B, N, K)
            ids = decode_step(logits, ids, self.mask_id, t, steps, unknown, temperature, choice_temperature,
                              generator)
        return ids.view(b, *cfg.grid)  # (B, T, H, W)


def decode_step(logits: torch.Tensor, ids: torch.Tensor, mask_id: int, t: int, steps: int, unknown: torch.Tensor,
                temperature: float = 1.0, choice_temperature: float = 4.5,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Step t (from 0) of ``steps`` of MaskGIT's decoding (§3.2): the codes after it, (B, N).

    Inputs: logits (B, N, K) of the model on ids (B, N) (codes and ``mask_id``); unknown (B,) the codes each clip
    had to draw at the start. Sample a code at every masked position, score each by its log-probability (plus Gumbel
    noise scaled by choice_temperature·(1 − (t + 1)/T)), keep the fixed codes, and mask again the
    ⌊γ((t + 1)/T)·unknown⌋ least confident of the new ones (eq. (4); at least one code fixed per step, none left
    masked after the last).
    """
    b, length = ids.shape
    masked = ids == mask_id  # (B, N)
    probs = F.softmax(logits.float() / temperature, dim=-1)  # (B, N, K)
    sampled = torch.multinomial(probs.flatten(0, 1), 1, generator=generator).view(b, length)  # (B, N)
    sampled = torch.where(masked, sampled, ids)  # fixed codes stay
    confidence = torch.log(probs.gather(-1, sampled[..., None])[..., 0].clamp_min(1e-30))  # (B, N)
    ratio = (t + 1) / steps
    # how many stay masked: ⌊γ((t + 1)/T)·n⌋, fixing at least one code per step, none at the last
    keep = torch.floor(cosine_schedule(ratio).item() * unknown).long()  # (B,)
    keep = torch.minimum(keep, (masked.sum(1) - 1).clamp(min=0)) if t < steps - 1 else torch.zeros_like(keep)
    if choice_temperature > 0 and t < steps - 1:
        u = torch.rand(b, length, device=ids.device, generator=generator).clamp(1e-20, 1.0)
        confidence = confidence + choice_temperature * (1 - ratio) * -torch.log(-torch.log(u))  # Gumbel
    confidence = confidence.masked_fill(~masked, float("inf"))  # fixed codes are never masked again
    rank = confidence.argsort(dim=1).argsort(dim=1)  # (B, N): 0 = least confident
    return torch.where((rank < keep[:, None]) & masked, mask_id, sampled)  # eq. (4): re-mask the least confident


def maskgit_tiny(**kw) -> MaskGITConfig:  # tests and smoke runs
    return MaskGITConfig(**{**dict(vocab_size=16, grid=(2, 2, 2), n_layer=2, n_head=2, n_embd=32), **kw})
