"""The shape every prior over a tokenizer's code grid shares: K codes on a (T, H, W) grid, a transformer's size and
its class conditioning. :class:`~vgcourse.autoregressive.gpt.GPTConfig` (causal, VideoGPT) and
:class:`~vgcourse.autoregressive.maskgit.MaskGITConfig` (bidirectional, MaskGIT) add what is theirs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CodeGridConfig:
    """K = ``vocab_size`` codes on a ``grid`` (T, H, W); a transformer of ``n_layer`` blocks of width ``n_embd`` with
    ``n_head`` heads; ``num_classes`` > 0 for a class-conditional prior; ``position``: 'factorised' (a learned vector
    per t, h and w, summed) or 'learned' (one per position)."""

    vocab_size: int = 512                  # K codes of the tokenizer
    grid: tuple[int, int, int] = (4, 8, 8)  # (T, H, W) codes of one clip
    n_layer: int = 8
    n_head: int = 8
    n_embd: int = 512
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    num_classes: int = 0                   # > 0: the prior is class-conditional
    position: str = "factorised"           # 'factorised' (a vector per t, h, w, summed) | 'learned' (per position)

    def __post_init__(self):
        self.grid = tuple(self.grid)
        if len(self.grid) != 3 or min(self.grid) < 1:
            raise ValueError(f"expected a code grid (T, H, W) of positive sizes, got {self.grid}")
        if self.n_embd % self.n_head:
            raise ValueError(f"expected n_embd divisible by n_head, got n_embd={self.n_embd}, n_head={self.n_head}")
        if self.position not in ("factorised", "learned"):
            raise ValueError(f"expected position 'factorised' or 'learned', got {self.position!r}")
        if self.vocab_size < 2 or self.num_classes < 0:
            raise ValueError(f"expected vocab_size ≥ 2 and num_classes ≥ 0, got {self.vocab_size}, {self.num_classes}")

    @property
    def block_size(self) -> int:
        """L = T·H·W: the codes of one clip, the longest sequence the prior reads."""
        t, h, w = self.grid
        return t * h * w
