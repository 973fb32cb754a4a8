"""Map the authors' GTPT checkpoints (haonanwang0522/GTPT) onto this package's
modules (spec §7.3, §11)."""
import re
from collections import OrderedDict
from typing import Dict, Mapping, Tuple

import torch

from ..models.checkpoint_fit import gtpt_variant
from ..utils.safe_checkpoint import load_checkpoint_file

_BLOCK = {'layers': 'coarse_blocks', 'group_layers': 'group_blocks'}
_BLOCK_PARTS = {
    '0.fn.norm': 'norm1',
    '0.fn.fn.to_qkv': 'attn.qkv',
    '0.fn.fn.to_out.0': 'attn.proj',
    '1.fn.norm': 'norm2',
    '1.fn.fn.net.0': 'ffn.fc1',
    '1.fn.fn.net.3': 'ffn.fc2'
}
_BLOCK_RE = re.compile(
    r'^transformer\.(layers|group_layers)\.(\d+)\.(.+)\.(weight|bias)$')
_RENAMED_PREFIX = {
    'patch2emb_norm.': 'patch_norm.',
    'patch2emb_mlp.': 'patch_embed.',
    'transformer.group_mask.': 'group_mask.',
    'stem.': 'stem.'
}
_RENAMED = {
    'human_token': 'human_token',
    'keypoint_token': 'keypoint_token',
    'extra_token': 'part_token',
    'fine_keypoint_token': 'dense_keypoint_token'
}
_HEADS = {
    'mlp_head_x.0.': 'head.x_norm.',
    'mlp_head_x.1.': 'head.x_fc.',
    'mlp_head_y.0.': 'head.y_norm.',
    'mlp_head_y.1.': 'head.y_fc.'
}
# fixed tables we rebuild instead of loading: the sine code and the MHGA masks
# (spec §1.6, §4.2)
_DROPPED = re.compile(
    r'^(pos_embedding|transformer\.group_layers\.\d+\.0\.fn\.fn\.mask)$')


def load_official_checkpoint(path: str) -> Dict[str, torch.Tensor]:
    """Read an authors' checkpoint, flat or wrapped (``state_dict`` +
    ``module.``), tensors only."""
    obj = load_checkpoint_file(path)
    if isinstance(obj, Mapping) and isinstance(obj.get('state_dict'), Mapping):
        obj = obj['state_dict']
    if not isinstance(obj, Mapping) or not obj:
        raise ValueError(
            f'{path}: expected a state dict (or a dict with "state_dict"), '
            f'got {type(obj).__name__}')
    if all(k.startswith('module.') for k in obj):
        obj = {k[len('module.'):]: v for k, v in obj.items()}
    return {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}


def _backbone_key(key: str) -> str:
    m = _BLOCK_RE.match(key)
    if m:
        kind, index, part, param = m.groups()
        if part not in _BLOCK_PARTS:
            raise KeyError(key)
        return f'{_BLOCK[kind]}.{index}.{_BLOCK_PARTS[part]}.{param}'
    if key in _RENAMED:
        return _RENAMED[key]
    for old, new in _RENAMED_PREFIX.items():
        if key.startswith(old):
            return new + key[len(old):]
    raise KeyError(key)


def convert_official_state_dict(state: Mapping[str, torch.Tensor]
                                ) -> 'OrderedDict[str, torch.Tensor]':
    """Authors' keys -> ``backbone.*`` / ``head.*`` of
    ``TopdownPoseEstimator``.

    Takes the EMA branch (``ema_features``, ``ema_mlp_head_{x,y}``), the one
    the authors evaluate; a file without it (an EMA-less export) falls back to
    the trained branch.
    """
    branch = 'ema_' if any(k.startswith('ema_features.')
                           for k in state) else ''
    out: 'OrderedDict[str, torch.Tensor]' = OrderedDict()
    unknown = []
    for key, value in state.items():
        if not key.startswith(branch) or (branch == ''
                                          and key.startswith('ema_')):
            continue
        key = key[len(branch):]
        if key.startswith('features.'):
            sub = key[len('features.'):]
            if _DROPPED.match(sub):
                continue
            if sub.endswith('num_batches_tracked') and value.numel() == 1:
                value = value.reshape(
                    ())  # some writers store the counter as shape (1,)
            try:
                out['backbone.' + _backbone_key(sub)] = value
            except KeyError:
                unknown.append(branch + key)
        elif key[:len('mlp_head_x.0.')] in _HEADS:
            out[_HEADS[key[:len('mlp_head_x.0.')]] +
                key[len('mlp_head_x.0.'):]] = value
        else:
            unknown.append(branch + key)
    if unknown:
        raise ValueError('unrecognised keys in the authors\' checkpoint, e.g. '
                         f'{unknown[:3]}')
    if not out:
        raise ValueError(
            'no GTPT weights found: expected keys "ema_features.*" or '
            '"features.*"')
    return out


def detect_variant(state: Mapping[str, torch.Tensor]) -> Tuple[str, int]:
    """Read the variant of a converted state dict from its keys and shapes.

    Args:
        state (Mapping[str, Tensor]): ``backbone.*`` / ``head.*`` weights.

    Returns:
        tuple: ``(arch, num_keypoints)``, e.g. ``('s', 133)``.
    """
    variant = gtpt_variant(dict(state), prefix='backbone.')
    if variant is None:
        raise ValueError(
            'not a GTPT state dict: backbone.human_token is missing')
    if variant.arch is None:
        raise ValueError(f'unknown GTPT width {variant.embed_dims}')
    return variant.arch, variant.num_keypoints
