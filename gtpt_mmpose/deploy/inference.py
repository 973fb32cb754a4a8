"""The image -> SimCC logits path of a top-down model, and its inputs."""
from typing import Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor


class ImageToSimCC(nn.Module):
    """A top-down model without pre- and post-processing: normalised images
    (N, 3, H, W) -> ``(simcc_x (N, K, Wx), simcc_y (N, K, Wy))`` logits.

    What ``export_onnx`` exports and the benchmark times, for GTPT and for
    MMPose's SimCC models alike.

    Args:
        pose_model (nn.Module): A ``TopdownPoseEstimator``.
        path (str): For GTPT, the pruning path to run: ``'pruned'`` (the
            model's inference) or ``'unpruned'`` (the training teacher).
    """

    def __init__(self, pose_model: nn.Module, path: str = 'pruned') -> None:
        super().__init__()
        if path != 'pruned' and path not in getattr(pose_model.backbone,
                                                    'plans', {}):
            raise ValueError(f'{type(pose_model.backbone).__name__} has no '
                             f'pruning path {path!r}')
        self.pose_model = pose_model
        self.path = path

    def forward(self, image: Tensor) -> Tuple[Tensor, Tensor]:
        model = self.pose_model
        if self.path == 'pruned':
            return model.head.forward(model.extract_feat(image))
        backbone = model.backbone
        tokens = backbone.encode(
            backbone.tokenize(image), backbone.plans[self.path]).tokens
        return model.head.forward((tokens, ))


def topdown_batch(pose_model: nn.Module,
                  image: Union[str, np.ndarray],
                  bboxes: Optional[Sequence[Sequence[float]]] = None) -> dict:
    """An image and its person boxes through the model's test pipeline and
    data preprocessor, as ``mmpose.apis.inference_topdown`` prepares them.

    Args:
        pose_model (nn.Module): A model from ``mmpose.apis.init_model``.
        image (str | np.ndarray): Image file or BGR array.
        bboxes (Sequence, optional): (N, 4) x1, y1, x2, y2 boxes; the whole
            image by default.

    Returns:
        dict: MMEngine's batch, ``inputs`` (N, 3, H, W) normalised and
        ``data_samples``.
    """
    from mmengine.dataset import Compose, pseudo_collate
    if bboxes is None:
        if isinstance(image, str):
            import mmcv
            array = mmcv.imread(image)
            if array is None:
                raise FileNotFoundError(f'cannot read image {image}')
            h, w = array.shape[:2]
        else:
            h, w = image.shape[:2]
        bboxes = [[0, 0, w, h]]
    pipeline = Compose(pose_model.cfg.test_dataloader.dataset.pipeline)
    source = dict(img_path=image) if isinstance(image, str) else dict(
        img=image)
    samples = [
        pipeline(
            dict(
                source,
                bbox=np.asarray([box], np.float32),
                bbox_score=np.ones(1, np.float32),
                **pose_model.dataset_meta)) for box in bboxes
    ]
    with torch.no_grad():
        return pose_model.data_preprocessor(pseudo_collate(samples), False)
