"""Run MMPose's own ``tools/train.py`` / ``tools/test.py`` with this package
loaded."""
import os.path as osp
import runpy
import sys
from typing import List


def mmpose_tool(name: str) -> str:
    import mmpose
    path = osp.join(osp.dirname(mmpose.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'MMPose\'s {name} is not installed at {path}')
    return path


def _launcher(argv: List[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == '--launcher' and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith('--launcher='):
            return arg.split('=', 1)[1]
    return 'none'


def cpu_distributed_args(argv: List[str]) -> List[str]:
    """For a distributed launch without CUDA: start the gloo process group here
    and return the extra config options that keep DDP off ``device_ids``
    (environment.md, item 2)."""
    import torch
    import torch.distributed as dist

    if _launcher(argv) == 'none' or torch.cuda.is_available(
    ) or dist.is_initialized():
        return []
    if _launcher(argv) != 'pytorch':
        raise SystemExit(
            f'--launcher {_launcher(argv)} is not supported on a machine '
            'without CUDA; '
            'use --launcher pytorch (torchrun)')
    dist.init_process_group(backend='gloo')
    return [
        '--cfg-options', 'model_wrapper_cfg.type=MMDistributedDataParallel',
        'model_wrapper_cfg.device_ids=None', 'env_cfg.dist_cfg.backend=gloo'
    ]


def run_mmpose_tool(name: str, argv: List[str]) -> int:
    import gtpt_mmpose  # noqa: F401  (registries, safe checkpoint loading)

    extra = cpu_distributed_args(argv) if name == 'train.py' else []
    sys.argv = [mmpose_tool(name)] + list(argv) + extra
    runpy.run_path(sys.argv[0], run_name='__main__')
    return 0
