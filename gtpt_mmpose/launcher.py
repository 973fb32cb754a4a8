"""Run MMPose's own ``tools/train.py`` / ``tools/test.py`` with this package
loaded, after the checks of :mod:`gtpt_mmpose.engine.run_checks`."""
import argparse
import os.path as osp
import runpy
import sys
from typing import List

from mmengine.config import Config, DictAction

from .engine.run_checks import RunSetupError, check_data_paths


def mmpose_tool(name: str) -> str:
    """Path of MMPose's installed ``tools/<name>``."""
    import mmpose
    path = osp.join(osp.dirname(mmpose.__file__), '.mim', 'tools', name)
    if not osp.isfile(path):
        raise FileNotFoundError(f'MMPose\'s {name} is not installed at {path}')
    return path


def preflight(name: str, argv: List[str]) -> None:
    """Check data and, for stage 2, the stage-1 model before a run starts.

    Args:
        name (str): ``'train.py'`` or ``'test.py'``.
        argv (List[str]): The tool's arguments (as MMPose's tool reads them).

    Raises:
        RunSetupError: The run cannot start; the message says why.
    """
    from .engine.curriculum import stage1_checkpoint_for, stage1_required
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('config', nargs='?')
    parser.add_argument('--resume', nargs='?', const='auto')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction)
    args, _ = parser.parse_known_args(argv)
    if not args.config or not osp.isfile(args.config):
        return  # --help, or MMPose's tool says what is missing
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if name == 'test.py':
        check_data_paths(cfg, ['test'])
        return
    validates = cfg.get('val_cfg') is not None  # {} is MMPose's default
    check_data_paths(cfg, ['train', 'val'] if validates else ['train'])
    required = [
        h for h in cfg.get('custom_hooks') or []
        if h.get('type') == 'CurriculumInitHook'
        and stage1_required(cfg, h.get('required'))
    ]
    if required and not args.resume and not cfg.get('load_from'):
        stage1_checkpoint_for(cfg)


def run_mmpose_tool(name: str, argv: List[str]) -> int:
    """Run MMPose's ``tools/<name>`` as ``__main__`` with ``argv``.

    A :class:`RunSetupError`, from the checks here or from a hook during the
    run, ends the process with its one-line message instead of a traceback.

    Args:
        name (str): ``'train.py'`` or ``'test.py'``.
        argv (List[str]): Its arguments.

    Returns:
        int: 0 when the tool returns.
    """
    import gtpt_mmpose  # noqa: F401 (registries, compat fixes)
    from .compat import start_cpu_process_group

    try:
        preflight(name, argv)
        extra = start_cpu_process_group(argv) if name == 'train.py' else []
        sys.argv = [mmpose_tool(name)] + list(argv) + extra
        runpy.run_path(sys.argv[0], run_name='__main__')
    except RunSetupError as exc:
        raise SystemExit(f'gtpt_mmpose: {exc}') from None
    return 0
