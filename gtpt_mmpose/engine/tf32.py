"""TensorFloat-32 for float32 matrix products and convolutions on NVIDIA
GPUs, set from the config's ``env_cfg`` as MMEngine sets
``env_cfg.cudnn_benchmark``."""
from typing import Optional, Tuple

import torch
from mmengine.hooks import Hook
from mmpose.registry import HOOKS


def tf32_flags() -> Tuple[bool, bool]:
    """Whether cuBLAS matrix products and cuDNN convolutions of float32
    tensors may use TF32.

    Returns:
        tuple: ``(matmul, conv)``, PyTorch's ``allow_tf32`` flags.
    """
    return (torch.backends.cuda.matmul.allow_tf32,
            torch.backends.cudnn.allow_tf32)


def set_tf32_flags(matmul: bool, conv: bool) -> None:
    """Set PyTorch's ``allow_tf32`` flags for cuBLAS and cuDNN.

    They act on CUDA kernels only; the CPU computes float32 as before.

    Args:
        matmul (bool): ``torch.backends.cuda.matmul.allow_tf32``.
        conv (bool): ``torch.backends.cudnn.allow_tf32``.
    """
    torch.backends.cuda.matmul.allow_tf32 = matmul
    torch.backends.cudnn.allow_tf32 = conv


@HOOKS.register_module()
class TF32Hook(Hook):
    """Apply ``env_cfg.allow_tf32`` for the run.

    ``True`` lets float32 matrix products (cuBLAS) and convolutions (cuDNN)
    run in TensorFloat-32 on Ampere and newer GPUs: several times the
    float32 throughput, with about 1e-3 relative error per product, as
    PyTorch already allows for convolutions but not for matrix products.
    ``False`` keeps both in full float32, as an exact parity check on a GPU
    needs. Without the key PyTorch's settings stay. The settings before the
    run come back after it; on the CPU nothing changes.

    Uses PyTorch's ``allow_tf32`` flags: ``torch.set_float32_matmul_precision``
    would also set oneDNN's CPU matrix products, and PyTorch refuses to read
    the flags back once its newer ``fp32_precision`` settings are mixed with
    them.
    """

    priority = 'VERY_HIGH'

    def __init__(self) -> None:
        self._previous: Optional[Tuple[bool, bool]] = None

    def before_run(self, runner) -> None:
        allow = (runner.cfg.get('env_cfg') or {}).get('allow_tf32')
        if allow is None:
            return
        self._previous = tf32_flags()
        set_tf32_flags(bool(allow), bool(allow))
        runner.logger.info(
            f'env_cfg.allow_tf32={bool(allow)}: TF32 float32 matrix products '
            f'and convolutions on CUDA {"on" if allow else "off"}')

    def after_run(self, runner) -> None:
        if self._previous is not None:
            set_tf32_flags(*self._previous)
            self._previous = None
