"""SimCC head of GTPT: a LayerNorm + Linear classifier for x and one for y,
applied to every keypoint token (docs/spec.md §5, §10)."""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from mmengine.structures import InstanceData
from mmpose.evaluation.functional import simcc_pck_accuracy
from mmpose.models.heads.base_head import BaseHead
from mmpose.models.utils.tta import flip_vectors
from mmpose.registry import KEYPOINT_CODECS, MODELS
from mmpose.utils.tensor_utils import to_numpy
from mmpose.utils.typing import ConfigType, OptConfigType, OptSampleList
from torch import Tensor


def unflip_simcc(pred_x: Tensor, pred_y: Tensor,
                 flip_indices: Sequence[int]) -> Tuple[Tensor, Tensor]:
    """Undo a horizontal flip of SimCC logits the authors' way (spec §10 step
    4, quirk Q9): MMPose's ``flip_vectors``, then x moves by one bin (bin b of
    the flipped input lines up with bin ``W - 2 - b``; the last bin keeps its
    value). (B, K, Wx), (B, K, Wy) -> the same shapes."""
    x, y = flip_vectors(pred_x, pred_y, flip_indices)
    return torch.cat((x[..., 1:], x[..., -1:]), dim=-1), y


@MODELS.register_module()
class GTPTHead(BaseHead):
    """Reads every keypoint token with a SimCC x and a SimCC y classifier.

    Keypoint scores are the softmax peaks of the two axes, the smaller of the
    two (the authors' decoding), times ``score_scale``. By default that is
    the inverse peak of the codec's normalised Gaussian target, sigma *
    sqrt(2 pi) (10.03 for sigma = 4 bins), so a keypoint predicted as sharply
    as it was trained scores about 1, as MMPose's thresholds expect; with
    ``score_scale=1.0`` the scores are the authors' probabilities.

    Args:
        in_channels (int): Token width C of the backbone.
        input_size (Tuple[int, int]): (w, h) of the input crop.
        simcc_split_ratio (float): Bins per pixel.
        loss (dict): Loss config. ``GlobalPerceivedLoss`` also reads the
            unpruned tokens when the backbone gives them in training.
        decoder (dict, optional): The codec that decodes predictions
            (``SimCCLabel``).
        score_scale (float, optional): Factor of the keypoint scores; see
            above. None takes the codec's.
        init_cfg (dict, optional): Initialisation config.

    ``forward`` maps ``feats[0]`` (B, K, C) to ``(pred_x (B, K, Wx), pred_y
    (B, K, Wy))``, raw logits.
    """

    def __init__(self,
                 in_channels: int,
                 input_size: Tuple[int, int] = (192, 256),
                 simcc_split_ratio: float = 2.0,
                 loss: ConfigType = dict(type='GlobalPerceivedLoss'),
                 decoder: OptConfigType = None,
                 score_scale: Optional[float] = None,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg)
        self.in_channels = in_channels
        self.input_size = input_size
        self.simcc_split_ratio = simcc_split_ratio
        self.loss_module = MODELS.build(loss)
        self.decoder = None
        if decoder is not None:
            self.decoder = KEYPOINT_CODECS.build(decoder)
        if score_scale is None:
            score_scale = target_peak_inverse(self.decoder)
        self.score_scale = float(score_scale)
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
        """Decode keypoints. With ``flip_test``, average the logits of the
        image and of its mirror (one-bin shifted), then softmax and argmax
        (spec §10 steps 3–6)."""
        if test_cfg.get('flip_test', False):
            assert isinstance(feats, list) and len(feats) == 2
            flip_indices = batch_data_samples[0].metainfo['flip_indices']
            pred_x, pred_y = self.forward(feats[0])
            flip_x, flip_y = unflip_simcc(*self.forward(feats[1]),
                                          flip_indices)
            pred_x, pred_y = (pred_x + flip_x) * 0.5, (pred_y + flip_y) * 0.5
        else:
            pred_x, pred_y = self.forward(feats)
        # softmax before the codec's argmax: scores are (scaled) probabilities
        return self.decode((pred_x.softmax(-1) * self.score_scale,
                            pred_y.softmax(-1) * self.score_scale))

    def loss(self,
             feats: Tuple[Tensor, ...],
             batch_data_samples: OptSampleList,
             train_cfg: OptConfigType = {}) -> dict:
        """The loss on the pruned tokens and, when given, the unpruned ones:
        each term the loss module returns is logged by name."""
        pred = self.classify(feats[0])
        unpruned = self.classify(feats[1]) if len(feats) > 1 else None
        gt, weights = self.targets(batch_data_samples)
        if unpruned is None:
            losses = self.loss_module(pred, gt, weights)
        else:
            losses = self.loss_module(pred, gt, weights, unpruned)
        if isinstance(losses, Tensor):  # a loss of MMPose's
            losses = dict(loss_kpt=losses)
        losses['acc_pose'] = self.accuracy(pred, gt, weights)
        return losses

    def targets(self, batch_data_samples: OptSampleList
                ) -> Tuple[Tuple[Tensor, Tensor], Tensor]:
        """The batch's SimCC targets (B, K, Wx), (B, K, Wy) and keypoint
        weights (B, K)."""
        labels = [d.gt_instance_labels for d in batch_data_samples]
        gt = (torch.cat([lb.keypoint_x_labels for lb in labels]),
              torch.cat([lb.keypoint_y_labels for lb in labels]))
        weights = torch.cat([lb.keypoint_weights for lb in labels])
        return gt, weights

    def accuracy(self, pred: Tuple[Tensor, Tensor], gt: Tuple[Tensor, Tensor],
                 weights: Tensor) -> Tensor:
        """MMPose's SimCC PCK accuracy of the logits, for the log."""
        _, avg_acc, _ = simcc_pck_accuracy(  # numpy has no bfloat16
            output=to_numpy(tuple(p.float() for p in pred)),
            target=to_numpy(gt),
            simcc_split_ratio=self.simcc_split_ratio,
            mask=to_numpy(weights) > 0)
        return torch.tensor(avg_acc, device=weights.device)


def target_peak_inverse(codec) -> float:
    """sigma * sqrt(2 pi): the inverse peak of a codec's normalised Gaussian
    SimCC target, or 1 for a codec without one."""
    sigma = getattr(codec, 'sigma', None)
    if sigma is None or not getattr(codec, 'normalize', False):
        return 1.0
    sigmas = {
        float(s)
        for s in (sigma if hasattr(sigma, '__len__') else (sigma, ))
    }
    if len(sigmas) != 1:  # min(x, y) scores need one factor for both axes
        raise ValueError('score_scale needs the same SimCC sigma on x and '
                         f'y, got {sorted(sigmas)}; set score_scale')
    return sigmas.pop() * math.sqrt(2 * math.pi)
