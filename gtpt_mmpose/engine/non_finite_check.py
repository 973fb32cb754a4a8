"""Stop training at the first NaN/Inf input or loss, before anything poisoned
is saved."""
from typing import Optional, Sequence

import torch
from mmengine.hooks import Hook
from mmpose.registry import HOOKS


def _first_non_finite(tensors: Sequence) -> Optional[int]:
    """Index of the first floating-point tensor with a NaN or Inf, or None."""
    for i, t in enumerate(tensors):
        if isinstance(t, torch.Tensor) and t.is_floating_point(
        ) and not torch.isfinite(t).all():
            return i
    return None


@HOOKS.register_module()
class NonFiniteCheckHook(Hook):
    """Raise ``FloatingPointError`` naming the iteration and the culprit when
    an input image, a training target or a loss term is NaN or Inf.

    Runs first in ``after_train_iter``, so the EMA, the logger and
    ``CheckpointHook`` never see the step: the run stops without writing a
    checkpoint (the last one on disk is still clean; resume from it after
    fixing the cause). OpenMMLab's ``CheckInvalidLossHook`` (MMDetection's)
    only asserts on the summed loss every ``interval`` (50) iterations, after
    the EMA and the checkpoints of the same iteration may have taken NaN
    weights (``tests/test_training_safety.py`` shows it).
    """

    priority = 'VERY_HIGH'
    TARGETS = ('keypoint_x_labels', 'keypoint_y_labels', 'keypoint_weights')

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch: Optional[dict] = None) -> None:
        if not data_batch:
            return
        samples = data_batch.get('data_samples') or []
        inputs = data_batch.get('inputs')
        inputs = [inputs] if isinstance(inputs, torch.Tensor) else list(inputs
                                                                        or [])
        bad = _first_non_finite(inputs)
        if bad is not None:
            raise FloatingPointError(
                f'{self._where(runner)}: input image '
                f'{self._name(samples, bad)} has NaN/Inf '
                'pixel values; training stopped before this step, no '
                'checkpoint written')
        for field in self.TARGETS:
            values = [
                getattr(s.gt_instance_labels, field, None)
                if 'gt_instance_labels' in s else None for s in samples
            ]
            bad = _first_non_finite(values)
            if bad is not None:
                raise FloatingPointError(
                    f'{self._where(runner)}: training target {field} of '
                    f'{self._name(samples, bad)} '
                    'has NaN/Inf values; training stopped before this step, '
                    'no checkpoint written')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        values = {
            k: torch.as_tensor(v)
            for k, v in (outputs or {}).items() if 'loss' in k
        }
        bad = [k for k, v in values.items() if not torch.isfinite(v).all()]
        if not bad:
            return
        terms = [k for k in bad if k != 'loss'
                 ] or bad  # name the term, not only their sum
        shown = ', '.join(f'{k}={values[k].float().mean().item():.4g}'
                          for k in values)
        raise FloatingPointError(
            f'{self._where(runner)}: loss term {", ".join(terms)} is NaN/Inf '
            f'({shown}); '
            'training stopped, no checkpoint written for this iteration')

    @staticmethod
    def _where(runner) -> str:
        return f'iteration {runner.iter + 1} (epoch {runner.epoch + 1})'

    @staticmethod
    def _name(samples: Sequence, index: int) -> str:
        path = samples[index].metainfo.get('img_path') if index < len(
            samples) else None
        where = f'#{index} of the batch'
        return f'{where} ({path})' if path else where
