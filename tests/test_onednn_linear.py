"""oneDNN's linear layers for CPU inference (``deploy/onednn_linear.py``):
the same function as a float64 product computed here, on every path the
layer can take, and chosen by the CPU the way its docstring says."""
import pytest
import torch
import torch.nn as nn

from gtpt_mmpose.deploy import onednn_linear
from gtpt_mmpose.deploy.onednn_linear import (OneDNNFeedForward, OneDNNLinear,
                                              OneDNNPatchEmbed,
                                              onednn_linear_available)
from gtpt_mmpose.models.backbones.patch_embed import PatchEmbed
from gtpt_mmpose.models.backbones.transformer import FeedForward

pytestmark = pytest.mark.skipif(
    not onednn_linear_available(), reason='this PyTorch has no oneDNN')


def reference(x, weight, bias, gelu=False):
    """x @ W^T + b (then exact GELU) in float64: an independent answer."""
    y = x.double() @ weight.double().t() + bias.double()
    if gelu:
        y = 0.5 * y * (1 + torch.erf(y / 2**0.5))
    return y.float()


@pytest.mark.parametrize('gelu', [False, True])
@pytest.mark.parametrize('mode', ['onednn', 'grad', 'autocast', 'compiled'])
def test_the_layer_is_the_linear_function_on_every_path(gelu, mode):
    torch.manual_seed(0)
    plain = nn.Linear(48, 80)
    layer = OneDNNLinear(plain, gelu=gelu)
    x = torch.randn(3, 7, 48)
    expected = reference(x, plain.weight, plain.bias, gelu)
    if mode == 'onednn':  # its own operator: float32 inference on the CPU
        with torch.no_grad():
            got = layer(x)
    elif mode == 'grad':  # PyTorch's own path, so that backward works
        got = layer(x.requires_grad_())
        got.sum().backward()
        assert x.grad is not None and plain.weight.grad is not None
    elif mode == 'autocast':  # bf16: PyTorch's path, bf16 rounding
        with torch.no_grad(), torch.autocast('cpu'):
            got = layer(x)
        assert got.dtype == torch.bfloat16
        torch.testing.assert_close(got.float(), expected, rtol=0.05, atol=0.05)
        return
    else:  # torch.compile lowers F.linear to its own kernels
        torch._dynamo.reset()
        with torch.no_grad():
            got = torch.compile(layer)(x)
    assert got.shape == (3, 7, 80)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_the_layer_shares_the_parameters_of_the_one_it_replaces():
    plain = nn.Linear(8, 4)
    layer = OneDNNLinear(plain)
    assert layer.weight is plain.weight and layer.bias is plain.bias
    assert dict(layer.named_parameters()).keys() == {'weight', 'bias'}


def test_ffn_and_patch_embedding_are_the_same_functions():
    torch.manual_seed(0)
    ffn = FeedForward(32, 96)
    x = torch.randn(2, 5, 32)
    hidden = reference(x, ffn.fc1.weight, ffn.fc1.bias, gelu=True)
    expected = reference(hidden, ffn.fc2.weight, ffn.fc2.bias)
    with torch.no_grad():
        torch.testing.assert_close(
            OneDNNFeedForward(ffn)(x), expected, rtol=1e-5, atol=1e-5)
    embed = PatchEmbed(16, 24, (4, 3))
    f = torch.randn(2, 16, 8, 6)
    # patch (r, c) of the 2 x 2 grid, its vector (row, column, channel)
    patches = f.unfold(2, 4, 4).unfold(3, 3, 3)  # B, ch, 2, 2, 4, 3
    vectors = patches.permute(0, 2, 3, 4, 5, 1).reshape(2, 4, 4 * 3 * 16)
    with torch.no_grad():
        torch.testing.assert_close(
            OneDNNPatchEmbed(embed)(f),
            reference(vectors, embed.weight, embed.bias),
            rtol=1e-5,
            atol=1e-5)


@pytest.mark.parametrize('vendor,mkl,slow', [('GenuineIntel', True, False),
                                             ('GenuineIntel', False, True),
                                             ('AuthenticAMD', True, True),
                                             ('', True, True)])
def test_onednn_is_chosen_where_mkl_is_slow(monkeypatch, vendor, mkl, slow):
    """MKL picks its kernels by vendor: fast on Intel CPUs only."""
    monkeypatch.setattr(onednn_linear, 'cpuinfo_field', lambda name: vendor
                        if name == 'vendor_id' else '')
    monkeypatch.setattr(torch.backends.mkl, 'is_available', lambda: mkl)
    assert onednn_linear.mkl_is_slow() == slow
