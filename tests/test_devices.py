"""The model, its training step and its deploy path on every device there
is: the CPU always, CUDA where available.

Reference values are computed independently on the CPU in float64, so the
same assertions check the CPU's float32 and a GPU's (TF32 off: spec §10.1).
Tolerances are those float32 rounding allows; nothing here asks a GPU for
bit-identical results, which its kernels do not promise.
"""
import copy

import pytest
import torch
import torch.nn as nn
from conftest import config_file
from test_shared_prefix import batch

DEVICES = ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    """Each available device, with TF32 off for float32 products."""
    if request.param == 'cuda':
        matmul, cudnn = (torch.backends.cuda.matmul.allow_tf32,
                         torch.backends.cudnn.allow_tf32)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        yield torch.device('cuda')
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn
    else:
        yield torch.device('cpu')


def build(name: str, **model):
    from mmengine.config import Config
    from mmpose.registry import MODELS
    cfg = Config.fromfile(config_file(name))
    cfg.model.update(model)
    torch.manual_seed(0)
    net = MODELS.build(cfg.model)
    for bn in net.modules():  # statistics far from the identity
        if isinstance(bn, nn.BatchNorm2d):
            bn.running_mean.normal_(0, 0.1)
            bn.running_var.uniform_(0.5, 2.0)
    return net


def to(samples, device):
    return [s.to(device) for s in samples]


def test_eval_logits_agree_with_a_float64_cpu_reference(device):
    """The pruned path (three top-k steps) on the device against the same
    weights in float64 on the CPU: the same kept tokens, logits within
    float32 rounding."""
    model = build('gtpt-t_coco').eval()
    x, _ = batch(17, 2)
    reference = copy.deepcopy(model).double()
    with torch.no_grad():
        want = reference.backbone.kept_tokens(x.double())
        expected = reference.head.forward((want['tokens'], ))
        model = model.to(device)
        got = model.backbone.kept_tokens(x.to(device))
        logits = model.head.forward((got['tokens'], ))
    for step in want:
        if step != 'tokens':
            assert torch.equal(got[step].cpu(), want[step]), step
    for g, e in zip(logits, expected):
        torch.testing.assert_close(g.cpu().double(), e, rtol=1e-4, atol=1e-4)


def test_training_step_backpropagates_finite_gradients(device):
    model = build('gtpt-t_coco-wholebody').train().to(device)
    x, samples = batch(133, 2)
    losses = model.loss(x.to(device), to(samples, device))
    assert {'loss_kpt', 'loss_kpt_unpruned', 'loss_distill'} <= set(losses)
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().max() > 0 for g in grads)


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_staged_backward_gives_the_joint_gradients(device, dtype):
    """Backpropagating the unpruned pass first (GTPTPoseEstimator) gives one
    joint backward's gradients, in float32 and under bfloat16 autocast."""
    x, samples = batch(133, 2)
    grads = {}
    for staged in (True, False):
        model = build(
            'gtpt-t_coco-wholebody', unpruned_first=staged).train().to(device)
        with torch.autocast(
                device.type, dtype=dtype, enabled=dtype != torch.float32):
            losses = model.loss(x.to(device), to(samples, device))
            total = sum(v for k, v in losses.items() if k.startswith('loss'))
        total.backward()
        grads[staged] = {
            n: p.grad.float()
            for n, p in model.named_parameters()
        }
    largest = max(float(g.abs().max()) for g in grads[False].values())
    # bfloat16 keeps 8 bits: the two orders of summation round differently
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    for n, ref in grads[False].items():
        torch.testing.assert_close(
            grads[True][n], ref, rtol=tol * 10, atol=tol * largest, msg=n)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_mixed_precision_step_updates_the_weights(device, dtype):
    """One autocast step (float16 with a loss scaler, as MMEngine's
    AmpOptimWrapper does): finite losses, every trained weight moves."""
    if device.type == 'cpu' and dtype == torch.float16 and not hasattr(
            torch.amp, 'GradScaler'):
        pytest.skip('this PyTorch has no CPU GradScaler')
    model = build('gtpt-t_coco-wholebody').train().to(device)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    x, samples = batch(133, 2)
    with torch.autocast(device.type, dtype=dtype):
        losses = model.loss(x.to(device), to(samples, device))
        total = sum(v for k, v in losses.items() if k.startswith('loss'))
    assert torch.isfinite(total)
    scaler.scale(total).backward()
    scaler.step(optimizer)
    scaler.update()
    assert scaler.get_scale() > 0
    moved = [
        n for n, p in model.named_parameters()
        if not torch.equal(p.detach(), before[n])
    ]
    assert len(moved) == len(before)
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_ema_update_is_the_authors_formula(device):
    """CosineMomentumEMA on the device: ema <- m ema + (1 - m) live for
    weights and BatchNorm statistics, counters copied (spec §7.1)."""
    from gtpt_mmpose.engine.ema import CosineMomentumEMA
    model = build('gtpt-t_coco').to(device)
    ema = CosineMomentumEMA(model, momentum_start=0.9, total_iters=10)
    start = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.add_(1.0)
                m.num_batches_tracked.add_(3)
    ema.update_parameters(model)  # step 0: m = 0.9
    live = model.state_dict()
    for key, got in ema.module.state_dict().items():
        if got.dtype.is_floating_point:
            torch.testing.assert_close(
                got, 0.9 * start[key] + 0.1 * live[key], msg=key)
        else:
            assert torch.equal(got, live[key]), key


def test_deploy_path_keeps_the_outputs_on_the_device(device):
    """prepare_for_inference on the model's device (the plan follows it:
    chunks and oneDNN on the CPU only) gives the model's logits."""
    from gtpt_mmpose.deploy import (BatchChunks, ImageToSimCC, inference_plan,
                                    prepare_for_inference)
    model = build('gtpt-t_coco-wholebody').eval().to(device)
    x, _ = batch(133, 5)
    x = x.to(device)
    with torch.no_grad():
        expected = ImageToSimCC(model)(x)
        prepared = prepare_for_inference(copy.deepcopy(model))
        got = ImageToSimCC(prepared)(x)
    chunked = isinstance(prepared.backbone.stem, BatchChunks)
    assert chunked == bool(inference_plan(device).tokenizer_chunk)
    assert chunked == (device.type == 'cpu')
    for g, e in zip(got, expected):
        assert g.device.type == device.type
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)
