"""Refuse a checkpoint of another GTPT variant or keypoint count when it is
loaded.

MMEngine's ``load_checkpoint`` (behind ``init_model``, ``load_from`` and
``MMPoseInferencer``) loads non-strictly and only logs missing keys and shape
mismatches, so a GTPT-T checkpoint in a GTPT-S model, or a body (17-keypoint)
checkpoint in a whole-body model, would run with random weights where they
differ. The modules of this package check their own weights before loading.
"""
from typing import List

import torch.nn as nn


class CheckpointMismatchError(ValueError):
    """A checkpoint's weights do not fit the model they are loaded into."""


def describe_gtpt_weights(state_dict: dict) -> str:
    """What the GTPT backbone weights in ``state_dict`` are: keypoints, width
    and stem."""
    human = next((k for k in state_dict if k.endswith('human_token')), None)
    if human is None:
        return 'no GTPT backbone weights'
    prefix = human[:-len('human_token')]
    dense = state_dict.get(prefix + 'dense_keypoint_token')
    keypoints = 17 + (dense.shape[1] if dense is not None else 0)
    ushaped = any(k.startswith(prefix + 'stem.up_layer') for k in state_dict)
    return (
        f'{keypoints} keypoints, {state_dict[human].shape[-1]} channels, '
        f'{"U-shaped stem (GTPT-B)" if ushaped else "plain stem (GTPT-T/S)"}')


def check_weights_fit(module: nn.Module, state_dict: dict, prefix: str,
                      what: str) -> None:
    """Raise ``CheckpointMismatchError`` unless the keys of ``state_dict``
    under ``prefix`` are exactly ``module``'s persistent weights, with the
    module's shapes.

    Args:
        module (nn.Module): The module about to load.
        state_dict (dict): The whole state dict being loaded.
        prefix (str): ``module``'s key prefix in ``state_dict`` (e.g.
            ``'backbone.'``).
        what (str): The model, for the message (e.g. ``"GTPT(arch='s',
            num_keypoints=133)"``).
    """
    own = module.state_dict()
    missing = [
        prefix + name for name in own if prefix + name not in state_dict
    ]
    extra = [
        key for key in state_dict
        if key.startswith(prefix) and key[len(prefix):] not in own
    ]
    found = (f'(checkpoint: {describe_gtpt_weights(state_dict)}); is it a '
             'checkpoint of another variant or keypoint count?')
    for name, value in own.items():
        key = prefix + name
        if key in state_dict and tuple(state_dict[key].shape) != tuple(
                value.shape):
            raise CheckpointMismatchError(
                f'checkpoint does not fit {what}: {key} has shape '
                f'{tuple(state_dict[key].shape)}, the model expects '
                f'{tuple(value.shape)} {found}')
    if missing:
        hint = (' (a body checkpoint starts a whole-body training run as its '
                'stage1_checkpoint)' if any(
                    k.endswith('dense_keypoint_token')
                    for k in missing) else '')
        raise CheckpointMismatchError(
            f'checkpoint does not fit {what}: it lacks {_some(missing)} '
            f'{found}{hint}')
    if extra:
        raise CheckpointMismatchError(
            f'checkpoint does not fit {what}: it has {_some(extra)}, which '
            'the model '
            f'lacks {found}')


def _some(keys: List[str]) -> str:
    return ', '.join(
        keys[:3]) + (f' and {len(keys) - 3} more' if len(keys) > 3 else '')


def refuse_unfit_checkpoints(module: nn.Module, what: str) -> None:
    """Make every ``load_state_dict`` that reaches ``module`` check the fit
    first."""

    def hook(mod, state_dict, prefix, *_) -> None:
        check_weights_fit(mod, state_dict, prefix, what)

    module.register_load_state_dict_pre_hook(hook)
