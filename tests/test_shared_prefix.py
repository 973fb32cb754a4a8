"""Training computes the layers both paths share once, and backpropagates
the unpruned pass before the pruned one runs (issue 15): the same losses and
gradients as two separate passes in one backward (docs/spec.md §5, §6)."""
import pytest
import torch
from conftest import config_file


def build(name: str, unpruned_first: bool = True, **backbone):
    from mmengine.config import Config
    from mmpose.registry import MODELS
    cfg = Config.fromfile(config_file(name))
    cfg.model.backbone.update(backbone)
    cfg.model.unpruned_first = unpruned_first
    torch.manual_seed(0)
    return MODELS.build(cfg.model).train()


def batch(k: int, n: int = 3):
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample
    g = torch.Generator().manual_seed(1)
    samples = []
    for _ in range(n):
        s = PoseDataSample()
        s.gt_instance_labels = InstanceData(
            keypoint_x_labels=torch.rand(1, k, 384, generator=g).softmax(-1),
            keypoint_y_labels=torch.rand(1, k, 512, generator=g).softmax(-1),
            keypoint_weights=(torch.rand(1, k, generator=g) > 0.2).float())
        samples.append(s)
    return torch.randn(n, 3, 256, 192, generator=g), samples


def losses_and_grads(model, x, samples):
    model.zero_grad()
    losses = model.loss(x, samples)
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    return ({
        k: v.detach()
        for k, v in losses.items()
    }, {
        n: p.grad.clone()
        for n, p in model.named_parameters()
    })


def two_pass(backbone):
    """The backbone's forward with each path from the tokens on: the shared
    layers computed twice, as before this optimisation."""

    def forward(x):
        visual = backbone.tokenize(x)
        return tuple(
            backbone.encode(visual, backbone.plans[p]).tokens
            for p in ('pruned', 'unpruned'))

    return forward


@pytest.mark.parametrize('name', ['gtpt-t_coco-wholebody', 'gtpt-t_coco'])
def test_shared_prefix_gives_the_two_pass_losses_and_gradients(
        name, monkeypatch):
    # one joint backward: the loss goes through the backbone's forward
    model = build(name, unpruned_first=False)
    backbone = model.backbone
    assert backbone.split_layer == 3  # prune #1 opens coarse layer 3's FFN
    x, samples = batch(backbone.num_keypoints)
    shared_losses, shared_grads = losses_and_grads(model, x, samples)
    monkeypatch.setattr(backbone, 'forward', two_pass(backbone))
    ref_losses, ref_grads = losses_and_grads(model, x, samples)
    # the forward values are computed by the same operations: bit for bit
    for k in ref_losses:
        assert torch.equal(shared_losses[k], ref_losses[k]), k
    # the gradients of the shared layers add up in another order, so they
    # agree to float32 rounding: sums over up to B*H*W = 36,864 terms (the
    # stride-2 stem) lose about sqrt(N) * 1.2e-7 = 2.3e-5 of the gradient
    # flowing through; relative to the model's largest gradient, as the
    # biases before a BatchNorm have a true gradient of 0 (pure rounding)
    largest = max(float(g.abs().max()) for g in ref_grads.values())
    assert largest > 0
    for n, ref in ref_grads.items():
        torch.testing.assert_close(
            shared_grads[n], ref, rtol=1e-4, atol=1e-5 * largest, msg=n)
    assert any(not torch.equal(shared_grads[n], ref_grads[n])
               for n in ref_grads)  # the two computations really differ


def test_eval_forward_runs_the_pruned_path_only():
    model = build('gtpt-t_coco-wholebody').eval()
    x, _ = batch(133, 2)
    with torch.no_grad():
        (tokens, ) = model.backbone(x)
        ref = model.backbone.encode(
            model.backbone.tokenize(x), model.backbone.plans['pruned'])
    assert torch.equal(tokens, ref.tokens)


@pytest.mark.parametrize('name', ['gtpt-t_coco-wholebody', 'gtpt-t_coco'])
def test_training_unpruned_output_is_eval_forward_without_pruning(name):
    """The training-time unpruned path (the distillation teacher) is the
    model with keep ratios (1, 1, 1, 1): on COCO-WholeBody that still drops
    N_d visual tokens per group at the transition (quirk Q7)."""
    trained = build(name)
    for bn in trained.modules():  # batch statistics would differ
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.eval()
    keep_all = build(name, keep_ratios=(1.0, ) * 4).eval()
    keep_all.load_state_dict(trained.state_dict())
    x, _ = batch(trained.backbone.num_keypoints)
    with torch.no_grad():
        pruned, unpruned = trained.backbone(x)
        (reference, ) = keep_all.backbone(x)
    torch.testing.assert_close(unpruned, reference, rtol=1e-5, atol=1e-5)
    assert (pruned - unpruned).abs().max() > 1e-2  # pruning changes them


@pytest.mark.parametrize('name', ['gtpt-t_coco-wholebody', 'gtpt-t_coco'])
def test_unpruned_pass_first_gives_the_joint_losses_and_gradients(
        name, monkeypatch):
    """GTPTPoseEstimator backpropagates the unpruned pass before running the
    pruned one: the logged losses and every gradient of one joint backward.
    """
    staged = build(name)
    joint = build(name, unpruned_first=False)
    x, samples = batch(staged.backbone.num_keypoints)
    calls = []
    grad = torch.autograd.grad
    monkeypatch.setattr(torch.autograd, 'grad',
                        lambda *a, **k: calls.append(1) or grad(*a, **k))
    staged_losses, staged_grads = losses_and_grads(staged, x, samples)
    assert calls  # the unpruned pass had a backward of its own
    ref_losses, ref_grads = losses_and_grads(joint, x, samples)
    assert list(staged_losses) == list(ref_losses)
    for k in ref_losses:  # the same operations forward: bit for bit
        assert torch.equal(staged_losses[k], ref_losses[k]), k
    # gradients that both passes send to a layer add up in another order:
    # float32 rounding, as in the test above
    largest = max(float(g.abs().max()) for g in ref_grads.values())
    for n, ref in ref_grads.items():
        torch.testing.assert_close(
            staged_grads[n], ref, rtol=1e-4, atol=1e-5 * largest, msg=n)


def test_unpruned_pass_first_scales_its_gradients_with_the_loss():
    """An optimizer wrapper scales the summed loss (gradient accumulation,
    a loss scaler): the unpruned pass's gradients are scaled with it."""
    model = build('gtpt-t_coco-wholebody')
    x, samples = batch(133)
    _, once = losses_and_grads(model, x, samples)
    model.zero_grad()
    losses = model.loss(x, samples)
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    (0.25 * total).backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, 0.25 * once[n], msg=n)


def test_the_pruned_pass_alone_and_inference_take_mmposes_loss_path():
    model = build('gtpt-t_coco-wholebody', unpruned_pass=False)
    x, samples = batch(133)
    assert not model._stages_the_passes(x)  # no unpruned pass to stage
    assert set(model.loss(x, samples)) == {'loss_kpt', 'acc_pose'}
    with torch.no_grad():
        assert not build('gtpt-t_coco-wholebody')._stages_the_passes(x)
