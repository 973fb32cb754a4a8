"""The authors' EMA (spec §7.1) on MMEngine's EMA machinery.

``ema <- m * ema + (1 - m) * live`` after every optimiser step, for every
floating-point state entry (parameters and buffers such as BN statistics), with
m rising on a cosine from ``momentum_start`` (0.996) to 1 over the whole
schedule. The EMA starts as a copy of the model when training starts (after
initialisation or stage-1 loading), not of the weights after the first step as
MMEngine's averaged models do.
"""
import math
from typing import Optional

import torch
import torch.nn as nn
from mmengine.dist import all_reduce_params
from mmengine.hooks import EMAHook
from mmengine.model import BaseAveragedModel
from mmengine.registry import MODELS
from mmpose.registry import HOOKS


@MODELS.register_module()
class CosineMomentumEMA(BaseAveragedModel):
    """Averaged model with the authors' cosine momentum.

    Args:
        model (nn.Module): The model to average.
        momentum_start (float): EMA decay m at iteration 0; it rises to 1 at
            ``total_iters``.
        total_iters (int, optional): Length of the schedule; ``GTPTEMAHook``
            sets it to the runner's ``max_iters``.
        interval (int): Update every ``interval`` steps.
        device (torch.device, optional): Where the averaged copy lives.

    Buffers (BatchNorm statistics) are averaged like the weights, as the
    authors do (spec §7.1); integer counters follow the live model.
    """

    def __init__(self,
                 model: nn.Module,
                 momentum_start: float = 0.996,
                 total_iters: Optional[int] = None,
                 interval: int = 1,
                 device: Optional[torch.device] = None) -> None:
        super().__init__(model, interval, device, update_buffers=True)
        if not 0.0 < momentum_start <= 1.0:
            raise ValueError(
                f'momentum_start must be in (0, 1], got {momentum_start}')
        self.momentum_start = momentum_start
        self.total_iters = total_iters

    def decay(self, step: int) -> float:
        """m = 1 - (1 - m0) / 2 * (1 + cos(pi * step / total)): m0 at step 0, 1
        at the end."""
        if not self.total_iters:
            raise RuntimeError('CosineMomentumEMA.total_iters is not set')
        return 1.0 - (1.0 - self.momentum_start) / 2 * (
            1.0 + math.cos(math.pi * step / self.total_iters))

    def avg_func(self, averaged_param: torch.Tensor,
                 source_param: torch.Tensor, steps: int) -> None:
        averaged_param.lerp_(source_param, 1.0 - self.decay(steps))

    @torch.no_grad()
    def update_parameters(self, model: nn.Module) -> None:
        """Average every step from the first (MMEngine copies the source at
        step 0 instead)."""
        source = model.state_dict()
        if self.steps % self.interval == 0:
            for key, avg in self.avg_parameters.items():
                src = source[key].data.to(avg.device)
                if avg.dtype.is_floating_point:
                    self.avg_func(avg.data, src, int(self.steps))
                # counters such as num_batches_tracked follow the live model
                else:
                    avg.data.copy_(src)
        self.steps += 1

    @torch.no_grad()
    def sync_from(self, model: nn.Module) -> None:
        """Restart the average from ``model``'s current weights."""
        self.module.load_state_dict(model.state_dict())
        self.steps.zero_()


@HOOKS.register_module()
class GTPTEMAHook(EMAHook):
    """``EMAHook`` with ``CosineMomentumEMA`` over the whole schedule.

    Validation, testing and saved checkpoints use the EMA weights (MMEngine's
    ``EMAHook`` swaps them in). Resuming restores the EMA state saved in the
    checkpoint.

    In distributed training every rank averages its own BatchNorm statistics
    into its EMA, so the EMA's buffers are averaged over the ranks when
    MMEngine's ``SyncBuffersHook`` averages the live model's: at the end of
    each training epoch (and before a validation that did not follow one),
    before validation and checkpoints use them. The EMA being linear, the
    result is the EMA of the rank-averaged statistics.

    Args:
        momentum_start (float): Initial EMA decay (0.996).
        total_iters (int, optional): Schedule length; defaults to the runner's
        ``max_iters``. **kwargs: Passed to ``EMAHook``.
    """

    def __init__(self,
                 momentum_start: float = 0.996,
                 total_iters: Optional[int] = None,
                 **kwargs) -> None:
        super().__init__(
            ema_type='CosineMomentumEMA',
            momentum_start=momentum_start,
            total_iters=total_iters,
            **kwargs)
        self._ema_resumed = False
        self._synced_in_train = False

    def before_run(self, runner) -> None:
        super().before_run(runner)
        if self.ema_model.total_iters is None:
            self.ema_model.total_iters = runner.max_iters

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        super().after_load_checkpoint(runner, checkpoint)
        self._ema_resumed = bool(runner._resume
                                 and 'ema_state_dict' in checkpoint)

    def before_train(self, runner) -> None:
        super().before_train(runner)
        # the EMA starts from the initialised (or stage-1) model
        if not self._ema_resumed:
            self.ema_model.sync_from(self.src_model)

    def after_train_epoch(self, runner) -> None:
        """Average the EMA's buffers over the ranks."""
        self._sync_buffers()
        self._synced_in_train = True

    def before_val_epoch(self, runner) -> None:
        """Average the EMA's buffers over the ranks unless the training epoch
        just did, then swap the EMA weights in."""
        if not self._synced_in_train:
            self._sync_buffers()
        self._synced_in_train = False
        super().before_val_epoch(runner)

    def _sync_buffers(self) -> None:
        """All-reduce (mean) the EMA model's buffers; nothing on one
        process."""
        all_reduce_params(self.ema_model.module.buffers(), op='mean')
