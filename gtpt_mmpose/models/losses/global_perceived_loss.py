"""Global Perceived loss of GTPT (eq. 12, docs/spec.md §6)."""
from typing import Dict, Optional, Tuple

import torch.nn as nn
from mmpose.models.losses import KLDiscretLoss
from mmpose.registry import MODELS
from torch import Tensor

SimCC = Tuple[Tensor, Tensor]


@MODELS.register_module()
class GlobalPerceivedLoss(nn.Module):
    """KL divergence to the targets on the pruned and on the unpruned pass,
    plus the KL divergence from the detached unpruned prediction to the
    pruned one (global-to-local distillation).

    Every term is MMPose's ``KLDiscretLoss`` (mean over bins, times the
    keypoint weight, summed, divided by K); the authors also average over
    the batch, so each term is divided by B. Without ``unpruned`` only the
    pruned term is computed.

    Args:
        unpruned_weight (float): Weight of the unpruned term.
        distill_weight (float): Weight of the distillation term.
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
        # softmax(unpruned logits) as the label: KL(p_unpruned || p_pruned)
        self.to_unpruned = KLDiscretLoss(
            beta=1.0,
            label_softmax=True,
            label_beta=1.0,
            use_target_weight=True)

    def forward(self,
                pred: SimCC,
                target: SimCC,
                weights: Tensor,
                unpruned: Optional[SimCC] = None) -> Dict[str, Tensor]:
        """The weighted terms of eq. 12, each a scalar; the loss is their
        sum (MMEngine adds every ``loss*`` entry).

        Args:
            pred (tuple): Pruned-pass logits (B, K, Wx), (B, K, Wy).
            target (tuple): SimCC targets of the same shapes.
            weights (Tensor): (B, K) keypoint weights.
            unpruned (tuple, optional): Unpruned-pass logits.

        Returns:
            dict: ``loss_kpt`` (pruned vs target) and, with ``unpruned``,
            ``loss_kpt_unpruned`` and ``loss_distill`` (pruned vs the
            detached unpruned prediction).
        """
        if unpruned is None:
            return self.pruned_terms(pred, target, weights)
        terms = self.pruned_terms(pred, target, weights,
                                  tuple(u.detach() for u in unpruned))
        return dict(  # eq. 12's order
            loss_kpt=terms['loss_kpt'],
            loss_kpt_unpruned=self.unpruned_term(unpruned, target, weights),
            loss_distill=terms['loss_distill'])

    def pruned_terms(self,
                     pred: SimCC,
                     target: SimCC,
                     weights: Tensor,
                     teacher: Optional[SimCC] = None) -> Dict[str, Tensor]:
        """``loss_kpt`` and, given the (detached) unpruned ``teacher``
        logits, ``loss_distill``: the terms whose gradient reaches the
        pruned pass."""
        scale = self.loss_weight / pred[0].shape[0]
        terms = dict(loss_kpt=self.to_target(pred, target, weights) * scale)
        if teacher is not None:
            terms['loss_distill'] = self.to_unpruned(
                pred, teacher, weights) * (
                    self.distill_weight * scale)
        return terms

    def unpruned_term(self, unpruned: SimCC, target: SimCC,
                      weights: Tensor) -> Tensor:
        """``loss_kpt_unpruned``, the one term whose gradient reaches the
        unpruned pass."""
        scale = self.loss_weight / unpruned[0].shape[0]
        return self.to_target(unpruned, target, weights) * (
            self.unpruned_weight * scale)
