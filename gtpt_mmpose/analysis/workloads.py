"""The models and synthetic batches that the benchmarks and the GPU check
run: GTPT whole-body models from this package's configs, RTMPose from
MMPose's own configs (without their pretrained-backbone download, SyncBN ->
BN), and training batches of the right shapes.

Weights are random (``init_weights``): timings, memory and the agreement of
two computations do not depend on them.
"""
import os.path as osp
from typing import List, Tuple, Union

import torch
import torch.nn as nn

#: MMPose's RTMPose whole-body 256x192 configs, by size
RTMPOSE_CONFIG = ('wholebody_2d_keypoint/rtmpose/coco-wholebody/'
                  'rtmpose-{}_8xb64-270e_coco-wholebody-256x192.py')
#: input size (H, W), keypoints and SimCC bins of every whole-body model here
INPUT_HW = (256, 192)
NUM_KEYPOINTS = 133
SIMCC_BINS = {'x': 384, 'y': 512}


def rtmpose_config(size: str) -> str:
    """MMPose's RTMPose-{size} whole-body 256x192 config, installed copy.

    Args:
        size (str): ``'m'`` or ``'l'`` (also ``'t'``, ``'s'``, ``'x'``
            where MMPose ships them).

    Returns:
        str: The config's path.
    """
    import mmpose
    path = osp.join(
        osp.dirname(mmpose.__file__), '.mim', 'configs',
        RTMPOSE_CONFIG.format(size))
    if not osp.isfile(path):
        raise FileNotFoundError(f'MMPose config not found: {path} (is mmpose '
                                'installed with its configs?)')
    return path


def offline_bn(cfg):
    """A model config without pretrained-weight downloads, SyncBN -> BN."""
    if isinstance(cfg, dict):
        out = {
            k: offline_bn(v)
            for k, v in cfg.items()
            if not (k == 'init_cfg' and _is_pretrained(v))
        }
        if out.get('type') == 'SyncBN':
            out['type'] = 'BN'
        return out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(offline_bn(v) for v in cfg)
    return cfg


def _is_pretrained(init_cfg) -> bool:
    items = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    return any(
        isinstance(c, dict) and c.get('type') == 'Pretrained' for c in items)


def model_config(name: str) -> dict:
    """The model config of ``'gtpt-{t,s,b}'`` (whole body) or
    ``'rtmpose-{m,l}'``, as a plain dict."""
    from mmengine.config import Config

    from gtpt_mmpose.utils.config_paths import config_path
    if name.startswith('rtmpose-'):
        path = rtmpose_config(name[len('rtmpose-'):])
    elif name.startswith('gtpt-'):
        path = config_path(f'{name}_coco-wholebody')
    else:
        raise ValueError(f'unknown model {name!r}: gtpt-t/s/b or rtmpose-m/l')
    return offline_bn(Config.fromfile(path).model.to_dict())


def build_model(name: str,
                device: Union[str, torch.device] = 'cpu',
                seed: int = 0,
                **options) -> nn.Module:
    """A whole-body pose model with initialised random weights, in training
    mode.

    Args:
        name (str): ``'gtpt-t'``, ``'gtpt-s'``, ``'gtpt-b'``, ``'rtmpose-m'``
            or ``'rtmpose-l'``.
        device (str | torch.device): Where to put it.
        seed (int): Seed of the weights: equal seeds give equal models.
        **options: Top-level model options (``unpruned_first``) and, under
            ``backbone``, a dict of backbone options.

    Returns:
        nn.Module: The ``TopdownPoseEstimator``.
    """
    from mmpose.registry import MODELS
    from mmpose.utils import register_all_modules
    register_all_modules()
    cfg = model_config(name)
    cfg['backbone'].update(options.pop('backbone', {}))
    cfg.update(options)
    torch.manual_seed(seed)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.to(device).train()


def synthetic_batch(batch: int,
                    device: Union[str, torch.device] = 'cpu',
                    seed: int = 0) -> Tuple[torch.Tensor, List]:
    """Normalised images and whole-body SimCC targets: every keypoint
    visible, a Gaussian of sigma 4 bins (as MMPose's SimCC codec makes
    them) at a random place.

    Args:
        batch (int): Images.
        device (str | torch.device): Where the tensors go.
        seed (int): Equal seeds give equal batches.

    Returns:
        tuple: images (B, 3, 256, 192) and B ``PoseDataSample``s holding
        ``keypoint_x_labels`` (1, 133, 384), ``keypoint_y_labels``
        (1, 133, 512) and ``keypoint_weights`` (1, 133).
    """
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample
    g = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(batch):
        labels = {}
        for axis, n in SIMCC_BINS.items():
            bins = torch.arange(float(n))
            mu = torch.rand(1, NUM_KEYPOINTS, 1, generator=g) * n
            labels[f'keypoint_{axis}_labels'] = torch.exp(
                -(bins - mu)**2 / 32).div(4 * 2.5066283).to(device)
        s = PoseDataSample(metainfo=dict(input_size=INPUT_HW[::-1]))
        s.gt_instance_labels = InstanceData(
            keypoint_weights=torch.ones(1, NUM_KEYPOINTS, device=device),
            **labels)
        samples.append(s)
    images = torch.randn(batch, 3, *INPUT_HW, generator=g).to(device)
    return images, samples


def training_data(batch: int,
                  device: Union[str, torch.device] = 'cpu',
                  seed: int = 0) -> dict:
    """What a data loader gives ``model.train_step``: images in 0..255
    (the model's data preprocessor normalises them) and their targets,
    already on ``device`` (so that a step times the model, not a copy).

    Returns:
        dict: ``inputs`` (B, 3, 256, 192) float and ``data_samples``.
    """
    images, samples = synthetic_batch(batch, device, seed)
    pixels = (images * 58 + 117).clamp(0, 255)  # about ImageNet's statistics
    return dict(inputs=pixels, data_samples=samples)
