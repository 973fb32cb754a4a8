"""The models the benchmarks compare, built offline by name.

``gtpt-t``, ``gtpt-s``, ``gtpt-b``: this package's COCO-WholeBody configs;
any other config name of this package (``gtpt-s_mpii``, ``gtpt-t_300w``)
builds that config, at its codec's input size; ``rtmpose-m``,
``rtmpose-l``: MMPose's RTMPose whole-body 256x192 configs, with the
pretrained-backbone download stripped and SyncBN as BN, so that they build
on one machine without a network. Weights are random: timings and FLOPs do
not depend on them.
"""
import os.path as osp
from typing import Any, Optional, Tuple, Union

import torch
import torch.nn as nn

GTPT_MODELS = ('gtpt-t', 'gtpt-s', 'gtpt-b')
RTMPOSE_MODELS = ('rtmpose-m', 'rtmpose-l')
MODELS = GTPT_MODELS + RTMPOSE_MODELS
RTMPOSE_CONFIG = ('wholebody_2d_keypoint/rtmpose/coco-wholebody/'
                  'rtmpose-{}_8xb64-270e_coco-wholebody-256x192.py')
#: the whole-body input crop, (N, 3, H, W)
INPUT_SHAPE = (3, 256, 192)


def config_file(name: str) -> str:
    """The config file of a model name (the installed copy for RTMPose)."""
    from ..utils.config_paths import config_path
    if name in GTPT_MODELS:
        return config_path(f'{name}_coco-wholebody')
    if name not in RTMPOSE_MODELS:
        try:
            return config_path(name)
        except FileNotFoundError:
            raise ValueError(f'unknown model {name!r}: one of {MODELS} or '
                             'the name of a config in configs/ '
                             "(e.g. 'gtpt-s_mpii')") from None
    import mmpose
    path = osp.join(
        osp.dirname(mmpose.__file__), '.mim', 'configs',
        RTMPOSE_CONFIG.format(name[-1]))
    if not osp.isfile(path):
        raise FileNotFoundError(f'MMPose config not found: {path} (is mmpose '
                                'installed with its configs?)')
    return path


def offline(cfg: Any) -> Any:
    """A model config (plain dicts and lists) without pretrained-weight
    downloads, SyncBN replaced by BN."""
    if isinstance(cfg, dict):
        out = {
            k: offline(v)
            for k, v in cfg.items()
            if not (k == 'init_cfg' and _is_pretrained(v))
        }
        if out.get('type') == 'SyncBN':
            out['type'] = 'BN'
        return out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(offline(v) for v in cfg)
    return cfg


def _is_pretrained(init_cfg: Any) -> bool:
    items = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    return any(
        isinstance(c, dict) and c.get('type') == 'Pretrained' for c in items)


def is_gtpt(name: str) -> bool:
    """Whether ``name`` is one of this package's models."""
    return name not in RTMPOSE_MODELS


def input_shape(name: str) -> Tuple[int, int, int]:
    """(3, H, W) of the model's input crop: its codec's ``input_size``."""
    if name in MODELS:
        return INPUT_SHAPE
    from mmengine.config import Config
    w, h = Config.fromfile(config_file(name)).codec['input_size']
    return (3, h, w)


def build_model(name: str,
                device: Union[str, torch.device] = 'cpu',
                unpruned_pass: Optional[bool] = None,
                seed: int = 0,
                **options) -> nn.Module:
    """A pose model by name, initialised random weights, in eval mode on
    ``device``.

    Args:
        name (str): One of :data:`MODELS` or a config name of this
            package.
        device (str | torch.device): Where to put it.
        unpruned_pass (bool, optional): GTPT only: override the config's
            ``unpruned_pass`` (whether training also runs the unpruned
            path, the Global Perceived loss's teacher).
        seed (int): Seed of the random weights: equal seeds, equal models.
        **options: Top-level model options, e.g. GTPT's
            ``unpruned_first``.

    Returns:
        nn.Module: A ``TopdownPoseEstimator``.
    """
    from mmengine.config import Config
    from mmpose.registry import MODELS as REGISTRY
    from mmpose.utils import register_all_modules

    import gtpt_mmpose  # noqa: F401  (registers GTPT's modules)
    register_all_modules()
    cfg = Config.fromfile(config_file(name)).model
    if is_gtpt(name):
        if unpruned_pass is not None:
            cfg.backbone.update(unpruned_pass=unpruned_pass)
    else:
        cfg = offline(cfg.to_dict())
    cfg.update(options)
    torch.manual_seed(seed)
    model = REGISTRY.build(cfg)
    model.init_weights()
    return model.to(device).eval()


def published_ap(name: str) -> Optional[float]:
    """Whole-body AP on COCO-WholeBody val as published (the GTPT paper's,
    from this package's metafile; MMPose's model zoo for RTMPose), or None
    where the metafile does not give it."""
    import yaml
    config = config_file(name)
    if name not in MODELS:
        return None
    if is_gtpt(name):
        metafile = osp.join(osp.dirname(config), 'gtpt_metafile.yml')
    else:
        metafile = osp.join(osp.dirname(config), 'rtmpose_coco-wholebody.yml')
    with open(metafile) as f:
        models = yaml.safe_load(f)['Models']
    base = osp.basename(config)
    for model in models:
        if osp.basename(model['Config']) == base:
            return model['Results'][0]['Metrics'].get('Whole AP')
    return None
