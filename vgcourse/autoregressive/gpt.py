"""The GPT prior of VideoGPT (Yan et al. 2021, §3.2): a causal transformer over a clip's grid of VQ codes.

A tokenizer (:mod:`vgcourse.tokenizers`) turns a clip into a (T, H, W) grid of codes in [0, K). The prior
reads the grid in raster order (t, h, w) and factorises its likelihood as p(x) = ∏_i p(x_i | x_<i), trained by
cross-entropy on the next code. Built the way nanoGPT builds GPT-2: a :class:`GPTConfig` dataclass, the shared
causal pre-LN :class:`~vgcourse.nn.transformer.Block`, :meth:`GPT.configure_optimizers` (weight decay on matrices
only), :meth:`GPT.generate` beside the model (temperature, top-k, a KV cache), and the FLOPs per token that MFU
needs (:func:`flops_per_token`).

Positions, as in VideoGPT, are those of the code being predicted: the input at grid position i is code i − 1
(the start token at i = 0), plus the embedding of position i, and the output there predicts code i. With
``position="factorised"`` the embedding of (t, h, w) is the sum of one learned vector per axis (VideoGPT's
spatio-temporal embedding broadcasts one table per axis and concatenates them, D/3 channels each; summing needs no
divisibility and has T + H + W vectors either way); ``"learned"`` gives every position its own vector (nanoGPT).

Conditioning is by prefix tokens: a class label replaces the start token (one start token per class), and the
codes of given first frames are a prefix that :meth:`GPT.generate` continues (exact for an autoregressive model).
Differences from nanoGPT: the start/class tokens, the grid positions, and no weight tying (the output head predicts
K codes while the input table also holds the start tokens; VideoGPT does not tie either).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from vgcourse.autoregressive.grid_config import CodeGridConfig
from vgcourse.nn.attention import DECODE_BACKENDS, decode_backends
from vgcourse.nn.parameters import count_parameters
from vgcourse.nn.positions import GridPositions, raster_codes
from vgcourse.nn.transformer import Block, KVCache

NO_CLASS = -1  # the label of "no class": the unconditional start token (classifier-free guidance)


@dataclass
class GPTConfig(CodeGridConfig):
    """Shape of a GPT prior: :class:`CodeGridConfig` (the code grid, the transformer's size, its conditioning: a
    class label is the start token) and ``bias``, nanoGPT's switch for biases in the linear layers and norms."""

    bias: bool = True


class GPT(nn.Module):
    """A causal transformer over code grids: logits of each code given the codes before it in raster order.

    Inputs (forward): tokens (B, T, H, W) or (B, L) long codes in [0, K); y (B,) long class labels (with
    ``num_classes``) or None. Returns logits (B, L, K) and the mean cross-entropy in nats per code.

    ``decode_backends``: the SDPA backends :meth:`generate` may use (None: PyTorch's own choice).
    """

    decode_backends: tuple | None = DECODE_BACKENDS

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = cfg = config
        d = cfg.n_embd
        # input ids: the K codes, then the start token (id K), then one start token per class (id K + 1 + y)
        self.tok_emb = nn.Embedding(cfg.vocab_size + 1 + cfg.num_classes, d)
        self.pos = GridPositions(cfg.grid, d, cfg.position)  # (t, h, w) of the code each position predicts
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(d, cfg.n_head, cfg.mlp_ratio, causal=True, bias=cfg.bias,
                                          dropout=cfg.dropout) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(d, bias=cfg.bias)
        self.head = nn.Linear(d, cfg.vocab_size, bias=False)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        # GPT-2 / nanoGPT: every linear and embedding N(0, 0.02), zero biases
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
        for p in self.pos.parameters():
            nn.init.normal_(p, std=0.02)
        # the projections that write into the residual stream: std 0.02/√(2·n_layer) (GPT-2, Radford et al. 2019)
        for block in self.blocks:
            for proj in (block.attn.proj, block.mlp[2]):
                nn.init.normal_(proj.weight, std=0.02 / math.sqrt(2 * self.config.n_layer))

    def start_ids(self, batch: int, y: torch.Tensor | None, device: torch.device,
                  check_values: bool = False) -> torch.Tensor:
        """(B, 1) the start token of this prior's codes: :func:`start_tokens`."""
        return start_tokens(batch, y, self.config.vocab_size, self.config.num_classes, device, check_values)

    def _flat(self, tokens: torch.Tensor) -> torch.Tensor:
        """Codes (B, T, H, W) or (B, L) in [0, K) -> (B, L) in raster order, checked (:func:`raster_codes`)."""
        return raster_codes(tokens, self.config.grid, self.config.vocab_size)

    def logits(self, ids: torch.Tensor, cache: list[KVCache] | None = None) -> torch.Tensor:
        """The transformer on input ids (B, n) at the next n grid positions (after the cached ones): (B, n, K)."""
        start = cache[0].length if cache is not None else 0
        x = self.drop(self.tok_emb(ids) + self.pos(start, ids.shape[1]))  # (B, n, D)
        for i, block in enumerate(self.blocks):
            x = block(x, cache=None if cache is None else cache[i])  # (B, n, D)
        return self.head(self.ln_f(x))  # (B, n, K)

    def forward(self, tokens: torch.Tensor, y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher forcing: (B, T, H, W) or (B, L) codes -> logits (B, L, K), mean cross-entropy (nats/code)."""
        tokens = self._flat(tokens)  # (B, L)
        ids = torch.cat([self.start_ids(tokens.shape[0], y, tokens.device), tokens[:, :-1]], dim=1)  # right shift
        logits = self.logits(ids)  # (B, L, K)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), tokens.flatten())  # -log p(x_i | x_<i), averaged
        return logits, loss

    def new_cache(self) -> list[KVCache]:
        """One empty KV cache per block, each for the L codes of a clip."""
        return [KVCache(self.config.block_size) for _ in self.blocks]

    @torch.no_grad()
    def generate(self, n: int | None = None, y: torch.Tensor | None = None, prefix: torch.Tensor | None = None,
                 temperature: float = 1.0, top_k: int | None = None, generator: torch.Generator | None = None,
                 use_cache: bool = True, guidance: float = 1.0) -> torch.Tensor:
        """Sample code grids (B, T, H, W), one code at a time in raster order.

        Inputs: n clips, or as many as labels y (B,) / prefix (B, P) codes given (e.g. the first frame's H·W codes,
        which are kept); temperature divides the logits; top_k keeps the k likeliest codes (nanoGPT's
        ``generate``); generator on the model's device. With ``use_cache`` each step runs the transformer on the
        newest code only, reading earlier keys and values from a :class:`KVCache`; without it, on the whole
        sequence so far (nanoGPT's way; the same samples, L/2 times the work). Either way every step meets a new
        key length, so the loop runs under :attr:`decode_backends` (by default every SDPA backend but cuDNN's, which
        builds a plan per new shape; see :data:`vgcourse.nn.attention.DECODE_BACKENDS`).

        ``guidance`` s ≠ 1 (labels y needed): classifier-free guidance (Ho & Salimans 2022, eq. (6), s = 1 + w) on
        every step's logits, ℓ(∅) + s (ℓ(y) − ℓ(∅)), the unconditional ℓ(∅) from the start token of :data:`NO_CLASS`
        continuing the same codes; both halves run as one batch of 2B, so a guided clip costs two.
        """
        cfg, device = self.config, self.head.weight.device
        given = [z.shape[0] for z in (y, prefix) if z is not None] + ([n] if n is not None else [])
        if not given or len(set(given)) != 1:
            raise ValueError(f"give the number of clips n, labels y or a prefix, with one batch size; got {given}")
        if temperature <= 0 or (top_k is not None and not 1 <= top_k <= cfg.vocab_size):
            raise ValueError(f"expected temperature > 0 and top_k in [1, {cfg.vocab_size}], got {temperature}, {top_k}")
        b = given[0]
        guided = guidance != 1.0
        if guided and (y is None or not guidance > 0):
            raise ValueError(f"classifier-free guidance needs labels y and a scale s > 0, got s={guidance}, "
                             f"y {'given' if y is not None else 'None'}")
        codes = torch.zeros(b, 0, dtype=torch.long, device=device)
        if prefix is not None:
            codes = prefix.reshape(b, -1).long().to(device)
            if codes.shape[1] >= cfg.block_size or codes.is_floating_point() or codes.min() < 0 \
                    or codes.max() >= cfg.vocab_size:
                raise ValueError(f"expected a prefix of fewer than L={cfg.block_size} codes in [0, {cfg.vocab_size}),"
                                 f" got {tuple(prefix.shape)}")
        start = self.start_ids(b, y, device, check_values=True)  # (B, 1)
        if guided:  # rows B..2B-1: the same codes after the unconditional start token
            start = torch.cat([start, self.start_ids(b, torch.full_like(y, NO_CLASS), device)])  # (2B, 1)
        ids = torch.cat([start, codes.repeat(2, 1) if guided else codes], dim=1)  # (B or 2B, 1 + P)
        cache = self.new_cache() if use_cache else None
        step_ids = ids
        with decode_backends(self.decode_backends):
            while codes.shape[1] < cfg.block_size:
                logits = self.logits(step_ids if use_cache else ids, cache)[:, -1]  # (B or 2B, K): next code's logits
                if guided:
                    cond, uncond = logits.float().chunk(2)
                    logits = uncond + guidance * (cond - uncond)  # (B, K)
                nxt = sample_next(logits, temperature, top_k, generator)  # (B, 1)
                step_ids = nxt.repeat(2, 1) if guided else nxt
                codes, ids = torch.cat([codes, nxt], dim=1), torch.cat([ids, step_ids], dim=1)
        return codes.view(b, *cfg.grid)  # (B, T, H, W)

    def configure_optimizers(self, weight_decay: float, learning_rate: float, betas: tuple[float, float] = (0.9, 0.95),
                             device_type: str | None = None) -> torch.optim.AdamW:
        """AdamW with weight decay on every matrix (linear weights, embedding and position tables) and none on
        vectors (biases, norms), nanoGPT's two groups; the fused kernel on CUDA."""
        params = [p for p in self.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
                  {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]
        device_type = device_type or self.head.weight.device.type
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=device_type == "cuda")


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """One code per row from logits (B, K): softmax(logits / temperature) over the top_k likeliest. Returns (B, 1)."""
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)  # (B, 1)


def start_tokens(batch: int, y: torch.Tensor | None, vocab_size: int, num_classes: int, device: torch.device,
                 check_values: bool = False) -> torch.Tensor:
    """(B, 1) the start token of a prior over K = ``vocab_size`` codes: id K, or id K + 1 + y for class labels y (B,)
    (their range checked with ``check_values``, a device sync that training steps skip).

    The label :data:`NO_CLASS` (−1) is the unconditional start token K: a class-conditional prior trained with
    some labels dropped to it learns p(x) and p(x | y) in one network, which classifier-free guidance needs.
    """
    k = vocab_size
    if y is None:
        return torch.full((batch, 1), k, dtype=torch.long, device=device)
    if not num_classes:
        raise ValueError("this prior is unconditional (num_classes=0), got labels y; pass y=None")
    if y.shape != (batch,) or y.is_floating_point() or (check_values and (y.min() < NO_CLASS or
                                                                             y.max() >= num_classes)):
        raise ValueError(f"expected labels y of shape ({batch},) in [0, {num_classes}) or {NO_CLASS} (no class), got "
                         f"{tuple(y.shape)} {y.dtype}")
    return (k + 1 + y.long()).view(batch, 1).to(device)


def num_parameters(config: GPTConfig, non_embedding: bool = False) -> int:
    """Parameters of a GPT, counted on the meta device; ``non_embedding`` leaves out the token and position
    tables (lookups, no multiply-adds), the N of 6N."""
    with torch.device("meta"):
        model = GPT(config)
    total = count_parameters(model)
    if non_embedding:
        total -= model.tok_emb.weight.numel() + count_parameters(model.pos)
    return total


def flops_per_token(config: GPTConfig) -> float:
    """Training FLOPs (forward and backward) per code: 6N + 12·n_layer·n_embd·L.

    Chowdhery et al. 2022 (PaLM), appendix B, as nanoGPT's ``estimate_mfu``: 6N for the matrix products of the
    N non-embedding parameters (2 FLOPs per multiply-add, backward twice the forward) and 12·n_layer·D·L for the
    attention products Q Kᵀ and A V over a sequence of L = T·H·W (counted whole, as a non-causal kernel computes
    them). Per clip: × L. MFU = flops_per_token · codes/s ÷ the device's peak (:func:`vgcourse.train.mfu`).
    """
    return 6.0 * num_parameters(config, non_embedding=True) + 12.0 * config.n_layer * config.n_embd * config.block_size


# ----------------------------------------------------------------------------------------------
# VideoGPT's prior on BAIR at the paper's size, and course sizes
# ----------------------------------------------------------------------------------------------
def videogpt_bair(**kw) -> GPTConfig:
    """VideoGPT's BAIR prior: 8 layers, 4 heads × 128, hidden 512, MLP ×4, over the 8×32×32 grid of 1,024 codes
    that the 2×2×2-downsampling VQ-VAE makes of 16×64×64 clips (the paper code's ``gpt_small`` and
    ``vae_res64_ds222`` configs, wilson1yan/VideoGPT-Paper ``videogpt/config_model.py``)."""
    return GPTConfig(**{**dict(vocab_size=1024, grid=(8, 32, 32), n_layer=8, n_head=4, n_embd=512), **kw})


# The unconditional prior of that code, counted from its layers: fc_in 256·512 (code vectors in), a start vector,
# 4 position tables of 128 channels over (8, 32, 32, 1), per layer q, k, v, out 4·512² (no biases) + MLP 512·2048·2
# + 2048 + 512 + two norms 2·2·512, a final norm, and fc_out 512·1024 (no bias). Its frame-conditioning network for
# BAIR (a ResNet-34 and a cross-attention per layer) is not counted.
VIDEOGPT_BAIR_PRIOR_PARAMS = (256 * 512 + 512 + (8 + 32 + 32 + 1) * 128
                              + 8 * (4 * 512 ** 2 + 2 * 512 * 2048 + 2048 + 512 + 4 * 512)
                              + 2 * 512 + 512 * 1024)


def gpt_tiny(**kw) -> GPTConfig:  # tests and smoke runs
    return GPTConfig(**{**dict(vocab_size=16, grid=(2, 2, 2), n_layer=2, n_head=2, n_embd=32), **kw})
