"""The factorised space-time U-Net (Ho et al. 2022): shapes, frame independence, time order, gradients, errors."""

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from vgcourse.diffusion import (
    VideoUNet,
    diffusion_loss,
    estimate_parameters,
    linear_schedule,
    video_unet_base,
    video_unet_tiny,
)
from vgcourse.diffusion.unet import (
    JointSpaceTimeAttention,
    ResBlock,
    SpaceTimeBlock,
    TemporalAttention,
    TemporalConv,
    UNetBlocks,
    ddpm_256,
    ddpm_cifar10,
)
from vgcourse.nn import count_parameters, randomised
from vgcourse.nn.attention import attention


def make(**kw) -> VideoUNet:
    torch.manual_seed(0)
    return VideoUNet(video_unet_tiny(**kw))


@pytest.mark.parametrize("frames", [1, 8])
def test_output_shape_equals_input_shape(frames):
    model = make(in_channels=3)
    x, t = torch.randn(2, 3, frames, 16, 16), torch.tensor([0, 999])
    out = model(x, t)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert (out == 0).all()  # zero-initialised output conv: the untrained model predicts ε = 0
    assert make(out_channels=2)(x[:, :1], t).shape == (2, 2, frames, 16, 16)


def test_frames_are_independent_without_temporal_attention():
    model = randomised(make())
    x, t = torch.randn(2, 1, 4, 16, 16), torch.tensor([5, 700])
    y = x.clone()
    y[0, :, 2] = torch.randn(1, 16, 16)  # change one frame of the first clip
    with torch.no_grad():
        off_x, off_y = model(x, t, temporal_attention=False), model(y, t, temporal_attention=False)
        on_x, on_y = model(x, t), model(y, t)
        mixed = model(y, t, temporal_attention=torch.tensor([False, True]))
    others = [0, 1, 3]
    assert torch.allclose(off_x[0, :, others], off_y[0, :, others], atol=1e-6)  # other frames untouched
    assert not torch.allclose(off_x[0, :, 2], off_y[0, :, 2], atol=1e-3)
    assert not torch.allclose(on_x[0, :, others], on_y[0, :, others], atol=1e-3)  # with it, frames mix
    assert torch.allclose(mixed[0], off_y[0], atol=1e-6) and torch.allclose(mixed[1], on_y[1], atol=1e-6)
    # a single frame is the same image whatever clip it is packed into
    with torch.no_grad():
        alone = model(x[:, :, 2:3], t, temporal_attention=False)
    assert torch.allclose(alone[:, :, 0], off_x[:, :, 2], atol=1e-5)


def test_self_only_temporal_attention_equals_masked_attention():
    block = randomised(TemporalAttention(8, heads=2, groups=4, max_frames=5))
    frames, x = 5, torch.randn(2 * 5, 8, 3, 3)  # (B·T, C, H, W)
    tokens = rearrange(block.norm(x), "(b t) c h w -> (b h w) t c", t=frames)
    q, k, v = rearrange(block.attn.qkv(tokens), "n t (three h d) -> three n h t d", three=3, h=2)
    out = attention(q, k, v, bias=torch.eye(frames, dtype=torch.bool))  # each frame attends to itself
    out = block.attn.proj(rearrange(out, "n h t d -> n t (h d)"))
    expected = x + rearrange(out, "(b h w) t c -> (b t) c h w", h=3, w=3)
    with torch.no_grad():
        assert torch.allclose(block(x, frames, False), expected, atol=1e-5)


def test_relative_positions_give_frame_order():
    block = randomised(TemporalAttention(8, heads=2, groups=4, max_frames=4))
    bias = block.position_bias(3, torch.device("cpu"))  # (1, heads, T, T)
    assert bias.shape == (1, 2, 3, 3)
    for i in range(3):
        for j in range(3):
            assert torch.equal(bias[0, :, i, j], block.rel_bias[j - i + 3])  # table over offsets j - i
    model = randomised(make())
    x, t = torch.randn(1, 1, 6, 16, 16), torch.tensor([300])
    with torch.no_grad():
        assert not torch.allclose(model(x.flip(2), t).flip(2), model(x, t), atol=1e-3)  # order matters
        for m in model.modules():
            if isinstance(m, TemporalAttention):
                m.rel_bias.zero_()
        # without position bias, attention over frames is permutation-equivariant
        assert torch.allclose(model(x.flip(2), t).flip(2), model(x, t), atol=1e-5)


def test_gradients_reach_every_parameter():
    model = randomised(make(num_classes=3)).train()
    x0 = torch.rand(2, 1, 4, 16, 16) * 2 - 1
    loss = diffusion_loss(model, x0, linear_schedule(100), cond=torch.tensor([0, 2]),
                          generator=torch.Generator().manual_seed(0))
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        if name != "label_embed.weight":
            assert p.grad.abs().sum() > 0, name
    assert model.label_embed.weight.grad[[0, 2]].abs().sum() > 0  # used labels learn ...
    assert model.label_embed.weight.grad[1].abs().sum() == 0  # ... unused ones do not


def test_label_conditioning_and_null_label():
    model = randomised(make(num_classes=3, class_dropout=1.0))
    x, t = torch.randn(2, 1, 2, 16, 16), torch.tensor([10, 10])
    with torch.no_grad():
        uncond, null = model(x, t), model(x, t, torch.tensor([3, 3]))
        a, b = model(x, t, torch.tensor([0, 0])), model(x, t, torch.tensor([1, 1]))
        dropped = model.train()(x, t, torch.tensor([0, 1]))  # class_dropout = 1: every label forgotten
    assert torch.allclose(uncond, null) and not torch.allclose(a, b, atol=1e-3)
    assert torch.allclose(dropped, uncond, atol=1e-6)


def test_bf16_autocast_close_to_fp32():
    model = randomised(make())
    x, t = torch.randn(1, 1, 4, 16, 16), torch.tensor([50])
    with torch.no_grad():
        ref = model(x, t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = model(x, t)
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert (low - ref).norm() / ref.norm() < 0.1


def test_parameter_count_and_estimate():
    model = make()
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())
    assert estimate_parameters(video_unet_tiny()) == count_parameters(model)
    model.input_conv.weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == count_parameters(model) - model.input_conv.weight.numel()
    base = estimate_parameters(video_unet_base())  # channels 64/128/256/256
    assert 10e6 < base < 30e6
    assert estimate_parameters(video_unet_base(num_res_blocks=2)) > base


def test_ddpm_papers_unets_have_its_parameter_counts():
    """Ho et al. 2020, App. B: 35.7M parameters for CIFAR10 (35,746,307 in the authors' code), 114M at 256×256."""
    assert estimate_parameters(ddpm_cifar10()) == 35_746_307
    assert round(estimate_parameters(ddpm_256()) / 1e6) == 114
    # the course's scale-and-shift embedding would put the CIFAR10 model off the paper's count
    assert estimate_parameters(ddpm_cifar10(blocks=UNetBlocks())) > 37e6


def test_additive_embedding_is_ho_2020s_resblock():
    """scale_shift=False: h = conv1(silu(norm1 x)) + W·silu(emb), then norm2, silu, conv2, plus the skip."""
    torch.manual_seed(0)
    block = randomised(ResBlock(8, 16, emb_dim=12, dropout=0.0, groups=4, scale_shift=False))
    assert block.modulation is None and block.emb_bias.weight.shape == (16, 12)
    x, emb = torch.randn(6, 8, 5, 5), torch.randn(6, 12)
    h = block.conv1(F.silu(block.norm1(x))) + block.emb_bias(F.silu(emb))[:, :, None, None]  # (6, 16, 5, 5)
    want = block.skip(x) + block.conv2(F.silu(block.norm2(h)))
    torch.testing.assert_close(block(x, emb, frames=1, temporal=True), want)
    other = block(x, emb.flip(0), frames=1, temporal=True)
    assert not torch.allclose(other, want)  # the embedding reaches the output


def test_one_frame_unet_without_temporal_attention_is_an_image_model():
    cfg = ddpm_cifar10(base_channels=16, channel_mults=(1, 2), num_res_blocks=1, norm_groups=8, image_size=16)
    model = randomised(VideoUNet(cfg))
    assert not any(isinstance(m, TemporalAttention) for m in model.modules())
    x, t = torch.randn(2, 3, 1, 16, 16), torch.tensor([3, 500])
    out = model(x, t)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_error_messages():
    model = make(num_classes=None)
    t = torch.tensor([1, 2])
    with pytest.raises(ValueError, match=r"expected x of shape \(B, C, T, H, W\), got \(2, 1, 16, 16\)"):
        model(torch.randn(2, 1, 16, 16), t)
    with pytest.raises(TypeError, match="float tensor, got dtype torch.uint8"):
        model(torch.zeros(2, 1, 2, 16, 16, dtype=torch.uint8), t)
    with pytest.raises(ValueError, match="C=1 channels"):
        model(torch.randn(2, 3, 2, 16, 16), t)
    with pytest.raises(ValueError, match="divisible by 2"):
        model(torch.randn(2, 1, 2, 15, 16), t)
    with pytest.raises(ValueError, match=r"expected t of shape \(B,\) = \(2,\), got \(3,\)"):
        model(torch.randn(2, 1, 2, 16, 16), torch.tensor([1, 2, 3]))
    with pytest.raises(ValueError, match="no label conditioning"):
        model(torch.randn(2, 1, 2, 16, 16), t, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match=r"labels in \[0, 3\]"):
        make(num_classes=3)(torch.randn(2, 1, 2, 16, 16), t, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match="temporal_attention"):
        model(torch.randn(2, 1, 2, 16, 16), t, temporal_attention=torch.tensor([True]))
    with pytest.raises(ValueError, match="divisible by norm_groups"):
        make(base_channels=12)


def test_samplers_drive_the_unet():
    from vgcourse.diffusion import ddim_sample
    model = randomised(make(num_classes=2))
    x = ddim_sample(model, (1, 1, 2, 16, 16), linear_schedule(10), steps=2, cond=torch.tensor([1]),
                    guidance_scale=2.0, generator=torch.Generator().manual_seed(0), progress=False)
    assert x.shape == (1, 1, 2, 16, 16) and x.abs().max() <= 1


@pytest.mark.parametrize("frame_positions", [False, True])
def test_frame_positions_give_temporal_attention_a_clock(frame_positions):
    """A relative bias alone is shift-equivariant: a clip that is the same in every frame stays the same in every
    frame. A frame clock (AnimateDiff-style sinusoidal frame index) makes the frames differ."""
    torch.manual_seed(0)
    block = TemporalAttention(8, heads=2, groups=2, max_frames=6, frame_positions=frame_positions)
    torch.nn.init.normal_(block.attn.proj.weight, std=0.5)
    frame = torch.randn(1, 8, 3, 3)
    x = frame.repeat(6, 1, 1, 1)  # (B·T, C, H, W): one clip of 6 identical frames
    out = block(x, frames=6, temporal=True)
    spread = (out - out.mean(0, keepdim=True)).abs().max().item()
    if frame_positions:
        assert spread > 1e-2
    else:
        assert spread < 1e-5
    assert sum(p.numel() for p in block.parameters()) == sum(
        p.numel() for p in TemporalAttention(8, 2, 2, 6).parameters())  # the clock has no parameters


def test_coordinate_channels_span_minus_one_to_one():
    from vgcourse.diffusion.unet import coordinate_channels
    c = coordinate_channels((2, 1, 4, 3, 5))
    assert c.shape == (2, 3, 4, 3, 5)
    torch.testing.assert_close(c[0, 0, :, 0, 0], torch.tensor([-1, -1 / 3, 1 / 3, 1]))  # t
    torch.testing.assert_close(c[0, 1, 0, :, 0], torch.tensor([-1.0, 0.0, 1.0]))  # y
    torch.testing.assert_close(c[1, 2, 3, 2], torch.linspace(-1, 1, 5))  # x, the same in every clip and frame
    assert (coordinate_channels((1, 1, 1, 2, 2))[:, 0] == -1).all()  # one frame: t = −1


@pytest.mark.parametrize("coordinates", [False, True])
def test_coordinates_tell_frames_and_positions_apart(coordinates):
    """Without a clock (no coordinates, no frame positions), a clip of identical, spatially uniform frames gives
    identical frames out; the (t, y, x) channels make both the frames and the interior pixels differ."""
    model = randomised(make(blocks=UNetBlocks(coordinates=coordinates, frame_positions=False)))
    x = torch.full((1, 1, 4, 16, 16), 0.3)
    out = model(x, torch.tensor([500]))
    frame_spread = (out - out.mean(2, keepdim=True)).abs().max().item()
    interior = out[..., 6:10, 6:10]  # away from the zero padding of the convs (receptive field aside)
    if coordinates:
        assert frame_spread > 1e-3 and interior.std().item() > 1e-4
    else:
        assert frame_spread < 1e-5
    assert model.input_conv.in_channels == 1 + 3 * coordinates


def test_temporal_conv_starts_as_identity_and_mixes_only_neighbouring_frames():
    """Gen-1's temporal convolution (Esser et al. 2023, §3.3): zero-initialised, so x comes back unchanged; trained
    (random weights), a frame's output depends on frames t−1, t, t+1 only, and packed images never mix."""
    torch.manual_seed(0)
    block = TemporalConv(4)
    x = torch.randn(2 * 6, 4, 3, 3)  # (B·T, C, H, W): 2 clips of 6 frames
    torch.testing.assert_close(block(x, frames=6), x)
    torch.nn.init.normal_(block.conv.weight, std=0.5)
    out = block(x, frames=6)
    y = x.clone()
    y[3] += 1.0  # clip 0, frame 3
    changed = (block(y, frames=6) - out).abs().flatten(1).amax(1)  # (B·T,)
    assert changed[2:5].min() > 1e-3  # frames 2, 3, 4 see it
    assert changed[[0, 1, 5]].max() < 1e-6 and changed[6:].max() < 1e-6  # others, and the other clip, do not
    torch.testing.assert_close(block(x, frames=6, temporal=False), x)
    per_sample = block(y, frames=6, temporal=torch.tensor([False, True]))
    torch.testing.assert_close(per_sample[:6], y[:6])  # clip 0 declared images: untouched
    torch.testing.assert_close(per_sample[6:], out[6:])


def test_unet_with_temporal_conv_starts_as_the_plain_unet_and_keeps_images_independent():
    """Gen-1's temporal convolutions are zero-initialised: with the same weights otherwise, the output equals the
    plain U-Net's; with random weights, frames sent through with temporal attention off stay independent images."""
    plain = randomised(make(num_classes=2))
    torch.manual_seed(1)
    model = VideoUNet(video_unet_tiny(num_classes=2, blocks=UNetBlocks(temporal_conv=True)))
    missing = model.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all("tconv" in k for k in missing)
    x, t, y = torch.randn(2, 1, 4, 16, 16), torch.tensor([10, 700]), torch.tensor([0, 1])
    model.eval()  # plain is in eval mode already (randomised)
    with torch.no_grad():
        torch.testing.assert_close(model(x, t, y), plain(x, t, y))
        model = randomised(model)
        base = model(x, t, y, temporal_attention=False)
        x2 = x.clone()
        x2[:, :, 2] += 1.0
        changed = (model(x2, t, y, temporal_attention=False) - base).abs().amax((0, 1, 3, 4))  # (T,)
        assert changed[2] > 1e-3 and changed[[0, 1, 3]].max() < 1e-5


def test_joint_attention_starts_as_identity_and_links_any_pixel_of_any_frame():
    """The unfactorised block: zero-initialised, so x comes back; with random weights a change at one pixel of
    frame 0 reaches a different pixel of frame 5 in one step (factorised attention needs two), its fixed 3D
    positions tell frames apart, and packed images (temporal False) stay within their frame."""
    torch.manual_seed(0)
    block = JointSpaceTimeAttention(16, heads=2, groups=4)
    x = torch.randn(2 * 6, 16, 4, 4)  # (B·T, C, H, W): 2 clips of 6 frames
    torch.testing.assert_close(block(x, 6, True), x)
    torch.nn.init.normal_(block.attn.proj.weight, std=0.3)
    out = block(x, 6, True)
    y = x.clone()
    y[0, :, 0, 0] += 2.0  # clip 0, frame 0, pixel (0, 0)
    changed = (block(y, 6, True) - out).abs()  # (B·T, C, H, W)
    assert changed[5, :, 3, 3].max() > 1e-4  # frame 5, pixel (3, 3)
    assert changed[6:].max() < 1e-6  # the other clip does not see it
    same = x[:1].repeat(6, 1, 1, 1)  # one frame repeated: only the positions tell the frames apart
    moved = block(same, 6, True)
    assert (moved[0] - moved[5]).abs().max() > 1e-4
    images = block(y, 6, False)
    assert ((images - block(x, 6, False)).abs().flatten(1).amax(1)[1:6] < 1e-6).all()  # frames 1-5 untouched
    torch.testing.assert_close(images[:6], block(y[:6], 6, False))  # (the other clip is irrelevant)
    alone = torch.cat([block(y[i:i + 1], 1, True) for i in range(12)])  # each frame a one-frame video
    torch.testing.assert_close(images, alone)
    per_sample = block(y, 6, torch.tensor([False, True]))
    torch.testing.assert_close(per_sample[:6], images[:6])
    torch.testing.assert_close(per_sample[6:], block(y, 6, True)[6:])


def test_unet_with_joint_attention_replaces_both_attentions_and_keeps_images_independent():
    cfg = video_unet_tiny(blocks=UNetBlocks(joint_attention_resolutions=(8,)))
    model = randomised(make(blocks=UNetBlocks(joint_attention_resolutions=(8,))))
    blocks = [m for m in model.modules() if isinstance(m, SpaceTimeBlock)]
    at_8 = [b for b in blocks if b.joint is not None]
    assert at_8 and all(b.spatial is None and b.temporal is None for b in at_8)
    assert any(b.temporal is not None for b in blocks)  # the 16×16 level stays factorised
    assert count_parameters(model) == estimate_parameters(cfg)
    x, t = torch.randn(2, 1, 4, 16, 16), torch.tensor([5, 700])
    y = x.clone()
    y[0, :, 2] = torch.randn(1, 16, 16)
    with torch.no_grad():
        off_x, off_y, on_x, on_y = (model(v, t, temporal_attention=flag) for flag in (False, True) for v in (x, y))
    assert torch.allclose(off_x[0, :, [0, 1, 3]], off_y[0, :, [0, 1, 3]], atol=1e-6)
    assert not torch.allclose(on_x[0, :, [0, 1, 3]], on_y[0, :, [0, 1, 3]], atol=1e-3)


def test_attention_conditioning_starts_as_identity_then_lets_the_condition_steer_attention():
    """adaLN in the attention blocks (attention_conditioning): zero-initialised, the U-Net equals the one without
    it (same other weights); trained (randomised), the same frames under two embeddings attend differently."""
    from vgcourse.diffusion.unet import Modulation, SpatialAttention
    plain, steered = make(cond_dim=4), make(cond_dim=4, blocks=UNetBlocks(attention_conditioning=True))
    missing, unexpected = steered.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(".modulation." in k for k in missing)
    attention_blocks = [m for m in steered.modules() if isinstance(m, (SpatialAttention, TemporalAttention))]
    assert attention_blocks and all(isinstance(m.modulation, Modulation) for m in attention_blocks)
    plain, steered = randomised(plain), randomised(steered)  # randomised weights, attention modulation zero again:
    attention_blocks = [m for m in steered.modules() if isinstance(m, (SpatialAttention, TemporalAttention))]
    for m in attention_blocks:
        torch.nn.init.zeros_(m.modulation.proj.weight), torch.nn.init.zeros_(m.modulation.proj.bias)
    steered.load_state_dict(plain.state_dict(), strict=False)
    x, t, c = torch.randn(2, 1, 4, 16, 16), torch.tensor([3, 600]), torch.randn(2, 4)
    with torch.no_grad():
        torch.testing.assert_close(steered(x, t, context=c), plain(x, t, context=c))
    # one temporal block: the same clip under two embeddings
    torch.manual_seed(1)
    block = randomised(TemporalAttention(8, heads=2, groups=2, max_frames=4, emb_dim=6))
    clip = torch.randn(4, 8, 3, 3)  # (B·T, C, H, W), one clip of 4 frames
    e1, e2 = torch.randn(1, 6).repeat(4, 1), torch.randn(1, 6).repeat(4, 1)  # (B·T, D): one embedding per frame
    with torch.no_grad():
        assert (block(clip, 4, True, e1) - block(clip, 4, True, e2)).abs().max() > 1e-2
        with pytest.raises(ValueError, match="pass emb"):
            block(clip, 4, True)
    # without the option the blocks take no embedding, and parameters grow only by the modulations
    extra = (count_parameters(make(cond_dim=4, blocks=UNetBlocks(attention_conditioning=True)))
             - count_parameters(make(cond_dim=4)))
    assert extra == sum(m.modulation.proj.weight.numel() + m.modulation.proj.bias.numel() for m in attention_blocks)
    assert SpatialAttention(8, 2, 2).modulation is None


def test_block_choices_default_to_ho_2022_and_come_back_from_json():
    """The config's block choices are one frozen UNetBlocks (defaults: Ho et al. 2022's blocks); a config written
    to JSON with dataclasses.asdict and read back builds the same network, and anything else is refused."""
    import json
    from dataclasses import asdict

    cfg = video_unet_tiny(blocks=UNetBlocks(temporal_conv=True, joint_attention_resolutions=[8]))
    assert video_unet_tiny().blocks == UNetBlocks()
    assert cfg.blocks.joint_attention_resolutions == (8,)                    # a list from JSON becomes a tuple
    back = type(cfg)(**json.loads(json.dumps(asdict(cfg))))
    assert back.blocks == cfg.blocks
    assert count_parameters(VideoUNet(back)) == count_parameters(VideoUNet(cfg)) > count_parameters(make())
    with pytest.raises(TypeError, match="UNetBlocks"):
        video_unet_tiny(blocks=True)
    with pytest.raises(TypeError):
        video_unet_tiny(temporal_conv=True)                                  # the flags live in blocks now
