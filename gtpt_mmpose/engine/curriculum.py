"""Curriculum (docs/spec.md §8): a run starts from the (EMA) weights of a
GTPT trained on another keypoint layout, e.g. stage 2 (whole body) from
stage 1 (body), or CrowdPose from COCO. What carries over is
:func:`~gtpt_mmpose.models.weight_transfer.transfer_weights`'s to say."""
import glob
import os.path as osp
import re
from typing import Optional, Tuple

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpose.registry import HOOKS

from ..models.weight_transfer import (TransferReport, source_keypoint_names,
                                      transfer_weights)
from ..utils.safe_checkpoint import load_checkpoint_file
from .run_checks import RunSetupError

# what CheckpointHook(save_best='coco/AP') of a stage-1 config names its best
STAGE1_BEST = 'best_coco_AP_epoch_*.pth'


class Stage1NotFoundError(RunSetupError):
    """Stage 2 has neither a stage-1 model nor ``from_scratch=True``."""


def stage1_state_dict(path: str) -> Tuple[dict, Optional[dict]]:
    """Read the weights a stage-1 checkpoint publishes.

    Args:
        path (str): An MMEngine checkpoint (its ``state_dict`` holds the EMA
            weights when trained with ``GTPTEMAHook``) or a converted
            authors' model.

    Returns:
        tuple: Its ``backbone.*`` and ``head.*`` weights, and its ``meta``
        (None without one).
    """
    ckpt = load_checkpoint_file(path)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not any(
            k.startswith('backbone.') for k in state):
        raise ValueError(f'{path} is not a GTPT checkpoint of this package '
                         '(no "backbone.*" weights)')
    return state, ckpt.get('meta')


def load_stage1(model: torch.nn.Module, path: str) -> TransferReport:
    """Start ``model`` from a GTPT checkpoint of any keypoint layout.

    Args:
        model (nn.Module): The ``TopdownPoseEstimator`` to initialise.
        path (str): The stage-1 checkpoint.

    Returns:
        TransferReport: What was transferred, and what keeps its initial
        values.

    Raises:
        ValueError: The file is no GTPT checkpoint, another variant (width,
            stem), or its keypoints are not named.
    """
    state, meta = stage1_state_dict(path)
    rows = state.get('backbone.keypoint_token')
    dense = state.get('backbone.dense_keypoint_token')
    count = (0 if rows is None else rows.shape[1]) + (0 if dense is None else
                                                      dense.shape[1])
    try:
        return transfer_weights(model, state,
                                source_keypoint_names(meta, count))
    except ValueError as exc:
        raise ValueError(f'stage-1 checkpoint {path}: {exc}') from None


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


def stage1_required(cfg: Config, required: Optional[bool] = None) -> bool:
    """Whether a run must start from a stage-1 checkpoint (or say
    ``from_scratch``): ``required`` if given, else whether the config names
    a ``stage1_work_dir``."""
    return bool(cfg.get('stage1_work_dir')) if required is None else required


@HOOKS.register_module()
class CurriculumInitHook(Hook):
    """Initialise a run from a GTPT checkpoint of any keypoint layout before
    the first iteration (fine-tuning; the body -> whole-body curriculum).

    The checkpoint is the config's ``stage1_checkpoint`` if given, else the
    best checkpoint that a stage-1 run saved in the config's
    ``stage1_work_dir`` (the whole-body configs name
    ``work_dirs/gtpt-{t,s,b}_coco``, relative to the current folder as
    MMPose's default work directory is); the log names the file taken and
    what was transferred. A resumed run, or one with ``load_from``, keeps
    the weights it loaded. When a checkpoint is ``required`` (by default:
    when the config names a ``stage1_work_dir``, as the whole-body configs
    do) and there is none, the run is refused unless ``from_scratch`` is
    set: the authors' code silently trains from scratch in that case
    (docs/spec.md §8); otherwise the run trains from scratch.

    Args:
        checkpoint (str, optional): The checkpoint; defaults to the config's
            ``stage1_checkpoint``.
        from_scratch (bool, optional): Train without one; defaults to the
            config's ``from_scratch``.
        required (bool, optional): Refuse to train from scratch unless told
            to; defaults to whether the config names a ``stage1_work_dir``.
    """

    # before GTPTEMAHook copies the model into the EMA
    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 checkpoint: Optional[str] = None,
                 from_scratch: Optional[bool] = None,
                 required: Optional[bool] = None) -> None:
        self.checkpoint = checkpoint
        self.from_scratch = from_scratch
        self.required = required

    def before_train(self, runner) -> None:
        """Load the stage-1 weights, or refuse to start without them."""
        if runner._has_loaded:
            runner.logger.info('CurriculumInitHook: weights were loaded or '
                               'resumed; not loading stage 1')
            return
        if stage1_required(runner.cfg, self.required):
            checkpoint = stage1_checkpoint_for(runner.cfg, self.checkpoint,
                                               self.from_scratch)
        else:
            checkpoint = self.checkpoint or runner.cfg.get('stage1_checkpoint')
        if checkpoint is None:
            runner.logger.info('CurriculumInitHook: training from scratch '
                               '(no stage1_checkpoint)')
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        report = load_stage1(model, checkpoint)
        runner.logger.info(f'CurriculumInitHook: stage-1 weights from '
                           f'{checkpoint}: {report.summary()}')
