"""Body -> whole-body curriculum (spec §8): stage 2 starts from stage 1's EMA
weights."""
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpose.registry import HOOKS

from ..utils.safe_checkpoint import load_checkpoint_file

# the only weights a whole-body GTPT has that a body GTPT lacks
NEW_IN_STAGE2 = ('backbone.part_token', 'backbone.dense_keypoint_token')


def stage1_state_dict(path: str) -> dict:
    """The weights a stage-1 checkpoint publishes: ``state_dict`` of an
    MMEngine checkpoint (the EMA weights when it was trained with
    ``GTPTEMAHook``), or a converted authors' model."""
    ckpt = load_checkpoint_file(path)
    state = ckpt.get('state_dict', ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not any(
            k.startswith('backbone.') for k in state):
        raise ValueError(
            f'{path} is not a GTPT checkpoint of this package (no '
            '"backbone.*" weights)')
    return state


def load_stage1(model: torch.nn.Module, path: str) -> list:
    """Copy every stage-1 weight into ``model``; return the names left at their
    initial values, which must be exactly the part and dense keypoint tokens.
    """
    state = stage1_state_dict(path)
    own = model.state_dict()
    for key, value in state.items():
        if key not in own:
            raise ValueError(
                f'stage-1 checkpoint {path} does not fit: {key} is not in the '
                'whole-body model')
        if own[key].shape != value.shape:
            raise ValueError(
                f'stage-1 checkpoint {path} does not fit: {key} has shape '
                f'{tuple(value.shape)}, '
                f'the whole-body model expects {tuple(own[key].shape)}')
    new = [k for k in own if k not in state]
    if sorted(new) != sorted(NEW_IN_STAGE2):
        raise ValueError(f'stage-1 checkpoint {path} lacks '
                         f'{sorted(set(new) - set(NEW_IN_STAGE2))}; '
                         'is it a GTPT body model of the same variant?')
    own.update(state)  # the new tokens keep their initial values
    model.load_state_dict(own)
    return new


@HOOKS.register_module()
class CurriculumInitHook(Hook):
    """Initialise a whole-body run from a stage-1 body checkpoint before the
    first iteration.

    Args:
        checkpoint (str, optional): Stage-1 checkpoint; defaults to the
            config's ``stage1_checkpoint``.
        from_scratch (bool, optional): Train stage 2 without stage-1 weights;
            defaults to the config's ``from_scratch``.

    A resumed run, or one with ``load_from``, keeps the weights it loaded.
    Otherwise stage 2 without stage-1 weights is refused unless
    ``from_scratch`` is set: the authors' code silently trains from scratch in
    that case (spec §8).
    """

    # before GTPTEMAHook copies the model into the EMA
    priority = 'ABOVE_NORMAL'

    def __init__(self,
                 checkpoint: Optional[str] = None,
                 from_scratch: Optional[bool] = None) -> None:
        self.checkpoint = checkpoint
        self.from_scratch = from_scratch

    def before_train(self, runner) -> None:
        if runner._has_loaded:
            runner.logger.info(
                'CurriculumInitHook: weights were loaded or resumed; not '
                'loading stage 1')
            return
        checkpoint = self.checkpoint or runner.cfg.get('stage1_checkpoint')
        from_scratch = self.from_scratch
        if from_scratch is None:
            from_scratch = runner.cfg.get('from_scratch', False)
        if checkpoint is None:
            if not from_scratch:
                raise RuntimeError(
                    'stage 2 (whole-body) needs the stage-1 body model: pass '
                    '--cfg-options stage1_checkpoint=PATH (the best '
                    'checkpoint of the gtpt-*_coco run), '
                    'or from_scratch=True to train without it')
            runner.logger.warning(
                'CurriculumInitHook: training stage 2 from scratch '
                '(from_scratch=True)')
            return
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        new = load_stage1(model, checkpoint)
        runner.logger.info(
            f'CurriculumInitHook: stage-1 weights from {checkpoint}; newly '
            f'initialised: {new}')
