"""MMEngine's mixed-precision optimizer wrapper on the device its parameters
are on, the CPU included."""
from contextlib import contextmanager
from typing import Iterator, Optional, Union

import torch
import torch.nn as nn
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmpose.registry import OPTIM_WRAPPERS
from torch.optim import Optimizer


@OPTIM_WRAPPERS.register_module()
class DeviceAmpOptimWrapper(AmpOptimWrapper):
    """``AmpOptimWrapper`` whose loss scaler and autocast follow the
    parameters' device.

    MMEngine 0.10.7's ``AmpOptimWrapper`` asserts a GPU, builds
    ``torch.cuda.amp.GradScaler`` (which disables itself, with a warning,
    where CUDA is absent) and its ``autocast`` refuses float16 on the CPU.
    This wrapper builds ``torch.amp.GradScaler(device)`` and
    ``torch.autocast(device, dtype)`` for the device of the optimizer's
    parameters (PyTorch >= 2.3 has both for the CPU); scaling the loss,
    skipping steps with NaN/Inf gradients, updating the scale and the state
    dicts are ``AmpOptimWrapper``'s. On CUDA it trains as
    ``AmpOptimWrapper``. MMPose's ``--amp`` selects ``AmpOptimWrapper``; for
    float16 with a working scaler on the CPU use
    ``--cfg-options optim_wrapper.type=DeviceAmpOptimWrapper
    optim_wrapper.dtype=float16``.

    Args:
        optimizer (Optimizer): The optimizer.
        loss_scale (float | str | dict): As for ``AmpOptimWrapper``:
            ``'dynamic'`` (PyTorch's defaults), a static scale, or the
            ``GradScaler`` arguments.
        dtype (str | torch.dtype, optional): The autocast type
            (``'float16'``, ``'bfloat16'``); None for the device's default
            (float16 on CUDA, bfloat16 on the CPU).
        **kwargs: ``OptimWrapper``'s arguments (``accumulative_counts``,
            ``clip_grad``).
    """

    def __init__(self,
                 optimizer: Optimizer,
                 loss_scale: Union[str, float, dict] = 'dynamic',
                 dtype: Optional[Union[str, torch.dtype]] = None,
                 **kwargs) -> None:
        # AmpOptimWrapper.__init__ asserts a GPU: its set-up is done here
        OptimWrapper.__init__(self, optimizer=optimizer, **kwargs)
        params = [p for g in optimizer.param_groups for p in g['params']]
        self.device_type = params[0].device.type if params else 'cpu'
        self._scale_update_param = None
        if loss_scale == 'dynamic':
            scaler_args = {}
        elif isinstance(loss_scale, float):
            self._scale_update_param = loss_scale
            scaler_args = dict(init_scale=loss_scale)
        elif isinstance(loss_scale, dict):
            scaler_args = dict(loss_scale)
        else:
            raise TypeError('loss_scale must be a float, a dict or '
                            f'"dynamic", not {loss_scale!r}')
        self.loss_scaler = torch.amp.GradScaler(self.device_type,
                                                **scaler_args)
        if isinstance(dtype, str):
            if dtype not in self.valid_dtypes:
                raise ValueError(
                    f'dtype must be one of {self.valid_dtypes}, not {dtype}')
            dtype = getattr(torch, dtype)
        self.cast_dtype = dtype

    @contextmanager
    def optim_context(self, model: nn.Module) -> Iterator[None]:
        """``OptimWrapper``'s context (gradient accumulation) under
        ``torch.autocast`` on the parameters' device."""
        with OptimWrapper.optim_context(self, model), torch.autocast(
                self.device_type, dtype=self.cast_dtype):
            yield
