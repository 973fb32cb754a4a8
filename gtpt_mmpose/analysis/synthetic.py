"""Synthetic inputs for the benchmarks and the GPU check: normalised images
and SimCC training targets of the whole-body models' shapes."""
from typing import List, Sequence, Tuple, Union

import torch
from torch import Tensor

from .model_zoo import INPUT_SHAPE

NUM_KEYPOINTS = 133
#: SimCC bins along x and y: the 192 x 256 crop at split ratio 2
SIMCC_BINS = (384, 512)
#: the codec's Gaussian sigma, in bins
SIMCC_SIGMA = 4.0


def random_images(batch: int,
                  seed: int = 0,
                  shape: Sequence[int] = INPUT_SHAPE) -> Tensor:
    """(batch, 3, H, W) standard-normal images (256 x 192 by default), the
    same for the same ``batch``, ``seed`` and ``shape``."""
    g = torch.Generator().manual_seed(seed * 1000 + batch)
    return torch.randn(batch, *shape, generator=g)


def training_batch(batch: int,
                   device: Union[str, torch.device] = 'cpu',
                   seed: int = 0) -> Tuple[Tensor, List[object]]:
    """Images and ``PoseDataSample`` targets as MMPose's SimCC codec makes
    them: one person per image, every keypoint visible at a random place, a
    normalised Gaussian over the bins of each axis.

    Returns:
        tuple: (B, 3, 256, 192) images and B data samples with
        ``gt_instance_labels`` ``keypoint_x_labels`` (1, 133, 384),
        ``keypoint_y_labels`` (1, 133, 512) and ``keypoint_weights``
        (1, 133).
    """
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample
    g = torch.Generator().manual_seed(seed)
    norm = SIMCC_SIGMA * (2 * torch.pi)**0.5
    samples = []
    for _ in range(batch):
        labels = {}
        for axis, bins in zip('xy', SIMCC_BINS):
            grid = torch.arange(float(bins))
            mu = torch.rand(1, NUM_KEYPOINTS, 1, generator=g) * bins
            labels[f'keypoint_{axis}_labels'] = (
                torch.exp(-(grid - mu)**2 /
                          (2 * SIMCC_SIGMA**2)).div(norm).to(device))
        sample = PoseDataSample(metainfo=dict(input_size=INPUT_SHAPE[:0:-1]))
        sample.gt_instance_labels = InstanceData(
            keypoint_weights=torch.ones(1, NUM_KEYPOINTS, device=device),
            **labels)
        samples.append(sample)
    images = torch.randn(batch, *INPUT_SHAPE, generator=g).to(device)
    return images, samples


def training_data(batch: int,
                  device: Union[str, torch.device] = 'cpu',
                  seed: int = 0) -> dict:
    """What a data loader gives ``model.train_step``: images in 0..255 (the
    model's data preprocessor normalises them) and their targets, already
    on ``device`` (so that a step times the model, not a copy).

    Returns:
        dict: ``inputs`` (B, 3, 256, 192) float and ``data_samples``.
    """
    images, samples = training_batch(batch, device, seed)
    pixels = (images * 58 + 117).clamp(0, 255)  # about ImageNet's statistics
    return dict(inputs=pixels, data_samples=samples)
