"""Global Perceived loss of GTPT (eq. 12, spec §6)."""
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
from mmpose.models.losses import KLDiscretLoss
from mmpose.registry import MODELS
from torch import Tensor

SimCC = Tuple[Tensor, Tensor]


@MODELS.register_module()
class GlobalPerceivedLoss(nn.Module):
    """KL to the targets on the pruned and the unpruned pass, plus KL from the detached unpruned
    prediction to the pruned one (global-to-local distillation).

    Every term is MMPose's ``KLDiscretLoss`` (mean over bins, times the keypoint weight, summed,
    divided by K); the authors also average over the batch, so the sum is divided by B. With
    ``unpruned`` absent only the pruned term is computed.

    Args:
        unpruned_weight (float): Weight of the unpruned GT term. Defaults to 1.
        distill_weight (float): Weight of the distillation term. Defaults to 1.
        loss_weight (float): Weight of the whole loss.
    """

    def __init__(self,
                 unpruned_weight: float = 1.0,
                 distill_weight: float = 1.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.unpruned_weight = unpruned_weight
        self.distill_weight = distill_weight
        self.loss_weight = loss_weight
        self.to_target = KLDiscretLoss(beta=1.0, use_target_weight=True)
        # softmax(unpruned logits) as the label: KL(p_unpruned || p_pruned), temperature 1
        self.to_unpruned = KLDiscretLoss(
            beta=1.0,
            label_softmax=True,
            label_beta=1.0,
            use_target_weight=True)

    def terms(self,
              pred: SimCC,
              target: SimCC,
              weights: Tensor,
              unpruned: Optional[SimCC] = None) -> Dict[str, Tensor]:
        """The weighted terms of eq. 12, each a scalar; their sum is ``forward``.

        Args:
            pred: pruned-pass logits (B, K, Wx), (B, K, Wy).
            target: SimCC targets of the same shapes.
            weights: (B, K) keypoint weights.
            unpruned: unpruned-pass logits, or None.

        Returns:
            dict: ``loss_kpt`` (pruned vs target) and, with ``unpruned``, ``loss_kpt_unpruned``
            and ``loss_distill`` (pruned vs detached unpruned).
        """
        scale = self.loss_weight / pred[0].shape[0]
        terms = dict(loss_kpt=self.to_target(pred, target, weights) * scale)
        if unpruned is not None:
            terms['loss_kpt_unpruned'] = self.to_target(
                unpruned, target, weights) * (
                    self.unpruned_weight * scale)
            teacher = tuple(u.detach() for u in unpruned)
            terms['loss_distill'] = self.to_unpruned(
                pred, teacher, weights) * (
                    self.distill_weight * scale)
        return terms

    def forward(self,
                pred: SimCC,
                target: SimCC,
                weights: Tensor,
                unpruned: Optional[SimCC] = None) -> Tensor:
        """The whole loss (scalar); arguments as in ``terms``."""
        return sum(self.terms(pred, target, weights, unpruned).values())
