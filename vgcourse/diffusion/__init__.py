"""Diffusion models: DDPM schedules, losses and samplers, the video U-Net."""

from vgcourse.diffusion.ddpm import (SamplingResult, ddim_sample, ddim_timesteps, ddpm_sample, diffusion_loss,
                                     guided_eps)
from vgcourse.diffusion.schedules import NoiseSchedule, cosine_schedule, linear_schedule
from vgcourse.diffusion.unet import (VideoUNet, VideoUNetConfig, count_parameters, estimate_parameters,
                                     video_unet_base, video_unet_small, video_unet_tiny)
