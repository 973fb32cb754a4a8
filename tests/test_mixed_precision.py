"""Mixed precision (issue 16). No GPU is lent to this project, so what the CPU
can show: `--amp` builds MMEngine's AmpOptimWrapper from our configs as
MMPose's tools/train.py does; the model's -inf bias tables, pruning scores,
outputs and the Global Perceived loss stay finite in float16; and 20
iterations under bfloat16 autocast track the float32 run."""
import math
import runpy
import sys

import pytest
import torch
from conftest import config_file
from mini_runner import make_runner

from gtpt_mmpose.launcher import mmpose_tool


def build(name: str):
    from mmengine.config import Config
    from mmpose.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(Config.fromfile(config_file(name)).model)
    model.init_weights()
    return model


@pytest.fixture
def amp_on_cpu(monkeypatch):
    """Let AmpOptimWrapper be built without CUDA (it asserts a GPU; on the
    CPU its GradScaler disables itself and autocast runs in bfloat16)."""
    from mmengine.optim.optimizer import amp_optimizer_wrapper
    monkeypatch.setattr(amp_optimizer_wrapper, 'is_cuda_available',
                        lambda: True)


def amp_config(name: str, monkeypatch):
    """The config as MMPose's tools/train.py makes it from ``CONFIG --amp``.
    """
    tool = runpy.run_path(mmpose_tool('train.py'), run_name='mmpose_train')
    monkeypatch.setattr(sys, 'argv', ['train.py', config_file(name), '--amp'])
    args = tool['parse_args']()
    from mmengine.config import Config
    return tool['merge_args'](Config.fromfile(args.config), args)


def test_amp_builds_mmengines_amp_optim_wrapper_from_our_config(
        monkeypatch, amp_on_cpu):
    from mmengine.optim import AmpOptimWrapper, build_optim_wrapper
    cfg = amp_config('gtpt-s_coco-wholebody', monkeypatch)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.optim_wrapper.loss_scale == 'dynamic'
    wrapper = build_optim_wrapper(build('gtpt-t_coco'), cfg.optim_wrapper)
    assert isinstance(wrapper, AmpOptimWrapper)
    assert type(wrapper.optimizer).__name__ == 'Adam'
    group = wrapper.optimizer.param_groups[0]
    assert (group['lr'], group['betas'],
            group['weight_decay']) == (1e-3, (0.9, 0.999), 0.0)


def test_pruning_scores_and_bias_tables_stay_finite_in_float16():
    from gtpt_mmpose.models.backbones.gtpt import pooled_scores
    model = build('gtpt-t_coco-wholebody').half()
    backbone = model.backbone
    bias = backbone.group_query_bias  # -inf leaves a query row out
    candidates = backbone.plans['pruned'].group_candidate_bias
    assert bias.dtype == candidates.dtype == torch.float16
    assert torch.isinf(bias).any() and torch.isinf(candidates).any()
    g, _, rows, _ = bias.shape
    keys = candidates.shape[-1]
    for magnitude in (1.0, 60.0, 6e4):  # up to float16's largest values
        logits = (torch.randn(2, g, 8, rows, keys) *
                  magnitude).clamp(-6e4, 6e4).half()
        scores = pooled_scores(logits, bias)
        reference = pooled_scores(logits.float(), bias.float())
        assert torch.isfinite(scores).all(), magnitude
        torch.testing.assert_close(scores, reference)
        ranked = scores + candidates  # -inf: dense tokens are never pruned
        assert not torch.isnan(ranked).any()


@pytest.mark.parametrize('mode', ['eval', 'train'])
def test_the_model_is_finite_in_float16(mode):
    model = getattr(build('gtpt-t_coco-wholebody'), mode)().half()
    x = torch.randn(2, 3, 256, 192).half()
    with torch.no_grad():
        feats = model.extract_feat(x)
        assert len(feats) == (1 if mode == 'eval' else 2)  # + unpruned
        for tokens in feats:
            for logits in model.head.classify(tokens):
                assert logits.dtype == torch.float16
                assert torch.isfinite(logits).all()
        if mode == 'eval':
            kept = model.backbone.kept_tokens(x)
            for name, index in kept.items():
                if name != 'tokens':
                    assert index.max() < 256 and index.min() >= -1, name


def test_the_gp_loss_is_finite_in_float16():
    from gtpt_mmpose.models.losses import GlobalPerceivedLoss
    g = torch.Generator().manual_seed(0)
    b, k = 4, 133
    pred, unpruned = ((torch.randn(b, k, 384, generator=g) * 8,
                       torch.randn(b, k, 512, generator=g) * 8)
                      for _ in range(2))
    bins = (torch.arange(384.), torch.arange(512.))
    centre = torch.rand(b, k, 2, generator=g) * torch.tensor([384., 512.])
    target = tuple(
        torch.exp(-(bn - centre[..., a:a + 1])**2 / 32) /
        (4 * math.sqrt(2 * math.pi)) for a, bn in enumerate(bins))
    weights = (torch.rand(b, k, generator=g) > 0.3).float()

    def loss(dtype):
        half = (lambda t: tuple(x.to(dtype) for x in t))
        return GlobalPerceivedLoss()(half(pred), half(target),
                                     weights.to(dtype), half(unpruned))

    full, low = loss(torch.float32), loss(torch.float16)
    for name, value in low.items():
        assert value.dtype == torch.float16 and torch.isfinite(value), name
        torch.testing.assert_close(
            value.float(), full[name], rtol=2e-2, atol=1e-4)


@pytest.mark.slow
def test_20_iterations_under_bfloat16_autocast_track_float32(
        tmp_path, amp_on_cpu):
    """The mini config for 20 iterations (one per epoch), in float32 and
    with ``optim_wrapper=dict(type='AmpOptimWrapper', dtype='bfloat16')``
    (autocast on the CPU)."""
    losses = {}
    for name, options in (('fp32', {}), ('bf16', {
            'optim_wrapper.type': 'AmpOptimWrapper',
            'optim_wrapper.dtype': 'bfloat16',
            'optim_wrapper.loss_scale': 'dynamic'
    })):
        runner, recorder = make_runner(
            tmp_path / name,
            name,
            epochs=20,
            options={
                'default_hooks.checkpoint.interval': 100,
                **options
            })
        runner.train()
        losses[name] = [step['loss'] for step in recorder.losses]
    fp32, bf16 = losses['fp32'], losses['bf16']
    assert len(fp32) == len(bf16) == 20
    assert all(math.isfinite(v) for v in bf16)
    gaps = [abs(a - b) / abs(a) for a, b in zip(fp32, bf16)]
    print('fp32 losses', [f'{v:.5f}' for v in fp32])
    print('bf16 losses', [f'{v:.5f}' for v in bf16])
    print(f'largest relative gap {max(gaps):.2%}, last {gaps[-1]:.2%}')
    assert max(gaps) < 0.05
    assert bf16[-1] < 0.8 * bf16[0] and fp32[-1] < 0.8 * fp32[0]  # both learn
