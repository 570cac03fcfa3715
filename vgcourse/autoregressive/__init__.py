"""Autoregressive and masked transformers over the codes of a video tokenizer: VideoGPT's GPT prior, MaskGIT and
Phenaki's text-conditioned MaskGIT with extension."""

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
from vgcourse.autoregressive.maskgit import (
    MaskGIT,
    MaskGITConfig,
    cosine_schedule,
    decode_schedule,
    decode_step,
    maskgit_tiny,
)
from vgcourse.autoregressive.phenaki import TextMaskGIT, extend, text_to_video

__all__ = ["GPTConfig", "GPT", "sample_next", "num_parameters", "flops_per_token", "videogpt_bair", "gpt_tiny",
           "VIDEOGPT_BAIR_PRIOR_PARAMS", "MaskGITConfig", "MaskGIT", "cosine_schedule", "decode_schedule",
           "maskgit_tiny", "decode_step", "TextMaskGIT", "extend", "text_to_video"]
