"""Autoregressive and masked transformers over the codes of a video tokenizer: VideoGPT's GPT prior."""

from vgcourse.autoregressive.gpt import (
    GPT,
    VIDEOGPT_BAIR_PRIOR_PARAMS,
    GPTConfig,
    flops_per_token,
    gpt_tiny,
    num_parameters,
    sample_next,
    videogpt_bair,
)

__all__ = ["GPTConfig", "GPT", "sample_next", "num_parameters", "flops_per_token", "videogpt_bair", "gpt_tiny",
           "VIDEOGPT_BAIR_PRIOR_PARAMS"]
