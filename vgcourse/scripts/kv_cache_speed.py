"""Time a GPT prior's sampling with and without its KV cache, by attention backend and by call.

    python -m vgcourse.scripts.kv_cache_speed                 # the course's prior size, on CUDA if there is one
    python -m vgcourse.scripts.kv_cache_speed --tiny --out speed.json

Chapter 06 measured a KV cache's speed-up of about 8x on a CPU and about 1.1x on an H100, where each decode step
took about 60 ms whatever the batch. The explanation this script tested (on an H100, 2026-12-07): a backend of
``F.scaled_dot_product_attention`` that builds an execution plan for each new shape (cuDNN's); a cached decode step
meets a new key length at every step, so a first sampling call paid for a plan per step (2,091 ms per clip at batch
8; a second call with the same shapes 101 ms; a first call without cuDNN's backend 132 ms). ``GPT.generate`` now
leaves that backend out (``GPT.decode_backends``); the row "PyTorch's choice" puts it back. This script trains
nothing: it samples from random weights (speed does not depend on them) and prints, per batch size and backend
choice, the ms per clip of a first and a second call with the cache and of one call without it.
"""

from __future__ import annotations

import argparse
import json
from contextlib import nullcontext
from pathlib import Path

import torch

from vgcourse.autoregressive import GPT, gpt_tiny, videogpt_digits
from vgcourse.nn.attention import DECODE_BACKENDS
from vgcourse.results import timed

BACKENDS = {"PyTorch's choice": None, "without cuDNN": DECODE_BACKENDS}  # the second is GPT.generate's default


def measure(model: GPT, batch: int, backend: str, device: torch.device) -> dict[str, float]:
    """ms per clip of a first and a second cached call and of an uncached call, for one batch size and backend."""
    labels = torch.zeros(batch, dtype=torch.long, device=device)
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
    model.decode_backends = BACKENDS[backend]  # what generate() decodes with, for this row

    def call(use_cache: bool) -> float:
        g = torch.Generator(device).manual_seed(0)
        return timed(lambda: model.generate(y=labels, generator=g, use_cache=use_cache), device)[1]

    with amp:
        first, second, uncached = call(True), call(True), call(False)
    steps = model.config.block_size
    return {"cached_first_ms_per_clip": 1e3 * first / batch, "cached_second_ms_per_clip": 1e3 * second / batch,
            "uncached_ms_per_clip": 1e3 * uncached / batch, "cached_second_ms_per_step": 1e3 * second / steps,
            "speedup_second": uncached / second}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny prior (a quick check of the script)")
    parser.add_argument("--batches", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--out", type=Path, help="write the table as JSON here")
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    config = gpt_tiny(num_classes=1) if args.tiny else videogpt_digits()
    torch.manual_seed(0)
    model = GPT(config).to(device).eval()
    table = {}
    print(f"{device} {torch.cuda.get_device_name(device) if device.type == 'cuda' else ''} torch {torch.__version__}; "
          f"{config.block_size} codes a clip, {config.n_layer} × {config.n_embd}")
    print(f"{'batch':>6s} {'backend':>17s} {'first':>9s} {'second':>9s} {'uncached':>9s} {'per step':>9s} "
          f"{'speed-up':>9s}   (ms per clip; per step: ms, second call)")
    for batch in args.batches:
        for backend in BACKENDS:
            r = measure(model, batch, backend, device)
            table[f"{batch} {backend}"] = r
            print(f"{batch:6d} {backend:>17s} {r['cached_first_ms_per_clip']:9.2f} "
                  f"{r['cached_second_ms_per_clip']:9.2f} {r['uncached_ms_per_clip']:9.2f} "
                  f"{r['cached_second_ms_per_step']:9.2f} {r['speedup_second']:8.1f}x")
    if args.out:
        args.out.write_text(json.dumps({"device": str(device), "torch": torch.__version__, "table": table}, indent=2))
    return table


if __name__ == "__main__":
    main()
