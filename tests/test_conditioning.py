"""Conditioning a video diffusion model: conditions, concatenated frames, caption encoder, dropping, guidance,
the conditional denoiser (vgcourse.dit.conditional) on a U-Net or a DiT, the U-Net's vector and channel conditioning,
mask IoU, and the camera-pan detector."""

import pytest
import torch

from vgcourse.data import CaptionedShapes, VideoBatch, caption, foreground, tokenize
from vgcourse.data.shapes import COLOUR_RGB, DIRECTION_VECTORS, PANS
from vgcourse.diffusion import VideoUNet, guided_eps, video_unet_tiny
from vgcourse.diffusion.conditioning import (
    CONDITIONS,
    Conditions,
    brush_map,
    concat_channels,
    condition_channels,
    conditions_from_batch,
    drop_conditions,
    object_captions,
    structure_masks,
    with_uncond,
)
from vgcourse.dit import DiTConfig
from vgcourse.dit.conditional import ConditionalDenoiser, ConditionalDenoiserConfig
from vgcourse.metrics import mask_iou
from vgcourse.metrics.attributes import detect_pan
from vgcourse.nn import CaptionEncoder, randomised


@pytest.fixture(scope="module")
def batch():
    return CaptionedShapes(16, 6, camera_pan=True).batch(4, seed=3)


def tiny_dit(**kw) -> DiTConfig:
    return DiTConfig(**{**dict(input_size=16, frames=6, in_channels=3, patch_size=4, hidden_size=32, depth=2,
                               num_heads=2), **kw})


@pytest.fixture(scope="module", params=["unet", "dit"])
def model(request):
    """The conditional denoiser on either backbone: every test that takes it runs on both."""
    torch.manual_seed(0)
    backbone = dict(unet=video_unet_tiny(in_channels=3, frames=6)) if request.param == "unet" else dict(dit=tiny_dit())
    cfg = ConditionalDenoiserConfig(**backbone, text_dim=16, text_heads=2)
    return randomised(ConditionalDenoiser(cfg))


def test_denoiser_backbones():
    """Exactly one backbone; the DiT one starts at ε = 0 (adaLN-Zero), sees the condition frames through its patch
    embedding (3 video + 7 condition channels) and the caption through adaLN."""
    with pytest.raises(ValueError, match="exactly one backbone"):
        ConditionalDenoiserConfig(text_dim=16)
    with pytest.raises(ValueError, match="exactly one backbone"):
        ConditionalDenoiserConfig(video_unet_tiny(in_channels=3), dit=tiny_dit())
    torch.manual_seed(0)
    net = ConditionalDenoiser(ConditionalDenoiserConfig(dit=tiny_dit(num_classes=10), text_dim=16, text_heads=2))
    assert net.unet is None and net.dit.config.num_classes == 0
    assert net.dit.x_embedder.proj.in_channels == 3 + concat_channels(3)
    x, t = torch.randn(2, 3, 6, 16, 16), torch.tensor([5, 700])
    with torch.no_grad():
        assert (net(x, t) == 0).all()
    with pytest.raises(ValueError, match="context of shape"):
        net.dit(x, t, context=torch.randn(2, 5))


# ---- conditions ---------------------------------------------------------------------------------------------
def test_conditions_from_batch_reads_every_condition(batch):
    cond = conditions_from_batch(batch)
    caps = object_captions(batch.labels)
    assert all("camera" not in c for c in caps) and all("camera" in c for c in batch.captions)
    assert caps[0] == caption(batch.labels["colour"][0, 0], batch.labels["shape"][0, 0],
                              batch.labels["direction"][0, 0])
    assert torch.equal(cond.caption, tokenize(caps))
    assert torch.equal(cond.first_frame, batch.video[:, :, 0])
    assert torch.equal(cond.structure, (foreground(batch.video) > 0).float()[:, None])
    assert torch.equal(cond.region, cond.structure[:, 0, 0] > 0) and cond.region.any((1, 2)).all()
    assert torch.equal(cond.direction, batch.labels["direction"][:, 0])
    assert torch.equal(cond.camera, batch.labels["pan"]) and (cond.camera > 0).all()
    assert all(cond.is_given(n).all() for n in CONDITIONS)
    two = CaptionedShapes(16, 6, objects=2, camera_pan=True).batch(3, seed=1)  # captions of two objects and a pan
    assert torch.equal(conditions_from_batch(two).caption, tokenize(object_captions(two.labels)))
    no_text = VideoBatch(batch.video, batch.labels)  # no caption strings: built from the labels
    assert torch.equal(conditions_from_batch(no_text).caption, cond.caption)


def test_conditions_given_only_select_and_errors(batch):
    cond = conditions_from_batch(batch)
    part = cond.only("caption", "camera")
    assert [bool(part.is_given(n).all()) for n in CONDITIONS] == [True, False, False, False, True]
    assert not part.is_given("first_frame").any()
    sub = part[1:3]
    assert sub.batch_size == 2 and torch.equal(sub.first_frame, cond.first_frame[1:3])
    assert sub.given["caption"].shape == (2,)
    assert not Conditions(camera=torch.tensor([1, 2])).is_given("caption").any()
    with pytest.raises(ValueError, match="one row per clip"):
        Conditions(camera=torch.tensor([1, 2]), caption=torch.ones(3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="together"):
        Conditions(region=torch.ones(2, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown condition"):
        Conditions(camera=torch.tensor([1]), given={"depth": torch.tensor([True])})


def test_drop_conditions_is_seeded_and_has_the_stated_rates():
    n = 4000
    cond = Conditions(caption=torch.ones(n, 3, dtype=torch.long), camera=torch.ones(n, dtype=torch.long),
                      first_frame=torch.zeros(n, 3, 2, 2), structure=torch.zeros(n, 1, 1, 2, 2),
                      region=torch.zeros(n, 2, 2, dtype=torch.bool), direction=torch.zeros(n, dtype=torch.long))
    a = drop_conditions(cond, 0.1, 0.5, torch.Generator().manual_seed(0))
    b = drop_conditions(cond, 0.1, 0.5, torch.Generator().manual_seed(0))
    assert all(torch.equal(a.given[k], b.given[k]) for k in CONDITIONS)
    given = torch.stack([a.is_given(k) for k in CONDITIONS])  # (5, n)
    none = (~given).all(0).float().mean().item()  # 0.1 + 0.9 · 0.5^5
    assert abs(none - (0.1 + 0.9 / 32)) < 0.03
    for row in given.float().mean(1):
        assert abs(row.item() - 0.9 * 0.5) < 0.04
    per = dict(caption=0.3, first_frame=0.6, structure=0.6, brush=0.5, camera=0.0)
    c = torch.stack([drop_conditions(cond, 0.1, per, torch.Generator().manual_seed(1)).is_given(k)
                     for k in CONDITIONS]).float().mean(1)
    for rate, name in zip(c, CONDITIONS):
        assert abs(rate.item() - 0.9 * (1 - per[name])) < 0.04, name
    with pytest.raises(ValueError, match="each of"):
        drop_conditions(cond, 0.1, dict(caption=0.3))
    assert not torch.stack([drop_conditions(cond, 1.0, 0.0).is_given(k) for k in CONDITIONS]).any()
    assert torch.stack([drop_conditions(cond, 0.0, 0.0).is_given(k) for k in CONDITIONS]).all()
    # a condition that is not there stays not given
    assert not drop_conditions(Conditions(camera=torch.ones(5, dtype=torch.long)), 0.0, 0.0).is_given("caption").any()


def test_condition_channels_layout(batch):
    video = batch.video  # (4, 3, 6, 16, 16)
    cond = conditions_from_batch(batch)
    cond = Conditions(**{k: getattr(cond, k) for k in ("caption", "first_frame", "structure", "region",
                                                        "direction", "camera")},
                      given={"first_frame": torch.tensor([True, False, True, False]),
                             "structure": torch.tensor([True, True, False, False]),
                             "brush": torch.tensor([False, True, True, False])})
    ch = condition_channels(cond, tuple(video.shape))
    assert ch.shape == (4, concat_channels(3), 6, 16, 16) == (4, 7, 6, 16, 16)
    for t in range(6):  # the first frame, repeated; zeros where not given
        assert torch.equal(ch[0, :3, t], video[0, :, 0]) and not ch[1, :3, t].any()
    assert (ch[0, 3, 0] == 1).all() and not ch[0, 3, 1:].any() and not ch[1, 3].any()  # "frame 0 is given"
    assert torch.equal(ch[1, 4], 2 * cond.structure[1, 0] - 1) and not ch[2, 4].any()  # ±1 masks, 0 if dropped
    vec = DIRECTION_VECTORS[cond.direction[2]]
    inside = cond.region[2]
    for t in (0, 5):
        assert torch.equal(ch[2, 5, t][inside], vec[0].expand(int(inside.sum())))
        assert torch.equal(ch[2, 6, t][inside], vec[1].expand(int(inside.sum())))
        assert not ch[2, 5:, t][:, ~inside].any()
    assert not ch[3].any() and not condition_channels(None, tuple(video.shape)).any()
    with pytest.raises(ValueError, match="first_frame of shape"):
        condition_channels(Conditions(first_frame=torch.zeros(4, 3, 8, 8)), tuple(video.shape))
    with pytest.raises(ValueError, match="cannot condition"):
        condition_channels(cond[:2], tuple(video.shape))


def test_brush_map_and_mask_iou_closed_forms():
    region = torch.zeros(2, 4, 4, dtype=torch.bool)
    region[:, :2, :2] = True
    flow = brush_map(region, torch.tensor([0, 3]), frames=3)  # left = (0, -1), down = (1, 0)
    assert flow.shape == (2, 2, 3, 4, 4)
    assert (flow[0, 1, :, :2, :2] == -1).all() and not flow[0, 0].any() and (flow[1, 0, :, :2, :2] == 1).all()
    assert flow[:, :, :, 2:].abs().sum() == 0
    a = torch.zeros(3, 1, 2, 4, 4)
    b = torch.zeros(3, 1, 2, 4, 4)
    a[0, ..., :2, :] = 1  # 16 pixels over 2 frames
    b[0, ..., 1:3, :] = 1  # overlaps half: IoU = 8 / 24
    a[1] = 1
    b[1] = 1
    b[2, 0, 0, 0, 0] = 1  # nothing in common
    iou = mask_iou(a, b)
    torch.testing.assert_close(iou, torch.tensor([1 / 3, 1.0, 0.0]))
    assert mask_iou(torch.zeros(1, 5), torch.zeros(1, 5)).item() == 1.0  # two empty masks agree
    with pytest.raises(ValueError, match="one shape"):
        mask_iou(a, b[:, :, :1])


def test_structure_masks_are_the_shapes(batch):
    masks = structure_masks(batch.video)
    assert masks.shape == (4, 1, 6, 16, 16) and set(masks.unique().tolist()) <= {0.0, 1.0}
    rgb = COLOUR_RGB[batch.labels["colour"][:, 0]] * 2 - 1  # (B, 3): the object's colour in [-1, 1]
    painted = (batch.video - rgb[:, :, None, None, None]).abs().amax(1) < 1e-5  # (B, T, H, W)
    assert torch.equal(masks[:, 0] > 0, painted) and masks.sum((1, 3, 4)).min() > 0


# ---- caption encoder --------------------------------------------------------------------------------------------
def test_caption_encoder_pads_order_and_bag_of_words():
    torch.manual_seed(0)
    words = tokenize(["a red square moves left", "a blue circle moves up"], length=8)
    longer = tokenize(["a red square moves left", "a blue circle moves up"], length=12)
    swapped = tokenize(["a square red moves left", "a blue circle moves up"], length=8)
    for layers in (0, 1):
        enc = randomised(CaptionEncoder(dim=16, layers=layers, heads=2))
        out = enc(words)
        assert out.shape == (2, 16)
        torch.testing.assert_close(enc(longer), out)  # padding changes nothing
        assert not torch.allclose(out[0], out[1])  # different captions differ
        if layers == 0:  # a bag of words (with positions) still tells order apart only through positions
            enc.position.data.zero_()
            torch.testing.assert_close(enc(swapped), enc(words))
        else:
            assert not torch.allclose(enc(swapped)[0], out[0], atol=1e-4)
    with pytest.raises(ValueError, match="tokens"):
        enc(torch.zeros(2, 8))


# ---- the conditional denoiser -----------------------------------------------------------------------------------
def test_denoiser_nothing_given_is_unconditional_and_dropped_values_are_hidden(model, batch):
    x, t = torch.randn(4, 3, 6, 16, 16, generator=torch.Generator().manual_seed(1)), torch.tensor([3, 50, 400, 999])
    cond = conditions_from_batch(batch)
    with torch.no_grad():
        uncond = model(x, t)
        nothing = model(x, t, cond.only())
        full = model(x, t, cond)
        other = Conditions(caption=cond.caption.flip(0), first_frame=-cond.first_frame, structure=1 - cond.structure,
                           region=~cond.region, direction=(cond.direction + 1) % 4, camera=(cond.camera + 1) % 5)
        assert torch.allclose(uncond, nothing, atol=1e-6)
        assert torch.allclose(model(x, t, other.only()), uncond, atol=1e-6)  # dropped values do not leak
        for name in CONDITIONS:  # each condition, alone, changes the prediction
            assert not torch.allclose(model(x, t, cond.only(name)), uncond, atol=1e-4), name
        # clips are independent: changing clip 1's conditions leaves clip 0's prediction alone
        mixed = Conditions(caption=torch.cat([cond.caption[:1], other.caption[1:]]),
                           camera=torch.cat([cond.camera[:1], other.camera[1:]]))
        assert torch.allclose(model(x, t, mixed)[0], model(x, t, Conditions(caption=cond.caption,
                                                                            camera=cond.camera))[0], atol=1e-5)
    assert full.shape == x.shape
    with pytest.raises(TypeError, match="Conditions"):
        model(x, t, torch.zeros(4, dtype=torch.long))


def test_guidance_with_a_fixed_condition(model, batch):
    x, t = torch.randn(4, 3, 6, 16, 16, generator=torch.Generator().manual_seed(2)), torch.full((4,), 500)
    cond = conditions_from_batch(batch).only("caption", "camera")
    keep_camera = cond.only("camera")
    with torch.no_grad():
        eps = guided_eps(with_uncond(model, keep_camera), x, t, cond, guidance_scale=3.0)
        e_c, e_u = model(x, t, cond), model(x, t, keep_camera)
        torch.testing.assert_close(eps, e_u + 3.0 * (e_c - e_u), rtol=1e-4, atol=1e-4)  # Ho & Salimans 2022, eq. (6)
        torch.testing.assert_close(guided_eps(model, x, t, cond, 1.0), e_c)
    with pytest.raises(ValueError, match="clips"):
        with_uncond(model, keep_camera[:2])(x, t)


# ---- the U-Net's extra conditioning (backward compatible) ---------------------------------------------------------
def test_unet_vector_and_channel_conditioning():
    torch.manual_seed(0)
    plain = VideoUNet(video_unet_tiny())
    torch.manual_seed(0)
    again = VideoUNet(video_unet_tiny(cond_dim=None, cond_channels=0))
    assert plain.state_dict().keys() == again.state_dict().keys()  # defaults add nothing
    torch.manual_seed(0)
    net = randomised(VideoUNet(video_unet_tiny(cond_dim=5, cond_channels=2)))
    assert net.input_conv.in_channels == 3 and net.out[-1].out_channels == 1
    x, t = torch.randn(2, 1, 4, 16, 16), torch.tensor([10, 900])
    with torch.no_grad():
        base = net(x, t)
        assert base.shape == x.shape
        torch.testing.assert_close(net(x, t, concat=torch.zeros(2, 2, 4, 16, 16)), base)  # None = zeros
        assert not torch.allclose(net(x, t, concat=torch.ones(2, 2, 4, 16, 16)), base, atol=1e-4)
        ctx = torch.randn(2, 5)
        one = net(x, t, context=ctx)
        assert not torch.allclose(one, base, atol=1e-4)
        two = net(x, t, context=torch.stack([ctx[0], -ctx[1]]))
        assert torch.allclose(one[0], two[0], atol=1e-5) and not torch.allclose(one[1], two[1], atol=1e-4)
    with pytest.raises(ValueError, match="context of shape"):
        net(x, t, context=torch.randn(2, 4))
    with pytest.raises(ValueError, match="concat of shape"):
        net(x, t, concat=torch.zeros(2, 3, 4, 16, 16))
    with pytest.raises(ValueError, match="no vector conditioning"):
        plain(x, t, context=torch.randn(2, 5))


# ---- the pan detector ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [32, 64])
def test_detect_pan_reads_real_pans(size):
    data = CaptionedShapes(size, 8, camera_pan=True)
    b = data.batch(12, seed=size)
    assert torch.equal(detect_pan(b.video), b.labels["pan"])
    noisy = (b.video + 0.03 * torch.randn(b.video.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    assert (detect_pan(noisy) == b.labels["pan"]).float().mean() >= 0.9
    opposite = torch.tensor([0, 2, 1, 4, 3])  # left <-> right, up <-> down
    assert torch.equal(detect_pan(b.video.flip(2)), opposite[b.labels["pan"]])  # time reversed: the other way


def test_detect_pan_static_and_frozen_and_errors():
    static = CaptionedShapes(32, 8).batch(6, seed=1).video
    assert not detect_pan(static).any()
    pans = CaptionedShapes(32, 8, camera_pan=True).batch(6, seed=2).video
    frozen = pans[:, :, :1].expand_as(pans).contiguous()  # a textured background that does not move
    assert not detect_pan(frozen).any()
    assert PANS[0] == "none"
    with pytest.raises(ValueError, match="2 frames"):
        detect_pan(pans[:, :, :1])
    with pytest.raises(ValueError, match="max_shift"):
        detect_pan(pans, max_shift=16)


def test_frozen_text_encoder_gets_no_gradient_and_still_tells_captions_apart(batch):
    """``frozen_text``: the caption encoder keeps its initial weights (no gradient, so no optimizer step moves it);
    everything else trains; two captions that differ in one word still give different vectors."""
    from vgcourse.diffusion import diffusion_loss, linear_schedule
    torch.manual_seed(0)
    cfg = ConditionalDenoiserConfig(video_unet_tiny(in_channels=3, frames=6), text_dim=16, text_heads=2,
                                    frozen_text=True)
    model = randomised(ConditionalDenoiser(cfg)).train()
    cond = conditions_from_batch(batch).only("caption", "camera")
    diffusion_loss(model, batch.video, linear_schedule(100), cond=cond,
                   generator=torch.Generator().manual_seed(0)).backward()
    assert all(p.grad is None and not p.requires_grad for p in model.text.parameters())
    others = [p for n, p in model.named_parameters() if not n.startswith("text.")]
    assert others and all(p.requires_grad for p in others) and model.null_caption.grad is not None
    assert model.unet.input_conv.weight.grad.abs().sum() > 0
    with torch.no_grad():
        left, right = model.text(tokenize(["a red square moves left", "a red square moves right"]))
    assert (left - right).norm() > 0.1 * left.norm()
