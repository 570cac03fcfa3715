"""A recurrent prior over a clip's codes: the sequential baseline for the transformer's parallel training.

Before transformers, sequence models were recurrent: an RNN reads x_1, x_2, ... one at a time and predicts each
next token from its state (Cho et al. 2014's GRU). It models p(x) = ∏ᵢ p(xᵢ | x₍<ᵢ₎) exactly as a causal
transformer does, and in teacher forcing it sees the same right-shifted codes, but its state at position i needs its
state at i − 1, so the L positions of a clip are computed one after another, where a causal transformer computes all
of them at once (Vaswani et al. 2017, §4: "the number of sequential operations"). The survey (§2.1) credits this
parallel training for the transformer era; :class:`GRUPrior` has the interface of
:class:`vgcourse.autoregressive.gpt.GPT` (``forward``, ``config.num_classes``), so that the same loop, loss
(:func:`vgcourse.autoregressive.videogpt.prior_loss`) and held-out bits measure both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vgcourse.autoregressive.gpt import start_tokens
from vgcourse.nn.parameters import count_parameters
from vgcourse.nn.positions import raster_codes


@dataclass
class GRUPriorConfig:
    """Sizes of a :class:`GRUPrior`: a code grid (T, H, W) read in raster order, ``vocab_size`` codes,
    ``num_classes`` class labels (0: unconditional), ``n_layer`` stacked GRUs of ``hidden`` units."""

    vocab_size: int = 512
    grid: tuple[int, int, int] = (4, 8, 8)
    n_layer: int = 2
    hidden: int = 512
    num_classes: int = 0

    def __post_init__(self):
        self.grid = tuple(self.grid)
        if len(self.grid) != 3 or min(self.grid) < 1 or self.vocab_size < 2 or self.n_layer < 1 or self.hidden < 1:
            raise ValueError(f"expected a grid (T, H, W) of positive sides, vocab_size >= 2, n_layer >= 1 and "
                             f"hidden >= 1, got grid={self.grid}, vocab_size={self.vocab_size}, "
                             f"n_layer={self.n_layer}, hidden={self.hidden}")

    @property
    def block_size(self) -> int:
        """L = T·H·W codes per clip."""
        return self.grid[0] * self.grid[1] * self.grid[2]


class GRUPrior(nn.Module):
    """A GRU language model over the raster-ordered codes of a clip.

    Token embedding (the K codes, a start token K and one start token per class, as GPT's) -> ``n_layer`` GRUs
    (Cho et al. 2014, eq. (5)-(8), in nn.GRU's form, which applies the reset gate after the recurrent product:
    r = σ(W_r x + U_r h + b_r), z = σ(W_z x + U_z h + b_z), h̃ = tanh(W x + b + r ⊙ (U h + b_hn)),
    h' = z ⊙ h + (1 − z) ⊙ h̃) -> LayerNorm -> a linear head to the K code logits. No position table: the state
    carries where in the sequence it is.

    Inputs (forward): codes (B, T, H, W) or (B, L) integers, labels y (B,) or None. Returns logits (B, L, K) and the
    mean cross-entropy in nats per code, as :meth:`GPT.forward`. The GRU itself runs in fp32 under any autocast.
    """

    def __init__(self, config: GRUPriorConfig):
        super().__init__()
        self.config = config
        k, d = config.vocab_size, config.hidden
        self.tok_emb = nn.Embedding(k + 1 + config.num_classes, d)
        self.gru = nn.GRU(d, d, num_layers=config.n_layer, batch_first=True)
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, k, bias=False)

    def start_ids(self, batch: int, y: torch.Tensor | None, device: torch.device,
                  check_values: bool = False) -> torch.Tensor:
        """(B, 1) the start token, as GPT's: :func:`vgcourse.autoregressive.gpt.start_tokens`."""
        return start_tokens(batch, y, self.config.vocab_size, self.config.num_classes, device, check_values)

    def forward(self, tokens: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = raster_codes(tokens, self.config.grid, self.config.vocab_size)  # (B, L)
        ids = torch.cat([self.start_ids(tokens.shape[0], y, tokens.device), tokens[:, :-1]], dim=1)  # right shift
        x = self.tok_emb(ids)  # (B, L, D)
        with torch.autocast(x.device.type, enabled=False):  # the GRU in fp32: cuDNN's in bf16 needs cuDNN >= 9.13
            h, _ = self.gru(x.float())  # (B, L, D): position i has read ids 0..i, one step after another
        logits = self.head(self.ln_f(h))  # (B, L, K)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), tokens.flatten())  # -log p(x_i | x_<i), averaged
        return logits, loss


def gru_parameters(config: GRUPriorConfig, non_embedding: bool = False) -> int:
    """Parameters of a :class:`GRUPrior`, counted on the meta device (as :func:`~vgcourse.autoregressive.gpt.
    num_parameters`); ``non_embedding`` leaves out the token table (lookups, no multiply-adds), the N of 6N."""
    with torch.device("meta"):
        model = GRUPrior(config)
    return count_parameters(model) - (model.tok_emb.weight.numel() if non_embedding else 0)


def gru_flops_per_token(config: GRUPriorConfig) -> float:
    """Training FLOPs (forward and backward) per code: 6N over the N non-embedding parameters, the same count as
    :func:`vgcourse.autoregressive.gpt.flops_per_token` without its attention term (a GRU has none)."""
    return 6.0 * gru_parameters(config, non_embedding=True)


def gru_matching(params: int, vocab_size: int, grid: tuple[int, int, int], n_layer: int = 2,
                 num_classes: int = 0) -> GRUPriorConfig:
    """The :class:`GRUPriorConfig` of ``n_layer`` layers whose parameter count is closest to ``params`` (say, a
    GPT's), for a comparison at equal parameters."""
    if params < 1:
        raise ValueError(f"expected a positive number of parameters, got {params}")
    # about n_layer·6D² + (2K + 1 + C + 6·n_layer + 2)·D parameters (a GRU layer's three gates hold 2D² weights and
    # 2D biases each; the table, LayerNorm and head the rest): its positive root, then the best integer near it
    a, b = 6 * n_layer, 2 * vocab_size + 1 + num_classes + 6 * n_layer + 2
    root = (-b + math.sqrt(b * b + 4 * a * params)) / (2 * a)
    candidates = [GRUPriorConfig(vocab_size, grid, n_layer, max(1, d), num_classes)
                  for d in range(max(1, int(root) - 2), int(root) + 3)]
    return min(candidates, key=lambda c: abs(gru_parameters(c) - params))
