"""SimCC head of GTPT: per keypoint token, LayerNorm + Linear for x and for y (spec §5, §10)."""
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.structures import InstanceData
from mmpose.evaluation.functional import simcc_pck_accuracy
from mmpose.models.heads.base_head import BaseHead
from mmpose.registry import KEYPOINT_CODECS, MODELS
from mmpose.utils.tensor_utils import to_numpy
from mmpose.utils.typing import ConfigType, OptConfigType, OptSampleList
from torch import Tensor


def unflip_simcc(pred_x: Tensor, pred_y: Tensor,
                 flip_indices: Sequence[int]) -> Tuple[Tensor, Tensor]:
    """Undo a horizontal flip of SimCC logits the authors' way (spec §10 step 4, quirk Q9).

    Swaps left/right keypoints, reverses x along its bins, then shifts x by one bin (bin b of the
    flipped input lines up with bin ``W - 2 - b``); the last bin keeps its value.
    (B, K, Wx), (B, K, Wy) -> same shapes.
    """
    x = pred_x[:, flip_indices].flip(-1)
    return torch.cat((x[..., 1:], x[..., -1:]), dim=-1), pred_y[:,
                                                                flip_indices]


@MODELS.register_module()
class GTPTHead(BaseHead):
    """Reads every keypoint token with a SimCC x and a SimCC y classifier.

    Args:
        in_channels (int): Token width C of the backbone.
        input_size (Tuple[int, int]): (w, h) of the input crop.
        simcc_split_ratio (float): Bins per pixel.
        loss (dict): Loss config; ``GlobalPerceivedLoss`` uses the unpruned tokens when the backbone
            gives them in training.
        decoder (dict, optional): Codec used to decode predictions (``SimCCLabel``-like).
        init_cfg (dict, optional): Initialisation config.

    ``forward`` maps ``feats[0]`` (B, K, C) to ``(pred_x (B, K, Wx), pred_y (B, K, Wy))`` raw logits.
    """

    def __init__(self,
                 in_channels: int,
                 input_size: Tuple[int, int] = (192, 256),
                 simcc_split_ratio: float = 2.0,
                 loss: ConfigType = dict(type='GlobalPerceivedLoss'),
                 decoder: OptConfigType = None,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg)
        self.in_channels = in_channels
        self.input_size = input_size
        self.simcc_split_ratio = simcc_split_ratio
        self.loss_module = MODELS.build(loss)
        self.decoder = KEYPOINT_CODECS.build(
            decoder) if decoder is not None else None
        self.x_norm = nn.LayerNorm(in_channels)
        self.x_fc = nn.Linear(in_channels,
                              int(input_size[0] * simcc_split_ratio))
        self.y_norm = nn.LayerNorm(in_channels)
        self.y_fc = nn.Linear(in_channels,
                              int(input_size[1] * simcc_split_ratio))

    def classify(self, tokens: Tensor) -> Tuple[Tensor, Tensor]:
        """(B, K, C) keypoint tokens -> (B, K, Wx), (B, K, Wy) logits."""
        return self.x_fc(self.x_norm(tokens)), self.y_fc(self.y_norm(tokens))

    def forward(self, feats: Tuple[Tensor, ...]) -> Tuple[Tensor, Tensor]:
        """Logits of the pruned path, the one used for inference."""
        return self.classify(feats[0])

    def predict(self,
                feats,
                batch_data_samples: OptSampleList,
                test_cfg: OptConfigType = {}) -> List[InstanceData]:
        """Decode keypoints; with ``flip_test`` average the logits of the image and its mirror
        (one-bin shifted), then softmax and argmax (spec §10 steps 3–6)."""
        if test_cfg.get('flip_test', False):
            assert isinstance(feats, list) and len(feats) == 2
            flip_indices = batch_data_samples[0].metainfo['flip_indices']
            pred_x, pred_y = self.forward(feats[0])
            flip_x, flip_y = unflip_simcc(*self.forward(feats[1]),
                                          flip_indices)
            pred_x, pred_y = (pred_x + flip_x) * 0.5, (pred_y + flip_y) * 0.5
        else:
            pred_x, pred_y = self.forward(feats)
        # softmax first: scores are probabilities, as the authors report them
        return self.decode((pred_x.softmax(-1), pred_y.softmax(-1)))

    def loss(self,
             feats: Tuple[Tensor, ...],
             batch_data_samples: OptSampleList,
             train_cfg: OptConfigType = {}) -> dict:
        """Global Perceived loss on the pruned and (if given) unpruned tokens."""
        pred = self.classify(feats[0])
        unpruned = self.classify(feats[1]) if len(feats) > 1 else None
        labels = [d.gt_instance_labels for d in batch_data_samples]
        gt = (torch.cat([lb.keypoint_x_labels for lb in labels]),
              torch.cat([lb.keypoint_y_labels for lb in labels]))
        weights = torch.cat([lb.keypoint_weights for lb in labels])
        if hasattr(self.loss_module, 'terms'
                   ):  # one logged term each; MMEngine sums every "loss*" key
            losses = self.loss_module.terms(pred, gt, weights, unpruned)
        else:
            losses = dict(loss_kpt=self.loss_module(pred, gt, weights))
        _, avg_acc, _ = simcc_pck_accuracy(
            output=to_numpy(pred),
            target=to_numpy(gt),
            simcc_split_ratio=self.simcc_split_ratio,
            mask=to_numpy(weights) > 0)
        losses['acc_pose'] = torch.tensor(avg_acc, device=weights.device)
        return losses
