"""Diffusion models: DDPM schedules, losses and samplers (also in chunks), sampling from any state (editing,
continuation), the video U-Net; score models (NCSN and SDEs) with their losses and samplers."""

from vgcourse.diffusion.chunked import ddim_sample_chunked, in_chunks, rows
from vgcourse.diffusion.clean_context import Continuation
from vgcourse.diffusion.ddpm import (
    SamplingResult,
    ddim_loop,
    ddim_sample,
    ddim_sigma,
    ddim_step,
    ddim_timesteps,
    ddpm_sample,
    diffusion_loss,
    guided_eps,
)
from vgcourse.diffusion.editing import ddim_from, extend, replace_known, sdedit, sdedit_timesteps
from vgcourse.diffusion.ncsn import NoiseConditionalScore, annealed_langevin, dsm_loss, geometric_sigmas
from vgcourse.diffusion.samplers import (
    OFFSET_8BIT_BITS,
    ContinuousTimeWrapper,
    dequantize,
    dopri5,
    euler_maruyama_step,
    langevin_step,
    likelihood_bpd,
    log_likelihood,
    ode_encode,
    ode_sample,
    pc_sample,
    reverse_diffusion_step,
    score_from_eps,
)
from vgcourse.diffusion.schedules import NoiseSchedule, cosine_schedule, linear_schedule
from vgcourse.diffusion.sde import SDE, VESDE, VPSDE, ReverseSDE, SubVPSDE, sde_loss
from vgcourse.diffusion.unet import (
    UNetBlocks,
    VideoUNet,
    VideoUNetConfig,
    ddpm_256,
    ddpm_cifar10,
    estimate_parameters,
    video_unet_base,
    video_unet_small,
    video_unet_tiny,
)
from vgcourse.diffusion.v_prediction import VPrediction, v_target
