"""Body -> whole-body curriculum (docs/spec.md §8): stage 2 starts from stage
1's EMA weights."""
import glob
import os.path as osp
import re
from typing import List, Optional

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpose.registry import HOOKS

from ..utils.safe_checkpoint import load_checkpoint_file
from .run_checks import RunSetupError

# the only weights a whole-body GTPT has that a body GTPT lacks
NEW_IN_STAGE2 = ('backbone.part_token', 'backbone.dense_keypoint_token')
# what CheckpointHook(save_best='coco/AP') of a stage-1 config names its best
STAGE1_BEST = 'best_coco_AP_epoch_*.pth'


class Stage1NotFoundError(RunSetupError):
    """Stage 2 has neither a stage-1 model nor ``from_scratch=True``."""


def stage1_state_dict(path: str) -> dict:
    """Read the weights a stage-1 checkpoint publishes.

    Args:
        path (str): An MMEngine checkpoint (its ``state_dict`` holds the EMA
            weights when trained with ``GTPTEMAHook``) or a converted
            authors' model.

    Returns:
        dict: Its ``backbone.*`` and ``head.*`` weights.
    """
    ckpt = load_checkpoint_file(path)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not any(
            k.startswith('backbone.') for k in state):
        raise ValueError(f'{path} is not a GTPT checkpoint of this package '
                         '(no "backbone.*" weights)')
    return state


def load_stage1(model: torch.nn.Module, path: str) -> List[str]:
    """Load every stage-1 weight into a whole-body ``model``.

    The checkpoint is checked before anything is loaded: each of its weights
    must exist in ``model`` with the same shape, and the weights it lacks must
    be exactly the part and dense keypoint tokens, which keep their initial
    values.

    Args:
        model (nn.Module): The whole-body ``TopdownPoseEstimator``.
        path (str): The stage-1 checkpoint.

    Returns:
        List[str]: The names left at their initial values.
    """
    state = stage1_state_dict(path)
    own = model.state_dict()
    for key, value in state.items():
        if key not in own:
            raise ValueError(f'stage-1 checkpoint {path} does not fit: {key} '
                             'is not in the whole-body model')
        if own[key].shape != value.shape:
            raise ValueError(
                f'stage-1 checkpoint {path} does not fit: {key} has shape '
                f'{tuple(value.shape)}, the whole-body model expects '
                f'{tuple(own[key].shape)}')
    new = [k for k in own if k not in state]
    if sorted(new) != sorted(NEW_IN_STAGE2):
        raise ValueError(f'stage-1 checkpoint {path} lacks '
                         f'{sorted(set(new) - set(NEW_IN_STAGE2))}; '
                         'is it a GTPT body model of the same variant?')
    missing, _ = model.load_state_dict(state, strict=False)
    return list(missing)


def find_stage1_checkpoint(work_dir: str) -> Optional[str]:
    """The best checkpoint a stage-1 run saved in ``work_dir``.

    Args:
        work_dir (str): The stage-1 run's work directory.

    Returns:
        str, optional: The ``best_coco_AP_epoch_N.pth`` of the highest N.
    """

    def epoch(path: str) -> int:
        return int(re.findall(r'\d+', osp.basename(path))[-1])

    found = glob.glob(osp.join(work_dir, STAGE1_BEST))
    return max(found, key=epoch) if found else None


def stage1_checkpoint_for(cfg: Config,
                          checkpoint: Optional[str] = None,
                          from_scratch: Optional[bool] = None
                          ) -> Optional[str]:
    """The stage-1 checkpoint a stage-2 run starts from.

    Args:
        cfg (Config): The stage-2 config; reads ``stage1_checkpoint``,
            ``from_scratch`` and ``stage1_work_dir``.
        checkpoint (str, optional): Overrides ``cfg.stage1_checkpoint``.
        from_scratch (bool, optional): Overrides ``cfg.from_scratch``.

    Returns:
        str, optional: The given checkpoint, else the best one of the stage-1
        run in ``stage1_work_dir``; None with ``from_scratch``.

    Raises:
        Stage1NotFoundError: None of these; the message gives the command
            that trains stage 1.
    """
    checkpoint = checkpoint or cfg.get('stage1_checkpoint')
    if from_scratch is None:
        from_scratch = cfg.get('from_scratch', False)
    if checkpoint is not None or from_scratch:
        return checkpoint
    work_dir = cfg.get('stage1_work_dir')
    found = find_stage1_checkpoint(work_dir) if work_dir else None
    if found is None:
        where = (f'there is no {STAGE1_BEST} in {work_dir}/'
                 if work_dir else 'the config names no stage1_work_dir')
        command = (f'mim train gtpt_mmpose configs/{osp.basename(work_dir)}.py'
                   if work_dir else 'the body config of the same variant')
        raise Stage1NotFoundError(
            f'stage 2 (whole body) starts from a stage-1 body model, and '
            f'{where}: run `{command}` first (from this folder), or pass '
            '--cfg-options stage1_checkpoint=PATH, or from_scratch=True to '
            'train without it')
    return found


@HOOKS.register_module()
class CurriculumInitHook(Hook):
    """Initialise a whole-body run from a stage-1 body checkpoint before the
    first iteration.

    The checkpoint is the config's ``stage1_checkpoint`` if given, else the
    best checkpoint that stage 1's own default run saved in
    ``stage1_work_dir`` (``work_dirs/gtpt-{t,s,b}_coco``, relative to the
    current folder as MMPose's default work directory is); the log names the
    file taken. A resumed run, or one with ``load_from``, keeps the weights it
    loaded. Without any of these, stage 2 is refused unless ``from_scratch``
    is set: the authors' code silently trains from scratch in that case
    (docs/spec.md §8).

    Args:
        checkpoint (str, optional): Stage-1 checkpoint; defaults to the
            config's ``stage1_checkpoint``.
        from_scratch (bool, optional): Train stage 2 without stage-1 weights;
            defaults to the config's ``from_scratch``.
    """

    # before GTPTEMAHook copies the model into the EMA
    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 checkpoint: Optional[str] = None,
                 from_scratch: Optional[bool] = None) -> None:
        self.checkpoint = checkpoint
        self.from_scratch = from_scratch

    def before_train(self, runner) -> None:
        """Load the stage-1 weights, or refuse to start without them."""
        if runner._has_loaded:
            runner.logger.info('CurriculumInitHook: weights were loaded or '
                               'resumed; not loading stage 1')
            return
        checkpoint = stage1_checkpoint_for(runner.cfg, self.checkpoint,
                                           self.from_scratch)
        if checkpoint is None:
            runner.logger.warning('CurriculumInitHook: training stage 2 from '
                                  'scratch (from_scratch=True)')
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        new = load_stage1(model, checkpoint)
        runner.logger.info(
            f'CurriculumInitHook: stage-1 weights from {checkpoint}; newly '
            f'initialised: {new}')
