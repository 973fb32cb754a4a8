"""The paper's training recipe (issue 6): Global Perceived loss,
cosine-momentum EMA, curriculum."""
import math

import pytest
import torch
from conftest import config_file
from mmengine.hooks import Hook

from gtpt_mmpose.engine.curriculum import CurriculumInitHook, load_stage1
from gtpt_mmpose.engine.ema import CosineMomentumEMA
from gtpt_mmpose.models.losses import GlobalPerceivedLoss

# the only weights a whole-body GTPT has that a body GTPT lacks
NEW_IN_STAGE2 = ('backbone.part_token', 'backbone.dense_keypoint_token')


def build(name: str):
    from mmengine.config import Config
    from mmpose.registry import MODELS
    return MODELS.build(Config.fromfile(config_file(name)).model)


def eq12(pred, unpruned, target, weights):
    """Eq. 12 written out from spec §6.2: per keypoint and axis, mean over bins
    of the three KL terms, times the keypoint weight, averaged over the batch,
    summed over axes, averaged over keypoints."""
    b, k = weights.shape
    total = 0.0
    for s_logits, u_logits, t in zip(pred, unpruned, target):
        s, u = s_logits.log_softmax(-1), u_logits.log_softmax(-1)
        u_bar = u.detach()
        per_bin = kl(t, u) + kl(t, s) + u_bar.exp() * (u_bar - s)
        total = total + (per_bin.mean(-1) * weights).sum() / b
    return total / k


def gp_loss(*args) -> torch.Tensor:
    """The loss MMEngine optimises: the sum of GlobalPerceivedLoss's terms."""
    return sum(GlobalPerceivedLoss()(*args).values())


def kl(p: torch.Tensor, logq: torch.Tensor) -> torch.Tensor:
    """p * (log p - log q) per bin, 0 where p is 0."""
    return torch.where(p > 0, p * (torch.log(p.clamp_min(1e-30)) - logq), 0.0)


def _batch(b=3, k=17, seed=0):
    g = torch.Generator().manual_seed(seed)
    pred = (torch.randn(b, k, 384,
                        generator=g), torch.randn(b, k, 512, generator=g))
    unpruned = (torch.randn(b, k, 384,
                            generator=g), torch.randn(b, k, 512, generator=g))
    mu = torch.rand(b, k, 2, generator=g) * torch.tensor([384., 512.])
    bins = (torch.arange(384.), torch.arange(512.))
    target = tuple(
        torch.exp(-(bn - mu[..., a:a + 1])**2 / 32) /
        (4 * math.sqrt(2 * math.pi)) for a, bn in enumerate(bins))
    weights = (torch.rand(b, k, generator=g) > 0.3).float()
    return pred, unpruned, target, weights


def test_global_perceived_loss_equals_eq12():
    pred, unpruned, target, weights = _batch()
    got = gp_loss(pred, target, weights, unpruned)
    torch.testing.assert_close(
        got, eq12(pred, unpruned, target, weights), rtol=1e-5, atol=1e-7)


def test_gp_loss_gradients_reach_both_passes_distillation_only_the_pruned():
    pred, unpruned, target, weights = _batch()
    pred = tuple(p.requires_grad_() for p in pred)
    unpruned = tuple(u.requires_grad_() for u in unpruned)
    gp_loss(pred, target, weights, unpruned).backward()
    assert all(p.grad.abs().sum() > 0 for p in pred + unpruned)
    # the distillation term alone moves the pruned pass only (the unpruned
    # teacher is detached)
    pred = tuple(p.detach().requires_grad_() for p in pred)
    unpruned = tuple(u.detach().requires_grad_() for u in unpruned)
    zero = tuple(torch.zeros_like(t) for t in target)
    gp_loss(pred, zero, weights, unpruned).backward()
    assert all(p.grad.abs().sum() > 0 for p in pred)
    assert all(u.grad is None or u.grad.abs().sum() == 0 for u in unpruned)


def test_model_loss_backpropagates_through_the_pruned_and_the_unpruned_path():
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample

    model = build('gtpt-t_coco').train()
    _, _, target, weights = _batch(b=2)
    samples = []
    for i in range(2):
        s = PoseDataSample()
        s.gt_instance_labels = InstanceData(
            keypoint_x_labels=target[0][i:i + 1],
            keypoint_y_labels=target[1][i:i + 1],
            keypoint_weights=weights[i:i + 1])
        samples.append(s)
    feats = model.extract_feat(torch.randn(2, 3, 256, 192))
    assert len(feats) == 2
    for f in feats:
        f.retain_grad()
    losses = model.head.loss(feats, samples)
    assert {'loss_kpt', 'loss_kpt_unpruned',
            'loss_distill'} <= set(losses)  # each term logged
    sum(v for k, v in losses.items()
        if k.startswith('loss')).backward()  # what MMEngine optimises
    assert feats[0].grad.abs().sum() > 0 and feats[1].grad.abs().sum() > 0


def test_ema_momentum_follows_the_cosine_from_0996_to_1():
    ema = CosineMomentumEMA(
        torch.nn.Linear(2, 2), momentum_start=0.996, total_iters=1000)
    assert math.isclose(ema.decay(0), 0.996)
    assert math.isclose(ema.decay(500), 0.998)
    assert math.isclose(ema.decay(1000), 1.0)
    for it in (0, 123, 777):  # the authors' formula (spec §7.1)
        assert math.isclose(
            ema.decay(it), 1 - 0.002 * (1 + math.cos(math.pi * it / 1000)))


def test_ema_averages_parameters_and_buffers_from_the_first_step():
    torch.manual_seed(0)
    live = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    ema = CosineMomentumEMA(live, momentum_start=0.9, total_iters=10)
    start = {k: v.clone() for k, v in ema.module.state_dict().items()}
    with torch.no_grad():
        for p in live.parameters():
            p.add_(1.0)
    live.train()(torch.randn(8, 3))  # moves BN running statistics
    ema.update_parameters(live)
    m = ema.decay(0)
    for key, value in live.state_dict().items():
        got = ema.module.state_dict()[key]
        if value.dtype.is_floating_point:
            torch.testing.assert_close(got, m * start[key] + (1 - m) * value)
        else:
            assert torch.equal(got, value)


def _stage1_checkpoint(tmp_path, with_ema_swap=True):
    """A checkpoint as GTPTEMAHook writes it: EMA weights in state_dict, live
    ones in ema_state_dict."""
    torch.manual_seed(1)
    body = build('gtpt-t_coco')
    ema_state = {
        k: v + 0.5 if v.dtype.is_floating_point else v
        for k, v in body.state_dict().items()
    }
    ckpt = dict(
        meta=dict(epoch=300),
        state_dict=ema_state,
        ema_state_dict={
            'module.' + k: v
            for k, v in body.state_dict().items()
        })
    path = tmp_path / 'stage1.pth'
    torch.save(ckpt, path)
    return str(path), ema_state


def test_stage2_starts_from_stage1_ema_weights_only_part_and_dense_tokens_new(
        tmp_path):
    path, ema_state = _stage1_checkpoint(tmp_path)
    wholebody = build('gtpt-t_coco-wholebody')
    before = {k: v.clone() for k, v in wholebody.state_dict().items()}
    report = load_stage1(wholebody, path)
    assert sorted(report.new) == sorted(NEW_IN_STAGE2)
    assert report.rows == dict(keypoint_token=(17, 17))
    after = wholebody.state_dict()
    for key, value in ema_state.items():
        assert torch.equal(after[key], value), key
    for key in NEW_IN_STAGE2:
        assert torch.equal(after[key], before[key])


def test_stage1_checkpoint_of_another_variant_is_refused(tmp_path):
    path, _ = _stage1_checkpoint(tmp_path)
    with pytest.raises(
            ValueError,
            match='the checkpoint is GTPT-T, the model GTPT-S: weights carry '
            'over between layouts of one variant only'):
        load_stage1(build('gtpt-s_coco-wholebody'), path)


class _Runner:
    """The few runner attributes CurriculumInitHook reads."""

    def __init__(self, model, cfg, has_loaded=False):
        import logging
        self.model, self.cfg, self._has_loaded = model, cfg, has_loaded
        self.logger = logging.getLogger('test')


def test_stage2_without_stage1_weights_is_refused_unless_from_scratch(
        tmp_path):
    from mmengine.config import ConfigDict
    model = build('gtpt-t_coco-wholebody')
    stage2 = ConfigDict(stage1_work_dir=str(tmp_path / 'no_stage1_run'))
    with pytest.raises(
            RuntimeError, match='stage1_checkpoint=PATH.*from_scratch=True'):
        CurriculumInitHook().before_train(_Runner(model, stage2))
    with pytest.raises(
            RuntimeError, match='stage1_checkpoint=PATH.*from_scratch=True'):
        CurriculumInitHook(
            required=True).before_train(_Runner(model, ConfigDict()))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    CurriculumInitHook().before_train(
        _Runner(model, ConfigDict(stage2, from_scratch=True)))
    # a config that names no stage-1 run (COCO, fine-tuning configs) trains
    # from scratch without one
    CurriculumInitHook().before_train(_Runner(model, ConfigDict()))
    assert all(
        torch.equal(v, before[k]) for k, v in model.state_dict().items())
    path, ema_state = _stage1_checkpoint(tmp_path)
    CurriculumInitHook().before_train(
        _Runner(model, ConfigDict(stage1_checkpoint=path)))
    assert torch.equal(model.state_dict()['backbone.human_token'],
                       ema_state['backbone.human_token'])


class _EMAProbe(Hook):
    """Records the EMA and live weights when training starts and after the
    first iteration (registered last, so after GTPTEMAHook's work)."""

    def __init__(self, ema_hook) -> None:
        self.ema_hook, self.rows = ema_hook, {}

    def _record(self, runner, when: str) -> None:
        self.rows[when] = dict(
            ema={
                k: v.clone()
                for k, v in
                self.ema_hook.ema_model.module.state_dict().items()
            },
            live={
                k: v.clone()
                for k, v in runner.model.state_dict().items()
            })

    def before_train(self, runner) -> None:
        self._record(runner, 'start')

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        if runner.iter == 0:
            self._record(runner, 'first')


def test_the_ema_hook_end_to_end(tmp_path):
    """Stage 2 of the mini config for 2 iterations, the EMA hook with its
    default total_iters: the EMA starts from the stage-1 weights, takes its
    first step with momentum_start, and checkpoints hold the EMA weights."""
    from mini_runner import make_runner

    from gtpt_mmpose.engine import GTPTEMAHook
    path, stage1 = _stage1_checkpoint(tmp_path)
    runner, _ = make_runner(
        tmp_path / 'work',
        'ema',
        config='gtpt-t_coco-wholebody_mini',
        epochs=2,
        options=dict(
            stage1_checkpoint=path,
            custom_hooks=[
                dict(type='GTPTEMAHook', momentum_start=0.9),
                dict(type='CurriculumInitHook', priority='ABOVE_NORMAL')
            ]))
    ema_hook = next(h for h in runner.hooks if isinstance(h, GTPTEMAHook))
    probe = _EMAProbe(ema_hook)
    runner.register_hook(probe, priority='LOWEST')
    runner.train()

    assert ema_hook.ema_model.total_iters == runner.max_iters == 2
    start, first = probe.rows['start'], probe.rows['first']
    for key, value in stage1.items():
        assert torch.equal(start['ema'][key], value), key
    m = ema_hook.ema_model.decay(0)
    assert m == pytest.approx(0.9)
    for key, value in first['ema'].items():
        if value.dtype.is_floating_point:
            torch.testing.assert_close(
                value, m * start['ema'][key] + (1 - m) * first['live'][key])
    saved = torch.load(tmp_path / 'work' / 'epoch_2.pth', weights_only=True)
    live = runner.model.state_dict()
    ema = ema_hook.ema_model.module.state_dict()
    changed = 0
    for key, value in saved['state_dict'].items():
        assert torch.equal(value, ema[key]), key
        assert torch.equal(saved['ema_state_dict']['module.' + key],
                           live[key]), key
        changed += not torch.equal(value, live[key])
    assert changed > 100  # the EMA is not the live model
