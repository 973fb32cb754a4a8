"""GTPT's linear layers through oneDNN (issues 14 and 15): the same layer,
forward and backward, as PyTorch's ``nn.Linear``, in training and eval, and
none of it in an exported graph."""
import pytest
import torch
import torch.nn as nn
from test_shared_prefix import batch, build, losses_and_grads

from gtpt_mmpose.deploy import prepare_for_inference
from gtpt_mmpose.models.backbones import onednn_linear
from gtpt_mmpose.models.backbones.onednn_linear import (
    OneDNNLinear, OneDNNPatchEmbed, onednn_linear_available,
    resolve_linear_kernel, use_torch_linears)

pytestmark = pytest.mark.skipif(
    not onednn_linear_available(), reason='this PyTorch has no oneDNN')


def test_every_linear_layer_of_the_backbone_runs_through_onednn():
    backbone = build('gtpt-t_coco-wholebody', linear_kernel='onednn').backbone
    linears = [m for m in backbone.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1 + 12 * 4 + 2  # patches, 12 layers, group mask
    assert all(isinstance(m, OneDNNLinear) for m in linears)
    assert isinstance(backbone.patch_embed, OneDNNPatchEmbed)
    ffn = backbone.coarse_blocks[0].ffn  # GELU recomputed in backward
    assert isinstance(ffn.act, nn.Identity)
    assert ffn.fc2.input_activation == 'gelu'
    plain = build('gtpt-t_coco-wholebody', linear_kernel='torch').backbone
    assert not any(isinstance(m, OneDNNLinear) for m in plain.modules())
    # the same parameters under the same names: checkpoints do not see it
    assert backbone.state_dict().keys() == plain.state_dict().keys()
    with pytest.raises(ValueError, match='linear_kernel must be one of'):
        build('gtpt-t_coco-wholebody', linear_kernel='mkl')


@pytest.mark.parametrize('vendor,mkl,kernel',
                         [('GenuineIntel', True, 'torch'),
                          ('GenuineIntel', False, 'onednn'),
                          ('AuthenticAMD', True, 'onednn'),
                          ('', True, 'onednn')])
def test_auto_takes_mkl_on_intel_cpus_and_onednn_elsewhere(
        monkeypatch, vendor, mkl, kernel):
    monkeypatch.setattr(onednn_linear, 'cpu_vendor', lambda: vendor)
    monkeypatch.setattr(torch.backends.mkl, 'is_available', lambda: mkl)
    assert resolve_linear_kernel('auto') == kernel
    assert resolve_linear_kernel('torch') == 'torch'
    assert resolve_linear_kernel('onednn') == 'onednn'
    backbone = build('gtpt-t_coco-wholebody').backbone  # 'auto', the default
    assert isinstance(backbone.patch_embed, OneDNNPatchEmbed) == (
        kernel == 'onednn')


def test_the_cpu_vendor_is_read_from_the_system():
    vendor = onednn_linear.cpu_vendor()
    assert isinstance(vendor, str)
    try:
        with open('/proc/cpuinfo') as f:
            listed = 'vendor_id' in f.read()
    except OSError:
        listed = False
    assert bool(vendor) == listed


@pytest.mark.parametrize('name', ['gtpt-t_coco-wholebody', 'gtpt-b_coco'])
def test_training_step_gives_the_losses_and_gradients_of_torch_linears(name):
    fast = build(name, linear_kernel='onednn')
    plain = build(name, linear_kernel='torch')
    plain.load_state_dict(fast.state_dict())
    x, samples = batch(fast.backbone.num_keypoints)
    fast_losses, fast_grads = losses_and_grads(fast, x, samples)
    ref_losses, ref_grads = losses_and_grads(plain, x, samples)
    for k in ref_losses:
        torch.testing.assert_close(
            fast_losses[k], ref_losses[k], rtol=1e-5, atol=1e-7, msg=k)
    # other summation orders: float32 rounding, relative to the largest
    # gradient (the biases before a BatchNorm have a true gradient of 0)
    largest = max(float(g.abs().max()) for g in ref_grads.values())
    for n, ref in ref_grads.items():
        torch.testing.assert_close(
            fast_grads[n], ref, rtol=1e-4, atol=1e-5 * largest, msg=n)
    assert any(not torch.equal(fast_grads[n], ref_grads[n])
               for n in ref_grads)  # oneDNN really ran


def test_eval_forward_and_autocast_match_torch_linears():
    fast = build('gtpt-t_coco-wholebody', linear_kernel='onednn').eval()
    plain = build('gtpt-t_coco-wholebody', linear_kernel='torch').eval()
    plain.load_state_dict(fast.state_dict())
    x, _ = batch(133, 2)
    with torch.no_grad():
        torch.testing.assert_close(
            fast.backbone(x)[0], plain.backbone(x)[0], rtol=1e-4, atol=1e-4)
        with torch.autocast('cpu', torch.bfloat16):  # PyTorch's own path
            assert torch.equal(fast.backbone(x)[0], plain.backbone(x)[0])


def test_an_exported_graph_gets_plain_linear_layers():
    model = build('gtpt-t_coco-wholebody', linear_kernel='onednn').eval()
    prepared = prepare_for_inference(model, 'export')
    assert not any(isinstance(m, OneDNNLinear) for m in prepared.modules())
    assert type(prepared.backbone.patch_embed).__name__ == 'PatchEmbed'
    assert all(
        isinstance(b.ffn.act, nn.GELU)
        for b in prepared.backbone.coarse_blocks)
    assert use_torch_linears(prepared) == 0


@pytest.mark.parametrize('compiled_inference', ['onednn', 'torch'])
def test_a_compiled_inference_graph_calls_the_chosen_kernel(
        compiled_inference):
    """Traced for inference, a layer with ``compiled_inference='torch'``
    leaves the product to inductor (a plain linear op); with ``'onednn'`` it
    keeps oneDNN's operator. Both give the layer's outputs, and a graph
    traced with gradients keeps the operator (its backward)."""
    torch.manual_seed(0)
    layer = OneDNNLinear(nn.Linear(24, 40), 'gelu', 'none', compiled_inference)
    x = torch.randn(3, 7, 24)
    targets = []

    def capture(gm, example_inputs):
        targets.extend(str(n.target) for n in gm.graph.nodes)
        return gm

    torch._dynamo.reset()
    with torch.no_grad():
        got = torch.compile(layer, backend=capture, dynamic=False)(x)
    uses_operator = any('onednn_linear' in t for t in targets)
    assert uses_operator == (compiled_inference == 'onednn')
    expected = nn.functional.gelu(
        nn.functional.linear(x, layer.weight, layer.bias))
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    targets.clear()
    torch._dynamo.reset()
    torch.compile(layer, backend=capture, dynamic=False)(x)
    assert any('onednn_linear' in t for t in targets)


def test_prepared_layers_leave_compiled_products_to_inductor_where_mkl_is_fast(
        monkeypatch):
    for vendor, expected in (('GenuineIntel', 'torch'), ('AuthenticAMD',
                                                         'onednn')):
        monkeypatch.setattr(onednn_linear, 'cpu_vendor', lambda: vendor)
        monkeypatch.setattr(torch.backends.mkl, 'is_available', lambda: True)
        model = build('gtpt-t_coco-wholebody', linear_kernel='torch').eval()
        prepared = prepare_for_inference(model, 'eager')
        layers = [m for m in prepared.modules() if isinstance(m, OneDNNLinear)]
        assert layers and all(m.compiled_inference == expected for m in layers)
