"""Mixed precision (issue 16). No GPU is lent to this project, so what the CPU
can show: `--amp` builds MMEngine's AmpOptimWrapper from our configs as
MMPose's tools/train.py does; the model's -inf bias tables, pruning scores,
outputs and the Global Perceived loss stay finite in float16; and 20
iterations under bfloat16 autocast track the float32 run."""
import glob
import math
import re
import runpy
import sys
from types import SimpleNamespace

import pytest
import torch
from conftest import config_file
from mini_runner import make_runner
from mmengine.hooks import Hook
from mmengine.optim import AmpOptimWrapper

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


# ---- float16 with a loss scaler -------------------------------------------
FLOAT16 = {
    # MMEngine's AmpOptimWrapper with a GradScaler that works on the CPU
    'optim_wrapper.type': 'DeviceAmpOptimWrapper',
    'optim_wrapper.dtype': 'float16',
    'optim_wrapper.loss_scale': 'dynamic',
    # two people, one batch: one iteration per epoch in seconds
    'train_dataloader.batch_size': 2,
    'train_dataloader.dataset.indices': 2,
    'default_hooks.checkpoint.interval': 100,
}


def inf_distillation_in(monkeypatch, iterations) -> None:
    """Make the loss's distillation term Inf in the given (1-based)
    iterations (float16 autocast: one call per iteration)."""
    from gtpt_mmpose.models.losses import GlobalPerceivedLoss
    terms, calls = GlobalPerceivedLoss.pruned_terms, []

    def pruned_terms(self, *args, **kwargs):
        out = terms(self, *args, **kwargs)
        calls.append(1)
        if len(calls) in iterations:
            out['loss_distill'] = out['loss_distill'] * float('inf')
        return out

    monkeypatch.setattr(GlobalPerceivedLoss, 'pruned_terms', pruned_terms)


class StepProbe(Hook):
    """The weights, the EMA's state and the loss scale when training starts
    and after every iteration (registered last: after the EMA's update)."""

    def __init__(self) -> None:
        self.rows = []

    def _record(self, runner) -> None:
        ema = next(h for h in runner.hooks if hasattr(h, 'ema_model'))
        self.rows.append(
            dict(
                weights={
                    k: v.detach().clone()
                    for k, v in runner.model.named_parameters()
                },
                ema={
                    k: v.clone()
                    for k, v in ema.ema_model.module.state_dict().items()
                },
                scale=runner.optim_wrapper.loss_scaler.get_scale()))

    def before_train(self, runner) -> None:
        self._record(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        self._record(runner)


def log_text(work_dir) -> str:
    return open(glob.glob(str(work_dir / '*' / '*.log'))[-1]).read()


@pytest.mark.slow
def test_float16_an_inf_loss_skips_the_step_and_training_goes_on(
        tmp_path, monkeypatch):
    inf_distillation_in(monkeypatch, {1})
    runner, recorder = make_runner(
        tmp_path, 'inf_loss', epochs=2, options=FLOAT16)
    probe = StepProbe()
    runner.register_hook(probe, priority='LOWEST')
    runner.train()
    assert isinstance(runner.optim_wrapper, AmpOptimWrapper)
    assert recorder.losses[0]['loss_distill'] == float('inf')
    assert math.isfinite(recorder.losses[1]['loss'])
    start, skipped, stepped = probe.rows
    # the scaler skipped the step: weights unchanged, the scale halved ...
    for key, value in start['weights'].items():
        assert torch.equal(skipped['weights'][key], value), key
    assert (start['scale'], skipped['scale']) == (2.0**16, 2.0**15)
    assert (
        'iteration 1 (epoch 1): loss term loss_distill is NaN/Inf; the '
        'loss scaler skipped the optimizer step and lowered the scale to '
        '32768 (1 skipped in a row; 16 stop the run)') in log_text(tmp_path)
    # ... the EMA averaged the unchanged weights (and the finite BatchNorm
    # statistics of the skipped step's forward pass) ...
    for key, value in skipped['ema'].items():
        assert torch.isfinite(value[value.abs() != float('inf')]).all(), key
        if key in start['weights']:
            assert torch.equal(value, start['weights'][key]), key
    # ... and the next step trained
    changed = [
        k for k, v in stepped['weights'].items()
        if not torch.equal(v, skipped['weights'][k])
    ]
    assert len(changed) > 100
    saved = torch.load(tmp_path / 'epoch_2.pth', weights_only=True)
    assert all(
        torch.isfinite(v[v.abs() != float('inf')]).all()
        for v in saved['state_dict'].values() if v.is_floating_point())


@pytest.mark.slow
def test_float16_skipped_steps_in_a_row_stop_the_run(tmp_path, monkeypatch):
    inf_distillation_in(monkeypatch, {1, 2})
    runner, recorder = make_runner(
        tmp_path,
        'inf_losses',
        epochs=3,
        options={
            **FLOAT16, 'custom_hooks':
            [dict(type='NonFiniteCheckHook', max_consecutive_skips=2)]
        })
    with pytest.raises(
            FloatingPointError,
            match=r'^iterations 1-2 \(epoch 2\): 2 optimizer steps in a row '
            r'skipped by the loss scaler for NaN/Inf losses or gradients '
            r'\(scale now 16384; NonFiniteCheckHook max_consecutive_skips=2\);'
            r' training stopped'):
        runner.train()
    assert len(recorder.losses) == 1  # the second iteration never logged


def test_float16_a_nan_input_still_stops_the_run(tmp_path):
    from test_training_safety import POISONED_IMAGE, poison_pixels
    runner, _ = make_runner(
        tmp_path,
        'nan_input_fp16',
        options={
            **FLOAT16, 'train_dataloader.batch_size': 16,
            'train_dataloader.dataset.indices': None
        })
    runner.train_dataloader.dataset.pipeline.transforms.insert(
        -1, poison_pixels)  # before PackPoseInputs
    with pytest.raises(FloatingPointError) as info:
        runner.train()
    assert re.fullmatch(
        rf'iteration 1 \(epoch 1\): input image #\d+ of the batch '
        rf'\(\S+{POISONED_IMAGE}\) has NaN/Inf pixel values; training '
        r'stopped before this step, no checkpoint written', str(info.value))
    assert not glob.glob(str(tmp_path / '*.pth'))


class _Runner(SimpleNamespace):
    """What NonFiniteCheckHook reads of a runner."""

    def __init__(self, scaler) -> None:
        import logging
        super().__init__(
            iter=0,
            epoch=0,
            model=torch.nn.BatchNorm1d(2),
            optim_wrapper=SimpleNamespace(loss_scaler=scaler),
            logger=logging.getLogger('test'))


def _iteration(hook, runner, loss: float, skip: bool) -> None:
    """One training iteration as the hook sees it; ``skip``: the scaler
    found NaN/Inf gradients and halved its scale."""
    hook.before_train_iter(runner, 0, None)
    if skip:
        runner.optim_wrapper.loss_scaler._scale.mul_(0.5)
    hook.after_train_iter(runner, 0, None, {'loss': torch.tensor(loss)})
    runner.iter += 1


def test_a_step_the_scaler_takes_ends_a_streak_of_skipped_ones():
    from gtpt_mmpose.engine import NonFiniteCheckHook
    scaler = torch.amp.GradScaler('cpu')
    scaler.scale(torch.ones(()))
    runner, hook = _Runner(scaler), NonFiniteCheckHook(max_consecutive_skips=3)
    for skip in (True, True, False, True, True, False):  # never 3 in a row
        _iteration(hook, runner, 1.0, skip)
    _iteration(hook, runner, float('inf'), True)
    _iteration(hook, runner, 1.0, True)  # gradient overflow alone
    with pytest.raises(
            FloatingPointError,
            match=r'^iterations 7-9 \(epoch 1\): 3 optimizer steps in a row'):
        _iteration(hook, runner, 1.0, True)


def test_without_an_enabled_scaler_the_first_inf_loss_stops_the_run():
    """float32, and bfloat16 on the CPU, where MMEngine's GradScaler is
    disabled: nothing would skip the step."""
    from gtpt_mmpose.engine import NonFiniteCheckHook
    for scaler in (None, torch.amp.GradScaler('cpu', enabled=False)):
        runner = _Runner(scaler)
        _iteration(NonFiniteCheckHook(), runner, 1.0, False)
        with pytest.raises(
                FloatingPointError,
                match=r'^iteration 2 \(epoch 1\): loss term loss is NaN/Inf '
                r'\(loss=inf\); training stopped, no checkpoint written'):
            _iteration(NonFiniteCheckHook(), runner, float('inf'), False)


def test_the_cpu_amp_wrapper_builds_an_enabled_cpu_scaler():
    from gtpt_mmpose.engine import DeviceAmpOptimWrapper
    model = torch.nn.Linear(2, 2)
    wrapper = DeviceAmpOptimWrapper(
        torch.optim.Adam(model.parameters()), dtype='float16')
    assert wrapper.loss_scaler.is_enabled()
    assert wrapper.loss_scaler._device == 'cpu'
    with wrapper.optim_context(model):
        assert model(torch.ones(1, 2)).dtype == torch.float16
    static = DeviceAmpOptimWrapper(
        torch.optim.Adam(model.parameters()), loss_scale=512.)
    assert static.loss_scaler.get_scale() == 512.


@pytest.mark.parametrize('scaled', [False, True])
def test_the_check_reads_from_the_device_once_per_step(monkeypatch, scaled):
    """Every way a tensor's value reaches Python, counted over a step with
    three loss terms and their sum (a GPU waits for each)."""
    from gtpt_mmpose.engine import NonFiniteCheckHook
    scaler = torch.amp.GradScaler('cpu') if scaled else None
    if scaled:
        scaler.scale(torch.ones(()))
    runner, hook = _Runner(scaler), NonFiniteCheckHook()
    reads = []
    for name in ('item', 'tolist', '__bool__', '__float__', '__int__'):
        method = getattr(torch.Tensor, name)

        def counted(self, *args, _method=method, _name=name, **kwargs):
            reads.append(_name)
            return _method(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)
    outputs = dict(
        loss=torch.tensor(1.5),
        loss_kpt=torch.tensor(1.0),
        loss_kpt_unpruned=torch.tensor(0.4),
        loss_distill=torch.tensor(0.1))
    hook.before_train_iter(runner, 0, None)
    hook.after_train_iter(runner, 0, None, outputs)
    assert reads == ['tolist']
