"""Autoregressive and masked transformers over the codes of a video tokenizer: VideoGPT's GPT prior (with its
training and sampling helpers), CogVideo's dual-channel attention, MaskGIT, and Phenaki's text-conditioned
MaskGIT with extension; and a GRU prior, the recurrent baseline their parallel training is measured against."""

from vgcourse.autoregressive.cogvideo import DualChannelAttention, frame_mask
from vgcourse.autoregressive.gpt import (
    GPT,
    NO_CLASS,
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
from vgcourse.autoregressive.recurrent import (
    GRUPrior,
    GRUPriorConfig,
    gru_flops_per_token,
    gru_matching,
    gru_parameters,
)
from vgcourse.autoregressive.videogpt import (
    NUM_PAIRS,
    TokenBatches,
    encode_dataset,
    heldout_bits,
    heldout_bits_per_clip,
    load_tokenizer_if_shipped,
    pair_digits,
    pair_label,
    prior_loss,
    sample_videos,
    videogpt_digits,
)

__all__ = ["GPTConfig", "GPT", "NO_CLASS", "sample_next", "num_parameters", "flops_per_token", "videogpt_bair",
           "gpt_tiny", "VIDEOGPT_BAIR_PRIOR_PARAMS", "MaskGITConfig", "MaskGIT", "cosine_schedule", "decode_schedule",
           "maskgit_tiny", "decode_step", "TextMaskGIT", "extend", "text_to_video",
           "NUM_PAIRS", "TokenBatches", "encode_dataset", "heldout_bits",
           "load_tokenizer_if_shipped", "pair_digits", "pair_label", "prior_loss", "sample_videos", "videogpt_digits",
           "DualChannelAttention", "frame_mask", "heldout_bits_per_clip", "GRUPriorConfig", "GRUPrior",
           "gru_parameters", "gru_flops_per_token", "gru_matching"]
