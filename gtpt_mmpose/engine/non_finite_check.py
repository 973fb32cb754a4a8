"""Stop training at NaN/Inf data, and at NaN/Inf losses that no loss scaler
absorbs, before anything poisoned is saved; on every rank at once."""
import math
from typing import Callable, Dict, List, Optional, Sequence

import torch
from mmengine.dist import (all_reduce, broadcast_object_list, get_rank,
                           is_distributed)
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpose.registry import HOOKS
from torch import Tensor
from torch.nn.modules.batchnorm import _NormBase


def _first_non_finite(tensors: Sequence) -> Optional[int]:
    """Index of the first floating-point tensor with a NaN or Inf, or None."""
    for i, t in enumerate(tensors):
        if isinstance(t, torch.Tensor) and t.is_floating_point(
        ) and not torch.isfinite(t).all():
            return i
    return None


def _loss_scaler(runner):
    """The optimizer wrapper's enabled ``GradScaler``, or None."""
    scaler = getattr(runner.optim_wrapper, 'loss_scaler', None)
    return scaler if scaler is not None and scaler.is_enabled() else None


def _scale_of(scaler) -> Tensor:
    """The scaler's current scale as a tensor, read without a host sync."""
    scale = getattr(scaler, '_scale', None)
    # None until the first step; get_scale() is then the initial scale
    return torch.tensor(scaler.get_scale()) if scale is None else scale


@HOOKS.register_module()
class NonFiniteCheckHook(Hook):
    """Stop training with one ``FloatingPointError`` naming the iteration and
    the culprit when data or losses are NaN or Inf.

    * An input image or a training target (``TARGETS``) with a NaN or Inf
      always stops the run: no loss scale fixes data. On one process the run
      stops before the step; in distributed training after it (the ranks
      learn of it in the one all-reduce below), before anything sees it.
    * Without a loss scaler (float32 training; bfloat16 autocast on the CPU,
      whose scaler is disabled) the first NaN/Inf loss term stops the run.
    * With an enabled ``GradScaler`` (``AmpOptimWrapper``), a NaN/Inf loss or
      gradient is the scaler's business, as in MMEngine: it skipped the
      optimizer step (the weights are unchanged) and lowered the scale. The
      hook logs the skip with the new scale and stops the run only after
      ``max_consecutive_skips`` skipped steps in a row, or at once when the
      skipped step's forward pass left NaN/Inf in BatchNorm running
      statistics (the live model cannot recover from those).

    Runs first in ``after_train_iter``, so the EMA, the logger and
    ``CheckpointHook`` never see a step that stops the run: the last
    checkpoint on disk is clean; resume from it after fixing the cause.
    OpenMMLab's ``CheckInvalidLossHook`` (MMDetection's) only asserts on the
    summed loss every ``interval`` (50) iterations, after the EMA and the
    checkpoints of the same iteration may have taken NaN weights.

    In distributed training the ranks' verdicts are combined with one
    all-reduce of a few numbers per iteration; a stop on any rank stops
    every rank with that rank's message. Each iteration costs one
    device-to-host read (the combined verdict; MMEngine's ``RuntimeInfoHook``
    has already read every logged loss by then), plus one more after a
    skipped step (the BatchNorm check). Skips are seen as a drop of the
    scale, so with a static ``loss_scale`` only a NaN/Inf loss counts as
    one.

    Args:
        max_consecutive_skips (int): Skipped steps in a row that stop a run
            under a loss scaler. Each skip halves the scale: 16 in a row take
            PyTorch's initial scale of 2**16 to 1, where DeepSpeed's float16
            training gives up (its default ``min_loss_scale``), while dynamic
            scaling's own probes skip one step at a time. Defaults to 16.
    """

    priority = 'VERY_HIGH'
    TARGETS = ('keypoint_x_labels', 'keypoint_y_labels', 'keypoint_weights')

    def __init__(self, max_consecutive_skips: int = 16) -> None:
        if max_consecutive_skips < 1:
            raise ValueError('max_consecutive_skips must be at least 1, got '
                             f'{max_consecutive_skips}')
        self.max_consecutive_skips = max_consecutive_skips
        self._data_problem: Optional[str] = None
        self._scale_before: Optional[Tensor] = None
        self._skipped: List[int] = []  # iterations of the current streak

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        self._data_problem = self._bad_data(runner, data_batch)
        if self._data_problem and not is_distributed():
            raise FloatingPointError(
                f'{self._data_problem}; training stopped before this step, '
                'no checkpoint written')
        scaler = _loss_scaler(runner)
        self._scale_before = None if scaler is None else _scale_of(
            scaler).clone()

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        outputs = {k: v for k, v in (outputs or {}).items() if 'loss' in k}
        device = next(
            (v.device for v in outputs.values() if isinstance(v, Tensor)),
            torch.device('cpu'))
        losses = {
            k: torch.as_tensor(v, device=device).detach().float().sum()
            for k, v in outputs.items()
        }
        scaler = _loss_scaler(runner)
        values = torch.stack(list(losses.values())) if losses else torch.zeros(
            0, device=device)
        bad = (~torch.isfinite(values)).float()
        if scaler is None:
            new_scale = torch.zeros(1, device=device)
            skipped = torch.zeros(1, device=device)
            stops = bad.sum().reshape(1) > 0  # a NaN/Inf loss stops the run
        else:
            new_scale = _scale_of(scaler).float().reshape(1).to(device)
            skipped = (new_scale < self._scale_before.to(device)).float()
            stops = torch.zeros(1, dtype=torch.bool, device=device)
        stops |= self._data_problem is not None
        # which rank stops (rank + 1, the highest wins; 0: none)
        rank_code = stops.float() * (get_rank() + 1)
        shared = torch.cat([bad, skipped, new_scale, rank_code])
        all_reduce(shared, op='max')  # nothing on one process
        numbers = torch.cat([values, shared]).tolist()  # the one host sync
        k = len(losses)
        local = dict(zip(losses, numbers[:k]))
        bad_terms = [name for name, b in zip(losses, numbers[k:2 * k]) if b]
        was_skipped, scale, stopping_rank = numbers[2 * k:]
        if stopping_rank:
            self._stop(
                int(stopping_rank) - 1,
                lambda: self._stop_message(runner, local))
        if scaler is None:
            return
        if not was_skipped and not bad_terms:
            self._skipped.clear()
            return
        self._after_skip(runner, bad_terms, scale)

    def _after_skip(self, runner, bad_terms: List[str], scale: float) -> None:
        """Log a step the loss scaler skipped; stop the run when it cannot
        recover."""
        where = self._where(runner)
        self._skipped.append(runner.iter + 1)
        self._check_statistics(runner)
        streak = len(self._skipped)
        terms = [k for k in bad_terms if k != 'loss'] or bad_terms
        cause = (f'loss term {", ".join(terms)} is NaN/Inf'
                 if terms else 'the gradients are NaN/Inf')
        log = runner.logger.warning if bad_terms else runner.logger.info
        log(f'{where}: {cause}; the loss scaler skipped the optimizer step '
            f'and lowered the scale to {scale:g} ({streak} skipped in a row; '
            f'{self.max_consecutive_skips} stop the run)')
        if streak >= self.max_consecutive_skips:
            raise FloatingPointError(
                f'iterations {self._skipped[0]}-{self._skipped[-1]} (epoch '
                f'{runner.epoch + 1}): {streak} optimizer steps in a row '
                'skipped by the loss scaler for NaN/Inf losses or gradients '
                f'(scale now {scale:g}; NonFiniteCheckHook '
                f'max_consecutive_skips={self.max_consecutive_skips}); '
                'training stopped. Skipped steps leave the weights '
                'unchanged: resume from the last checkpoint with a lower '
                'learning rate, or train in float32 or bfloat16')

    def _check_statistics(self, runner) -> None:
        """Stop every rank when a rank's BatchNorm running statistics are
        NaN/Inf."""
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        stats = {
            f'{name}.{kind}': getattr(module, kind)
            for name, module in model.named_modules()
            if isinstance(module, _NormBase) and module.track_running_stats
            for kind in ('running_mean', 'running_var')
            if getattr(module, kind, None) is not None
        }
        finite = torch.isfinite(
            torch.stack([t.float().sum()
                         for t in stats.values()])).tolist() if stats else []
        name = next((n for n, ok in zip(stats, finite) if not ok), None)
        code = torch.tensor([0.0 if name is None else get_rank() + 1.0])
        all_reduce(code, op='max')  # nothing on one process
        if code.item():
            self._stop(
                int(code.item()) - 1, lambda:
                (f'{self._where(runner)}: the loss scaler skipped this step, '
                 f'but its forward pass left NaN/Inf in {name}'
                 f'{self._on_rank()}; training stopped before the EMA and '
                 'checkpoints take it'))

    @staticmethod
    def _stop(rank: int, message: Callable[[], str]) -> None:
        """Raise, on every rank, the message that ``rank`` makes."""
        text = [message() if get_rank() == rank else None]
        broadcast_object_list(text, src=rank)  # nothing on one process
        raise FloatingPointError(text[0])

    def _bad_data(self, runner, data_batch: Optional[dict]) -> Optional[str]:
        """What is NaN/Inf in the batch's images or targets, or None."""
        if not data_batch:
            return None
        samples = data_batch.get('data_samples') or []
        inputs = data_batch.get('inputs')
        inputs = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs
                                                                        or [])
        bad = _first_non_finite(inputs)
        if bad is not None:
            return (f'{self._where(runner)}: input image '
                    f'{self._name(samples, bad)} has NaN/Inf pixel values'
                    f'{self._on_rank()}')
        for field in self.TARGETS:
            values = [
                getattr(s.gt_instance_labels, field, None)
                if 'gt_instance_labels' in s else None for s in samples
            ]
            bad = _first_non_finite(values)
            if bad is not None:
                return (f'{self._where(runner)}: training target {field} of '
                        f'{self._name(samples, bad)} has NaN/Inf values'
                        f'{self._on_rank()}')
        return None

    def _stop_message(self, runner, values: Dict[str, float]) -> str:
        """Why this rank stops: its data, or (without a loss scaler) its
        NaN/Inf loss terms."""
        if self._data_problem:
            return (f'{self._data_problem}; training stopped on every rank, '
                    'no checkpoint written for this iteration')
        bad = [k for k, v in values.items() if not math.isfinite(v)]
        terms = [k for k in bad if k != 'loss'
                 ] or bad  # name the term, not only their sum
        shown = ', '.join(f'{k}={v:.4g}' for k, v in values.items())
        everywhere = ' on every rank' if is_distributed() else ''
        return (f'{self._where(runner)}: loss term {", ".join(terms)} is '
                f'NaN/Inf{self._on_rank()} ({shown}); training stopped'
                f'{everywhere}, no checkpoint written for this iteration')

    @staticmethod
    def _on_rank() -> str:
        return f' on rank {get_rank()}' if is_distributed() else ''

    @staticmethod
    def _where(runner) -> str:
        return f'iteration {runner.iter + 1} (epoch {runner.epoch + 1})'

    @staticmethod
    def _name(samples: Sequence, index: int) -> str:
        path = samples[index].metainfo.get('img_path') if index < len(
            samples) else None
        where = f'#{index} of the batch'
        return f'{where} ({path})' if path else where
