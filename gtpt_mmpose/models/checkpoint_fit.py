"""Refuse a checkpoint of another GTPT variant or keypoint count when it is
loaded.

MMEngine's ``load_state_dict`` (behind ``init_model``, ``load_from``,
``--resume``, ``init_cfg=Pretrained`` and ``MMPoseInferencer``) loads
non-strictly and only logs missing keys and shape mismatches, so a GTPT-T
checkpoint in a GTPT-S model, or a body (17-keypoint) checkpoint in a
whole-body model, would run with random weights where they differ.
:mod:`gtpt_mmpose.compat` runs :func:`check_gtpt_modules_fit` before every
such load.
"""
from typing import List, NamedTuple, Optional

import torch.nn as nn


class CheckpointMismatchError(ValueError):
    """A checkpoint's weights do not fit the model they are loaded into."""


class GTPTVariant(NamedTuple):
    """What the GTPT backbone weights of a state dict are."""
    arch: Optional[str]  # 't', 's', 'b', or None for an unknown width
    num_keypoints: int
    embed_dims: int
    ushaped_stem: bool


def gtpt_variant(state_dict: dict,
                 prefix: Optional[str] = None) -> Optional[GTPTVariant]:
    """Read the variant of the GTPT backbone weights in ``state_dict``.

    Args:
        state_dict (dict): Weights, e.g. a checkpoint's ``state_dict``.
        prefix (str, optional): The backbone's key prefix (``'backbone.'``);
            found from the ``human_token`` key when not given.

    Returns:
        GTPTVariant, optional: The variant, or None without GTPT weights.
    """
    if prefix is None:
        human = next((k for k in state_dict if k.endswith('human_token')), '')
        prefix = human[:-len('human_token')]
    if prefix + 'human_token' not in state_dict:
        return None
    dims = state_dict[prefix + 'human_token'].shape[-1]
    dense = state_dict.get(prefix + 'dense_keypoint_token')
    ushaped = any(
        k.startswith(prefix + 'stem.down_layer1.') for k in state_dict)
    arch = 'b' if ushaped else {128: 't', 192: 's'}.get(dims)
    sparse = state_dict[prefix + 'keypoint_token'].shape[1]
    keypoints = sparse + (0 if dense is None else dense.shape[1])
    return GTPTVariant(arch, keypoints, dims, ushaped)


def describe_gtpt_weights(state_dict: dict) -> str:
    """Keypoints, width and stem of the GTPT weights in ``state_dict``.

    Args:
        state_dict (dict): Weights.

    Returns:
        str: E.g. ``'133 keypoints, 192 channels, U-shaped stem (GTPT-B)'``.
    """
    variant = gtpt_variant(state_dict)
    if variant is None:
        return 'no GTPT backbone weights'
    stem = ('U-shaped stem (GTPT-B)'
            if variant.ushaped_stem else 'plain stem (GTPT-T/S)')
    return (f'{variant.num_keypoints} keypoints, {variant.embed_dims} '
            f'channels, {stem}')


def check_weights_fit(module: nn.Module, state_dict: dict, prefix: str,
                      what: str) -> None:
    """Check that ``state_dict`` holds exactly ``module``'s weights.

    Args:
        module (nn.Module): The module about to load.
        state_dict (dict): The whole state dict being loaded.
        prefix (str): ``module``'s key prefix in ``state_dict`` (e.g.
            ``'backbone.'``).
        what (str): The model, for the message (e.g.
            ``"GTPT(arch='s', num_keypoints=133)"``).

    Raises:
        CheckpointMismatchError: A weight of ``module`` is missing or has
            another shape, or ``state_dict`` has weights under ``prefix``
            that ``module`` lacks.
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
    theirs = gtpt_variant(state_dict)
    if (theirs is not None and hasattr(module, 'num_keypoints')
            and theirs.num_keypoints != module.num_keypoints):
        # another layout: the weights that mean the same carry over
        found += (' To start training from a checkpoint of another keypoint '
                  'layout, pass it as --cfg-options stage1_checkpoint=PATH '
                  '(README, "Fine-tuning").')
    for name, value in own.items():
        key = prefix + name
        if key in state_dict and tuple(state_dict[key].shape) != tuple(
                value.shape):
            raise CheckpointMismatchError(
                f'checkpoint does not fit {what}: {key} has shape '
                f'{tuple(state_dict[key].shape)}, the model expects '
                f'{tuple(value.shape)} {found}')
    if missing:
        raise CheckpointMismatchError(
            f'checkpoint does not fit {what}: it lacks {_some(missing)} '
            f'{found}')
    if extra:
        raise CheckpointMismatchError(
            f'checkpoint does not fit {what}: it has {_some(extra)}, which '
            f'the model lacks {found}')


def _some(keys: List[str]) -> str:
    """The first three keys, and how many more."""
    more = f' and {len(keys) - 3} more' if len(keys) > 3 else ''
    return ', '.join(keys[:3]) + more


def describe_module(module: nn.Module) -> str:
    """How a message names a GTPT backbone or head.

    Args:
        module (nn.Module): A ``GTPT`` or ``GTPTHead``.

    Returns:
        str: E.g. ``"GTPT(arch='t', num_keypoints=133)"``.
    """
    if hasattr(module, 'num_keypoints'):
        arch = gtpt_variant(module.state_dict(), prefix='').arch
        return f'GTPT(arch={arch!r}, num_keypoints={module.num_keypoints})'
    return (f'GTPTHead(in_channels={module.in_channels}, '
            f'input_size={tuple(module.input_size)})')


def check_gtpt_modules_fit(model: nn.Module, state_dict: dict) -> None:
    """Run :func:`check_weights_fit` on every GTPT backbone and head in
    ``model``.

    Args:
        model (nn.Module): What ``state_dict`` is loaded into (a whole
            estimator, a model wrapper, or a backbone alone).
        state_dict (dict): Its keys are relative to ``model``.

    Raises:
        CheckpointMismatchError: See :func:`check_weights_fit`.
    """
    from mmengine.model import BaseTTAModel, is_model_wrapper

    from .backbones.gtpt import GTPT
    from .heads.gtpt_head import GTPTHead

    # MMEngine's load_state_dict loads a wrapper's module with the same keys
    while is_model_wrapper(model) or isinstance(model, BaseTTAModel):
        model = model.module
    for name, module in model.named_modules():
        if isinstance(module, (GTPT, GTPTHead)):
            prefix = name + '.' if name else ''
            check_weights_fit(module, state_dict, prefix,
                              describe_module(module))
