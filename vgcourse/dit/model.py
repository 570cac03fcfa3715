"""Diffusion Transformer (DiT; Peebles & Xie 2023) on spacetime patches.

A (B, C, T, H, W) latent video is cut into tubelets of pt×p×p, each embedded as one token; transformer
blocks conditioned on the timestep and class through adaLN-Zero denoise the tokens; a final layer maps
each token back to its tubelet. With T = 1 and pt = 1 this is the image DiT of the paper, its 2D sin-cos
position table included (:meth:`DiT.position_table`).

Flops follow the paper's convention (Peebles & Xie 2023, §4 and the authors' reply in
facebookresearch/DiT issue #14): one multiply-add counts as one flop. ``FlopCounterMode`` counts a
multiply-add as two flops, so :func:`measured_flops_per_forward` halves its total.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from vgcourse.nn.layouts import LAYOUTS, attention_flops, layout_step
from vgcourse.nn.parameters import count_parameters
from vgcourse.nn.positions import sincos_2d, sincos_3d
from vgcourse.nn.transformer import AdaLNBlock, modulate

FREQUENCY_DIM = 256  # sinusoidal features of the timestep before its MLP


@dataclass
class DiTConfig:
    """Shape of a DiT: input grid, patching, transformer size, conditioning, attention layout."""
    input_size: int = 32            # H = W of the (latent) input
    frames: int = 1                 # T
    in_channels: int = 4
    patch_size: int = 2             # p
    temporal_patch: int = 1         # pt
    hidden_size: int = 384          # D
    depth: int = 12
    num_heads: int = 6
    mlp_ratio: float = 4.0
    num_classes: int = 1000         # 0 = unconditional; index num_classes is the null (CFG) class
    learn_sigma: bool = False       # True: also predict the variance (out_channels = 2·in_channels)
    class_dropout_prob: float = 0.1
    attention_layout: str = "full"  # 'full' | 'factorised' | 'window' (see vgcourse.nn.layouts)
    window_size: int = 4            # w of the 'window' layout, in tokens
    temporal_window: int | None = None  # t' of the 'window' layout; None = all frames
    cond_channels: int = 0          # extra input channels (B, cond_channels, T, H, W) beside x, not predicted

    def __post_init__(self):
        if self.input_size % self.patch_size or self.frames % self.temporal_patch:
            raise ValueError(f"expected input_size divisible by patch_size and frames by temporal_patch, got "
                             f"input_size={self.input_size}, patch_size={self.patch_size}, frames={self.frames}, "
                             f"temporal_patch={self.temporal_patch}")
        if self.hidden_size % self.num_heads or self.hidden_size % 16:
            raise ValueError(f"expected hidden_size divisible by num_heads and by 16 (3D sin-cos embedding), got "
                             f"hidden_size={self.hidden_size}, num_heads={self.num_heads}")
        if self.attention_layout not in LAYOUTS:
            raise ValueError(f"expected attention_layout in {sorted(LAYOUTS)}, got {self.attention_layout!r}")

    @property
    def out_channels(self) -> int:
        return 2 * self.in_channels if self.learn_sigma else self.in_channels

    @property
    def grid(self) -> tuple[int, int, int]:
        """(T', H', W'): the token grid of the configured input."""
        s = self.input_size // self.patch_size
        return self.frames // self.temporal_patch, s, s


def patchify(x: torch.Tensor, pt: int, p: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, L, pt·p·p·C) tubelets in row-major (t, h, w) order."""
    return rearrange(x, "b c (nt pt) (nh ph) (nw pw) -> b (nt nh nw) (pt ph pw c)", pt=pt, ph=p, pw=p)


def unpatchify(tokens: torch.Tensor, grid: tuple[int, int, int], pt: int, p: int) -> torch.Tensor:
    """(B, L, pt·p·p·C) tubelets over a (T', H', W') grid -> (B, C, T'·pt, H'·p, W'·p)."""
    t, h, w = grid
    return rearrange(tokens, "b (nt nh nw) (pt ph pw c) -> b c (nt pt) (nh ph) (nw pw)",
                     nt=t, nh=h, nw=w, pt=pt, ph=p, pw=p)


class PatchEmbed3D(nn.Module):
    """Tubelet embedding: a Conv3d with stride = kernel = (pt, p, p), one token per tubelet."""

    def __init__(self, in_channels: int, hidden_size: int, patch_size: int, temporal_patch: int):
        super().__init__()
        kernel = (temporal_patch, patch_size, patch_size)
        self.proj = nn.Conv3d(in_channels, hidden_size, kernel_size=kernel, stride=kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Inputs: x (B, C, T, H, W). Returns (B, L, D), L = T'·H'·W'."""
        return rearrange(self.proj(x), "b d t h w -> b (t h w) d")  # (B, L, D)


class TimestepEmbedder(nn.Module):
    """Diffusion timestep -> vector: sinusoidal features followed by a two-layer SiLU MLP."""

    def __init__(self, hidden_size: int, frequency_dim: int = FREQUENCY_DIM, max_period: float = 10_000.0):
        super().__init__()
        if frequency_dim % 2:
            raise ValueError(f"frequency_dim holds a cos and a sin per frequency: expected an even number, got "
                             f"{frequency_dim}")
        self.frequency_dim, self.max_period = frequency_dim, max_period
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def sinusoidal(self, t: torch.Tensor) -> torch.Tensor:
        """(B,) timesteps, possibly fractional -> (B, frequency_dim) [cos(t·ω), sin(t·ω)]
        (Vaswani et al. 2017, §3.5)."""
        half = self.frequency_dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, device=t.device) / half)  # (half,)
        args = t.float()[:, None] * freqs[None]  # (B, half)
        return torch.cat([torch.cos(args), torch.sin(args)], dim=1)  # (B, frequency_dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """Inputs: t (B,). Returns (B, D)."""
        return self.mlp(self.sinusoidal(t).to(self.mlp[0].weight.dtype))  # (B, D)


class LabelEmbedder(nn.Module):
    """Class label -> vector, with a null class (index num_classes) and label dropout for classifier-free guidance."""

    def __init__(self, num_classes: int, hidden_size: int, dropout_prob: float):
        super().__init__()
        self.num_classes, self.dropout_prob = num_classes, dropout_prob
        self.embedding_table = nn.Embedding(num_classes + 1, hidden_size)  # + the null class

    def forward(self, labels: torch.Tensor, train: bool, force_drop: torch.Tensor | None = None) -> torch.Tensor:
        """Inputs: labels (B,) long; train: drop labels with prob class_dropout_prob; force_drop (B,) bool.
        Returns (B, D)."""
        drop = force_drop
        if drop is None and train and self.dropout_prob > 0:
            drop = torch.rand(labels.shape[0], device=labels.device) < self.dropout_prob
        if drop is not None:
            labels = torch.where(drop, torch.full_like(labels, self.num_classes), labels)  # (B,)
        return self.embedding_table(labels)  # (B, D)


class DiTBlock(AdaLNBlock):
    """A DiT block: the shared adaLN-Zero block (:class:`vgcourse.nn.transformer.AdaLNBlock`, Peebles & Xie 2023,
    §3.2) with one spacetime attention step of the DiT's layout.

    Inputs (forward): x (B, L, D) tokens; c (B, D) conditioning; grid (T', H', W'). Returns (B, L, D).
    Its modulation is zeroed by :meth:`DiT.initialize_weights`, with the rest of the DiT's initialisation, not here.
    """

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0, step: str = "full",
                 window_size: int = 4, temporal_window: int | None = None):
        super().__init__(hidden_size, num_heads, mlp_ratio, step=step, window_size=window_size,
                         temporal_window=temporal_window, zero_init=False)


class FinalLayer(nn.Module):
    """Output head: adaLN, then a linear map from each token to the pt·p·p·C_out values of its tubelet."""

    def __init__(self, hidden_size: int, patch_volume: int, out_channels: int):
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden_size, elementwise_affine=False, eps=1e-6)
        self.linear = nn.Linear(hidden_size, patch_volume * out_channels)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden_size, 2 * hidden_size))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        """Inputs: x (B, L, D); c (B, D). Returns (B, L, pt·p·p·C_out)."""
        shift, scale = self.adaLN_modulation(c).chunk(2, dim=1)  # 2×(B, D)
        return self.linear(modulate(self.norm_final(x), shift, scale))  # (B, L, pt*p*p*C_out)


class DiT(nn.Module):
    """The Diffusion Transformer: a denoiser of latent videos built from spacetime-patch tokens.

    Inputs (forward): x (B, C, T, H, W) noisy latents; t (B,) timesteps; y (B,) long labels or None
    (None = the null class); concat (B, cond_channels, T, H, W) frames patchified with x (with ``cond_channels``;
    None = zeros); context (B, hidden_size) a conditioning vector added to the timestep embedding, so that adaLN
    sees it in every block (a caption's, as in :class:`~vgcourse.dit.generation.TextDiT`; None = nothing).
    Returns (B, C_out, T, H, W): ε, followed by the variance channels if learn_sigma.
    """

    def __init__(self, config: DiTConfig):
        super().__init__()
        self.config = cfg = config
        self.x_embedder = PatchEmbed3D(cfg.in_channels + cfg.cond_channels, cfg.hidden_size, cfg.patch_size,
                                       cfg.temporal_patch)
        self.t_embedder = TimestepEmbedder(cfg.hidden_size)
        self.y_embedder = (LabelEmbedder(cfg.num_classes, cfg.hidden_size, cfg.class_dropout_prob)
                           if cfg.num_classes > 0 else None)
        # fixed sin-cos positions of the configured grid; other grids get theirs computed in forward
        self.register_buffer("pos_embed", self.position_table(cfg.grid), persistent=False)  # (L, D)
        self.blocks = nn.ModuleList([
            DiTBlock(cfg.hidden_size, cfg.num_heads, cfg.mlp_ratio, layout_step(cfg.attention_layout, i),
                     cfg.window_size, cfg.temporal_window) for i in range(cfg.depth)])
        patch_volume = cfg.temporal_patch * cfg.patch_size ** 2
        self.final_layer = FinalLayer(cfg.hidden_size, patch_volume, cfg.out_channels)
        self.initialize_weights()

    def position_table(self, grid: tuple[int, int, int], device: torch.device | str | None = None) -> torch.Tensor:
        """Fixed sin-cos positions (T'·H'·W', D) of a (T', H', W') token grid, row-major (t, h, w).

        An image DiT (configured with T' = 1) on a one-frame grid: the paper's 2D table (Peebles & Xie 2023,
        :func:`~vgcourse.nn.positions.sincos_2d`), every channel a position. Otherwise the 3D table
        (:func:`~vgcourse.nn.positions.sincos_3d`): a video DiT keeps it for one-frame inputs too, so that the
        images of joint image-video training have frame 0's positions (WALT).
        """
        if self.config.grid[0] == 1 and grid[0] == 1:
            return sincos_2d(self.config.hidden_size, grid[1:], device)  # (H'·W', D)
        return sincos_3d(self.config.hidden_size, grid, device)  # (T'·H'·W', D)

    def initialize_weights(self) -> None:
        # Every linear layer: Xavier-uniform weights, zero biases (as in ViT)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        # Patch embedding: initialised like the linear layer it is, on flattened tubelets
        w = self.x_embedder.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.zeros_(self.x_embedder.proj.bias)
        # Label table and timestep MLP: small normal weights
        if self.y_embedder is not None:
            nn.init.normal_(self.y_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[0].weight, std=0.02)
        nn.init.normal_(self.t_embedder.mlp[2].weight, std=0.02)
        # adaLN-Zero: zero modulation => every gate is 0, so every block starts as the identity
        for block in self.blocks:
            nn.init.zeros_(block.adaLN_modulation[-1].weight)
            nn.init.zeros_(block.adaLN_modulation[-1].bias)
        # Final layer zeroed => the model outputs exactly 0 at initialisation
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].weight)
        nn.init.zeros_(self.final_layer.adaLN_modulation[-1].bias)
        nn.init.zeros_(self.final_layer.linear.weight)
        nn.init.zeros_(self.final_layer.linear.bias)

    def _check_input(self, x: torch.Tensor, t: torch.Tensor) -> tuple[int, int, int]:
        cfg = self.config
        if not isinstance(x, torch.Tensor) or x.ndim != 5:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            hint = " (images? add a time axis with x[:, :, None])" if getattr(x, "ndim", 0) == 4 else ""
            raise ValueError(f"expected latents of shape (B, C, T, H, W), got {shape}{hint}")
        b, c, t_len, h, w = x.shape
        if c != cfg.in_channels:
            raise ValueError(f"expected C={cfg.in_channels} channels in (B, C, T, H, W), got {tuple(x.shape)}")
        if t_len % cfg.temporal_patch or h % cfg.patch_size or w % cfg.patch_size:
            raise ValueError(f"expected T divisible by temporal_patch={cfg.temporal_patch} and H, W divisible by "
                             f"patch_size={cfg.patch_size}, got (B, C, T, H, W) = {tuple(x.shape)}")
        if t.shape != (b,):
            raise ValueError(f"expected timesteps t of shape ({b},), got {tuple(t.shape)}")
        return t_len // cfg.temporal_patch, h // cfg.patch_size, w // cfg.patch_size

    def _labels(self, y: torch.Tensor | None, batch: int, device: torch.device) -> torch.Tensor | None:
        if self.y_embedder is None:
            if y is not None:
                raise ValueError("this DiT is unconditional (num_classes=0), got labels y; pass y=None")
            return None
        if y is None:
            return torch.full((batch,), self.config.num_classes, dtype=torch.long, device=device)  # null class
        if y.shape != (batch,) or y.dtype != torch.long:
            raise ValueError(f"expected labels y of shape ({batch},) and dtype long, got {tuple(y.shape)} {y.dtype}")
        return y

    def _with_concat(self, x: torch.Tensor, concat: torch.Tensor | None) -> torch.Tensor:
        """x (B, C, T, H, W) with its conditioning channels: (B, C + cond_channels, T, H, W)."""
        k = self.config.cond_channels
        if concat is None:
            return torch.cat([x, x.new_zeros(x.shape[0], k, *x.shape[2:])], dim=1) if k else x
        want = (x.shape[0], k, *x.shape[2:])
        if not k or tuple(concat.shape) != want:
            raise ValueError(f"expected concat of shape (B, cond_channels, T, H, W) = {want} "
                             f"(cond_channels={k}), got {tuple(concat.shape)}")
        return torch.cat([x, concat.to(x.dtype)], dim=1)

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None, label_dropout: bool,
                 concat: torch.Tensor | None = None, context: torch.Tensor | None = None) -> torch.Tensor:
        cfg = self.config
        grid = self._check_input(x, t)  # (T', H', W')
        pos = self.pos_embed if grid == cfg.grid else self.position_table(grid, device=x.device)  # (L, D)
        tokens = self.x_embedder(self._with_concat(x, concat))  # (B, L, D), L = T'·H'·W'
        tokens = tokens + pos.to(tokens.dtype)  # (B, L, D)
        c = self.t_embedder(t)  # (B, D)
        labels = self._labels(y, x.shape[0], x.device)
        if labels is not None:
            c = c + self.y_embedder(labels, label_dropout).to(c.dtype)  # (B, D)
        if context is not None:
            if context.shape != c.shape:
                raise ValueError(f"expected context of shape (B, hidden_size) = {tuple(c.shape)}, "
                                 f"got {tuple(context.shape)}")
            c = c + context.to(c.dtype)  # (B, D): adaLN sees time + condition
        for block in self.blocks:
            tokens = block(tokens, c, grid)  # (B, L, D)
        tokens = self.final_layer(tokens, c)  # (B, L, pt·p·p·C_out)
        return unpatchify(tokens, grid, cfg.temporal_patch, cfg.patch_size)  # (B, C_out, T, H, W)

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None,
                concat: torch.Tensor | None = None, context: torch.Tensor | None = None) -> torch.Tensor:
        """(B, C, T, H, W), (B,), (B,) or None -> (B, C_out, T, H, W); labels are dropped at rate
        class_dropout_prob in training."""
        return self._denoise(x, t, y, label_dropout=self.training, concat=concat, context=context)

    def forward_with_cfg(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, cfg_scale: float) -> torch.Tensor:
        """Classifier-free guided output: one batched pass with labels y and with the null class.

        ε̃ = ε(x, ∅) + s (ε(x, y) − ε(x, ∅)) (Ho & Salimans 2022, eq. (6)), on the first C = in_channels output
        channels only.

        Inputs: x (B, C, T, H, W); t (B,); y (B,) long; cfg_scale s (1 = no guidance).
        Returns: (B, C_out, T, H, W): guided ε, then the conditional variance channels if learn_sigma.
        """
        if self.y_embedder is None:
            raise ValueError("classifier-free guidance needs a class-conditional DiT, got num_classes=0")
        null = torch.full_like(y, self.config.num_classes)
        # (2B, C_out, T, H, W)
        out = self._denoise(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null]), label_dropout=False)
        cond, uncond = out.chunk(2)  # (B, C_out, T, H, W) each
        c = self.config.in_channels
        eps = uncond[:, :c] + cfg_scale * (cond[:, :c] - uncond[:, :c])  # Peebles & Xie 2023, §3.1 (Ho & Salimans 2022)
        return torch.cat([eps, cond[:, c:]], dim=1)  # (B, C_out, T, H, W)


# ----------------------------------------------------------------------------------------------
# Named configs: Peebles & Xie 2023, Table 1 (depth, width, heads) × patch size 2, 4, 8
# ----------------------------------------------------------------------------------------------
def DiT_XL_2(**kw) -> DiTConfig: return DiTConfig(depth=28, hidden_size=1152, num_heads=16, patch_size=2, **kw)
def DiT_XL_4(**kw) -> DiTConfig: return DiTConfig(depth=28, hidden_size=1152, num_heads=16, patch_size=4, **kw)
def DiT_XL_8(**kw) -> DiTConfig: return DiTConfig(depth=28, hidden_size=1152, num_heads=16, patch_size=8, **kw)
def DiT_L_2(**kw) -> DiTConfig: return DiTConfig(depth=24, hidden_size=1024, num_heads=16, patch_size=2, **kw)
def DiT_L_4(**kw) -> DiTConfig: return DiTConfig(depth=24, hidden_size=1024, num_heads=16, patch_size=4, **kw)
def DiT_L_8(**kw) -> DiTConfig: return DiTConfig(depth=24, hidden_size=1024, num_heads=16, patch_size=8, **kw)
def DiT_B_2(**kw) -> DiTConfig: return DiTConfig(depth=12, hidden_size=768, num_heads=12, patch_size=2, **kw)
def DiT_B_4(**kw) -> DiTConfig: return DiTConfig(depth=12, hidden_size=768, num_heads=12, patch_size=4, **kw)
def DiT_B_8(**kw) -> DiTConfig: return DiTConfig(depth=12, hidden_size=768, num_heads=12, patch_size=8, **kw)
def DiT_S_2(**kw) -> DiTConfig: return DiTConfig(depth=12, hidden_size=384, num_heads=6, patch_size=2, **kw)
def DiT_S_4(**kw) -> DiTConfig: return DiTConfig(depth=12, hidden_size=384, num_heads=6, patch_size=4, **kw)
def DiT_S_8(**kw) -> DiTConfig: return DiTConfig(depth=12, hidden_size=384, num_heads=6, patch_size=8, **kw)
# Course sizes (ours, not the paper's): tests and CPU runs
def DiT_Tiny(**kw) -> DiTConfig: return DiTConfig(**{**dict(depth=4, hidden_size=64, num_heads=4, patch_size=2), **kw})
def DiT_Mini(**kw) -> DiTConfig: return DiTConfig(**{**dict(depth=6, hidden_size=192, num_heads=6, patch_size=2), **kw})

DIT_CONFIGS = {"DiT-XL/2": DiT_XL_2, "DiT-XL/4": DiT_XL_4, "DiT-XL/8": DiT_XL_8,
               "DiT-L/2": DiT_L_2, "DiT-L/4": DiT_L_4, "DiT-L/8": DiT_L_8,
               "DiT-B/2": DiT_B_2, "DiT-B/4": DiT_B_4, "DiT-B/8": DiT_B_8,
               "DiT-S/2": DiT_S_2, "DiT-S/4": DiT_S_4, "DiT-S/8": DiT_S_8}
# The paper's ImageNet 256×256 setting: a 32×32×4 latent, one frame, 1000 classes, learned variance
PAPER_IMAGENET_256 = dict(input_size=32, frames=1, in_channels=4, num_classes=1000, learn_sigma=True)
# Peebles & Xie 2023, Table 4: forward Gflops (multiply-adds) at ImageNet 256×256
PAPER_GFLOPS = {"DiT-S/8": 0.36, "DiT-S/4": 1.41, "DiT-S/2": 6.06, "DiT-B/8": 1.42, "DiT-B/4": 5.56,
                "DiT-B/2": 23.01, "DiT-L/8": 5.01, "DiT-L/4": 19.70, "DiT-L/2": 80.71,
                "DiT-XL/8": 7.39, "DiT-XL/4": 29.05, "DiT-XL/2": 118.64}
# Parameters in millions by model size (DiT README: XL/2 675M; S 33M, B 130M, L 458M as cited by SiT, Table 1)
PAPER_PARAMS_M = {"S": 33, "B": 130, "L": 458, "XL": 675}


def num_parameters(config: DiTConfig) -> int:
    """Parameters of a DiT, counted on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        return count_parameters(DiT(config))


def flops_per_forward(config: DiTConfig) -> float:
    """Analytic forward Gflops for one sample, counting one multiply-add as one flop (the DiT paper's way).

    Counts every matrix product: the tubelet embedding, the timestep MLP, per block the qkv and output
    projections, the attention products of the layout and the MLP, the adaLN linears (once per sample),
    and the final linear. Norms, activations, softmax and additions are left out, as fvcore does.
    """
    cfg = config
    d, (t, h, w) = cfg.hidden_size, cfg.grid
    tokens, patch_volume = t * h * w, cfg.temporal_patch * cfg.patch_size ** 2
    mlp = int(d * cfg.mlp_ratio)
    embed = tokens * ((cfg.in_channels + cfg.cond_channels) * patch_volume) * d  # Conv3d = one linear per tubelet
    timestep = FREQUENCY_DIM * d + d * d  # timestep MLP
    block = tokens * (3 * d * d + d * d + 2 * d * mlp) + d * 6 * d  # qkv, proj, MLP; adaLN on c
    attn = attention_flops(cfg.attention_layout, cfg.grid, d, cfg.depth, cfg.window_size, cfg.temporal_window)
    final = d * 2 * d + tokens * d * patch_volume * cfg.out_channels  # adaLN; linear to tubelets
    return (embed + timestep + cfg.depth * block + attn + final) / 1e9


def measured_flops_per_forward(config: DiTConfig) -> float:
    """Forward Gflops for one sample measured by ``FlopCounterMode`` on the meta device, halved to count multiply-adds.

    Runs on meta tensors, so even DiT-XL/2 allocates nothing (and SDPA is counted, which it is not on CPU).
    """
    cfg = config
    with torch.device("meta"):
        model = DiT(cfg).eval()
        x = torch.empty(1, cfg.in_channels, cfg.frames, cfg.input_size, cfg.input_size)
        t = torch.zeros(1)
        y = torch.zeros(1, dtype=torch.long) if cfg.num_classes > 0 else None
        concat = torch.empty(1, cfg.cond_channels, *x.shape[2:]) if cfg.cond_channels else None
    with FlopCounterMode(display=False) as counter:
        model(x, t, y, concat)
    return counter.get_total_flops() / 2 / 1e9  # FlopCounterMode: 2 flops per multiply-add
