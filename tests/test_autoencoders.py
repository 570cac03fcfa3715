"""Video autoencoders: KL first stage (LDM) and VideoGPT's VQ-VAE, checked against closed forms."""

import math

import pytest
import torch

from vgcourse.autoencoders import (
    DiagonalGaussian,
    VectorQuantizer,
    VideoAutoencoder,
    VQVideoAutoencoder,
    kl_f4_tiny,
    vq_tiny,
)
from vgcourse.autoencoders.vq import AxialAttention
from vgcourse.metrics import codebook_stats
from vgcourse.metrics.reconstruction import codebook_usage


def _video(b, c, t, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, c, t, h, w, generator=g) * 2 - 1


def _squares(b, c, t, s, seed=0):
    """Bright squares moving one pixel per frame on a dark background, in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    x = -torch.ones(b, c, t, s, s)
    for i in range(b):
        y0, x0 = torch.randint(0, s // 2, (2,), generator=g).tolist()
        for k in range(t):
            x[i, :, k, y0:y0 + s // 4, (x0 + k) % (s - s // 4):(x0 + k) % (s - s // 4) + s // 4] = 1
    return x


# ---------------------------------------------------------------- KL autoencoder

@pytest.mark.parametrize("c,t", [(1, 1), (1, 8), (3, 1), (3, 8)])
def test_kl_shapes(c, t):
    torch.manual_seed(0)
    ae = VideoAutoencoder(kl_f4_tiny(in_channels=c))
    x = _video(2, c, t, 16, 16)
    post = ae.encode(x)
    assert post.mean.shape == post.logvar.shape == (2, 4, t, 4, 4)
    assert ae.decode(post.sample()).shape == x.shape
    recon, post2 = ae(x)
    assert recon.shape == x.shape and post2.kl().shape == (2,)
    out = ae.loss(x)
    assert set(out) == {"loss", "recon", "kl"} and out["loss"].ndim == 0


def test_diagonal_gaussian_kl_closed_form():
    g = torch.Generator().manual_seed(1)
    mean, logvar = torch.randn(3, 4, 2, 3, 3, generator=g), torch.randn(3, 4, 2, 3, 3, generator=g)
    post = DiagonalGaussian(mean, logvar)
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    expected = torch.distributions.kl_divergence(q, torch.distributions.Normal(0.0, 1.0)).flatten(1).sum(1)
    torch.testing.assert_close(post.kl(), expected)
    assert torch.allclose(DiagonalGaussian(torch.zeros(2, 3), torch.zeros(2, 3)).kl(), torch.zeros(2))
    # one dimension by hand: μ = 1, log σ² = 0 -> ½ (1 + 1 − 1 − 0) = 0.5
    assert DiagonalGaussian(torch.ones(1, 1), torch.zeros(1, 1)).kl().item() == pytest.approx(0.5)


def test_mode_deterministic_and_sample_seeded():
    torch.manual_seed(0)
    ae = VideoAutoencoder(kl_f4_tiny())
    x = _video(2, 1, 4, 16, 16)
    assert torch.equal(ae.encode(x).mode(), ae.encode(x).mode())
    post = ae.encode(x)
    s1 = post.sample(torch.Generator().manual_seed(3))
    s2 = post.sample(torch.Generator().manual_seed(3))
    s3 = post.sample(torch.Generator().manual_seed(4))
    assert torch.equal(s1, s2) and not torch.equal(s1, s3)
    assert torch.allclose((s1 - post.mean).abs().mean(), post.std.mean() * math.sqrt(2 / math.pi), rtol=0.2)


def test_scale_factor_gives_unit_std():
    torch.manual_seed(0)
    ae = VideoAutoencoder(kl_f4_tiny())
    with torch.no_grad():  # push latents far from unit std first: large means, small posterior noise
        ae.encoder.conv_out.weight[:4].mul_(50)
        ae.encoder.conv_out.bias[4:].fill_(-6.0)
    x = _video(4, 1, 4, 16, 16)
    raw = ae.encode_scaled(x, torch.Generator().manual_seed(0))
    assert abs(raw.std().item() - 1) > 0.5
    s = ae.fit_scale_factor(x, torch.Generator().manual_seed(1))
    assert s == pytest.approx(1 / raw.std().item(), rel=0.05)
    z = ae.encode_scaled(x, torch.Generator().manual_seed(2))
    assert z.std().item() == pytest.approx(1.0, abs=0.05)
    assert "scale_factor" in ae.state_dict()
    torch.testing.assert_close(ae.decode_scaled(z), ae.decode(z / s))


def test_factorised_starts_framewise_and_3d_mixes_time():
    torch.manual_seed(0)
    ae = VideoAutoencoder(kl_f4_tiny())  # factorised: temporal convs start as the identity
    x = _video(1, 1, 4, 16, 16)
    video = ae.encode(x).mode()
    frames = torch.cat([ae.encode(x[:, :, k:k + 1]).mode() for k in range(4)], dim=2)
    torch.testing.assert_close(video, frames, atol=1e-5, rtol=1e-5)
    ae3d = VideoAutoencoder(kl_f4_tiny(temporal_kernel="3d"))
    y = x.clone()
    y[:, :, 0] = -y[:, :, 0]
    changed = (ae3d.encode(x).mode() - ae3d.encode(y).mode()).abs().flatten(3).amax(3)[0].amax(0)  # (T,)
    assert changed[2] > 1e-4 and changed[0] > changed[3]


def test_kl_overfits_one_batch():
    torch.manual_seed(0)
    ae = VideoAutoencoder(kl_f4_tiny())
    x = _squares(2, 1, 4, 16)
    opt = torch.optim.Adam(ae.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(60):
        out = ae.loss(x, gen)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["recon"].item())
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 / 3  # measured: a factor of about 5


def test_kl_errors():
    ae = VideoAutoencoder(kl_f4_tiny())
    with pytest.raises(ValueError, match="divisible by the downsampling factor 4"):
        ae.encode(_video(1, 1, 2, 18, 16))
    with pytest.raises(ValueError, match=r"C=1 channels"):
        ae.encode(_video(1, 3, 2, 16, 16))
    with pytest.raises(ValueError, match=r"\(B, C, T, H, W\), got \(1, 2, 16, 16\)"):
        ae.encode(_video(1, 1, 2, 16, 16)[0])
    with pytest.raises(ValueError, match=r"Cz=4"):
        ae.decode(torch.zeros(1, 3, 2, 4, 4))
    with pytest.raises(ValueError, match="at least 4×"):
        VideoAutoencoder(kl_f4_tiny(channel_mults=(1, 2)))
    with pytest.raises(ValueError, match="temporal_kernel"):
        VideoAutoencoder(kl_f4_tiny(temporal_kernel="2d"))


# ---------------------------------------------------------------- vector quantizer

def test_straight_through_gradient():
    vq = VectorQuantizer(8, 4).eval()
    z = torch.randn(5, 4, requires_grad=True)
    w = torch.randn(5, 4)
    quantized, idx, _ = vq(z)
    torch.testing.assert_close(quantized, vq.embedding[idx])  # forward: the codes
    (quantized * w).sum().backward()
    torch.testing.assert_close(z.grad, w)  # backward: the identity

    torch.manual_seed(0)
    ae = VQVideoAutoencoder(vq_tiny())
    x = _video(2, 1, 4, 16, 16)
    recon, _ = ae(x)
    ((recon - x) ** 2).mean().backward()  # the reconstruction term alone must reach the encoder
    first = ae.encoder[0].weight.grad
    assert first is not None and first.abs().sum() > 0


def test_ema_update_closed_form():
    e = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    vq = VectorQuantizer(3, 2, decay=0.5, dead_code_threshold=0.0, eps=0.0).train()
    vq.embedding.copy_(e)
    vq.cluster_size.copy_(torch.tensor([2.0, 1.0, 1.0]))
    vq.embed_sum.copy_(e * vq.cluster_size[:, None])
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0], [9.0, 0.0]])
    quantized, idx, _ = vq(z)
    assert idx.tolist() == [0, 0, 1]
    torch.testing.assert_close(quantized, e[[0, 0, 1]])  # quantized with the codebook before the update
    # N = 0.5·[2, 1, 1] + 0.5·[2, 1, 0]; m = 0.5·N_old·e + 0.5·Σz; e = m / N
    torch.testing.assert_close(vq.cluster_size, torch.tensor([2.0, 1.0, 0.5]))
    torch.testing.assert_close(vq.embed_sum, torch.tensor([[0.5, 0.5], [9.5, 0.0], [0.0, 5.0]]))
    torch.testing.assert_close(vq.embedding, torch.tensor([[0.25, 0.25], [9.5, 0.0], [0.0, 10.0]]))
    before = vq.embedding.clone()
    vq.eval()(z)
    assert torch.equal(vq.embedding, before)  # no update outside training


def test_dead_codes_restart_on_data():
    torch.manual_seed(0)
    vq = VectorQuantizer(8, 2, decay=0.99, dead_code_threshold=1.0).train()
    vq.embedding.copy_(torch.tensor([[5.0, 5.0]] + [[-100.0, float(i)] for i in range(1, 8)]))
    vq.embed_sum.copy_(vq.embedding)
    z = torch.tensor([5.0, 5.0]) + 0.1 * torch.randn(64, 2)
    _, idx, losses = vq(z)
    assert (idx == 0).all() and losses["usage"].item() == pytest.approx(1 / 8)
    for k in range(1, 8):  # every dead code now sits exactly on a data point of the batch
        assert (vq.embedding[k] - z).abs().sum(1).min() < 1e-6
    assert torch.allclose(vq.cluster_size[1:], torch.ones(7))
    # the live code follows the EMA: N = 0.99 + 0.01·64, m = 0.99·(5, 5) + 0.01·Σz
    n0, m0 = 0.99 + 0.64, 0.99 * torch.tensor([5.0, 5.0]) + 0.01 * z.sum(0)
    assert vq.cluster_size[0].item() == pytest.approx(n0)
    torch.testing.assert_close(vq.embedding[0], m0 / n0, atol=1e-4, rtol=1e-4)
    _, idx2, _ = vq(z)
    assert idx2.unique().numel() > 1  # restarted codes now take part


def test_perplexity_and_usage():
    s = codebook_stats(torch.tensor([0, 0, 1, 1]), 4)
    assert s["perplexity"].item() == pytest.approx(2.0) and s["usage"].item() == pytest.approx(0.5)
    s = codebook_stats(torch.arange(8), 8)
    assert s["perplexity"].item() == pytest.approx(8.0) and s["usage"].item() == 1.0
    idx = torch.tensor([0, 0, 1, 2])  # p = (½, ¼, ¼, 0): H = 1.5 ln 2, perplexity 2^1.5
    vq = VectorQuantizer(4, 4).eval()
    vq.embedding.copy_(torch.eye(4) * 10)
    _, got, losses = vq(torch.eye(4)[idx] * 10)
    assert torch.equal(got, idx)
    assert losses["perplexity"].item() == pytest.approx(2**1.5) and losses["usage"].item() == pytest.approx(0.75)
    ref = codebook_usage(idx, 4)
    assert ref["perplexity"] == pytest.approx(losses["perplexity"].item())


def test_codebook_learned_by_gradient_without_ema():
    vq = VectorQuantizer(4, 3, ema=False).train()
    _, _, losses = vq(torch.randn(10, 3))
    losses["loss"].backward()
    assert vq.embedding.grad is not None and vq.embedding.grad.abs().sum() > 0


# ---------------------------------------------------------------- VQ video autoencoder

@pytest.mark.parametrize("c", [1, 3])
def test_vq_shapes_and_roundtrip(c):
    torch.manual_seed(0)
    ae = VQVideoAutoencoder(vq_tiny(in_channels=c)).eval()
    x = _video(2, c, 8, 16, 16)
    idx = ae.encode(x)
    assert idx.shape == (2, 4, 4, 4) and idx.dtype == torch.long and ae.latent_shape(8, 16, 16) == (4, 4, 4)
    recon, vq = ae(x)
    assert recon.shape == x.shape and vq.quantized.shape == (2, 4, 4, 4, 8)
    torch.testing.assert_close(ae.decode_indices(idx), recon)  # eval: decode(encode(x)) is the forward
    out = ae.train().loss(x)
    assert {"loss", "recon", "commitment", "perplexity", "usage"} <= set(out)
    image_ae = VQVideoAutoencoder(vq_tiny(in_channels=c, downsample=(1, 4, 4)))
    assert image_ae.encode(_video(2, c, 1, 16, 16)).shape == (2, 1, 4, 4)


def test_axial_attention_mixes_along_axes_only():
    torch.manual_seed(0)
    attn = AxialAttention(8, 2)
    x = torch.randn(1, 8, 3, 4, 5)
    y = x.clone()
    y[0, :, 1, 2, 3] += 1.0
    d = (attn(x) - attn(y)).abs().sum(1)[0]  # (t, h, w)
    assert d[0, 2, 3] > 0 and d[1, 0, 3] > 0 and d[1, 2, 0] > 0  # same (h, w), same (t, w), same (t, h)
    assert d[0, 0, 3] == 0 and d[0, 0, 0] == 0  # two coordinates differ: no path in one axial block


def test_vq_errors():
    ae = VQVideoAutoencoder(vq_tiny())
    with pytest.raises(ValueError, match=r"divisible by the downsampling factors \(T, H, W\) = \(2, 4, 4\)"):
        ae.encode(_video(1, 1, 1, 16, 16))
    with pytest.raises(ValueError, match=r"\[0, 32\)"):
        ae.decode_indices(torch.full((1, 2, 4, 4), 32))
    with pytest.raises(ValueError, match=r"\(B, t, h, w\)"):
        ae.decode_indices(torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="powers of 2"):
        VQVideoAutoencoder(vq_tiny(downsample=(3, 4, 4)))
    with pytest.raises(ValueError, match=r"dim=4"):
        VectorQuantizer(8, 4)(torch.randn(2, 3))
