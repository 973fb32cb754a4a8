"""The top-down pose estimator of GTPT: MMPose's, with a training loss that
backpropagates the unpruned pass before the pruned pass runs (docs/spec.md
§6)."""
from typing import Optional, Tuple

import torch
from mmpose.models.pose_estimators import TopdownPoseEstimator
from mmpose.registry import MODELS
from mmpose.utils.typing import SampleList
from torch import Tensor

from .backbones import GTPT
from .heads import GTPTHead
from .losses import GlobalPerceivedLoss


@MODELS.register_module()
class GTPTPoseEstimator(TopdownPoseEstimator):
    """``TopdownPoseEstimator`` whose training holds one pass's activations
    at a time.

    The Global Perceived loss trains a pruned and an unpruned pass that
    share the layers before the first pruning step. Its distillation target
    is the detached unpruned prediction, so the unpruned pass can be run
    and backpropagated first, from a detached copy of the shared layers'
    output (``torch.autograd.grad``: the gradients are kept, not yet
    accumulated); its activations are freed before the pruned pass runs.
    The loss it returns carries those gradients into the one backward that
    MMEngine's optimizer wrapper runs: the same losses and gradients as one
    backward through both passes (to float32 rounding), with the peak
    memory of about one pass. Every other case (inference, fp16 autocast,
    whose unscaled gradients could underflow, other backbones or losses) is
    ``TopdownPoseEstimator.loss``.

    Args:
        unpruned_first (bool): Backpropagate the unpruned pass first, as
            above. False is the one joint backward.
        **kwargs: ``TopdownPoseEstimator``'s arguments.
    """

    def __init__(self, *args, unpruned_first: bool = True, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.unpruned_first = unpruned_first

    def loss(self, inputs: Tensor, data_samples: SampleList) -> dict:
        """The losses of a batch, as ``TopdownPoseEstimator.loss``.

        Args:
            inputs (Tensor): (B, 3, H, W) images.
            data_samples (list[PoseDataSample]): Their targets.

        Returns:
            dict: ``loss_kpt``, ``loss_kpt_unpruned``, ``loss_distill`` and
            ``acc_pose``; the unpruned pass already backpropagated as above
            when it applies.
        """
        if not self._stages_the_passes(inputs):
            return super().loss(inputs, data_samples)
        backbone, head = self.backbone, self.head
        gt, weights = head.targets(data_samples)
        prefix = backbone.shared_prefix(backbone.tokenize(inputs))
        # the unpruned pass, forward and backward, from a detached prefix
        start = prefix._replace(
            x=prefix.x.detach().requires_grad_(),
            logits=None if prefix.logits is None else prefix.logits.detach())
        unpruned = head.classify(
            backbone.encode_from(start, backbone.plans['unpruned']).tokens)
        loss_unpruned = head.loss_module.unpruned_term(unpruned, gt, weights)
        params = [p for p in self.parameters() if p.requires_grad]
        grads = torch.autograd.grad(
            loss_unpruned, [start.x, *params], allow_unused=True)
        # the pruned pass; its backward also carries the gradients above
        pred = head.classify(
            backbone.encode_from(prefix, backbone.plans['pruned']).tokens)
        losses = head.loss_module.pruned_terms(
            pred, gt, weights, tuple(u.detach() for u in unpruned))
        losses = dict(
            loss_kpt=losses['loss_kpt'],
            # the unpruned loss's value, with the unpruned pass's gradients
            loss_kpt_unpruned=_CarryGradients.apply(loss_unpruned.detach(),
                                                    grads, prefix.x, *params),
            loss_distill=losses['loss_distill'])
        losses['acc_pose'] = head.accuracy(pred, gt, weights)
        return losses

    def _stages_the_passes(self, inputs: Tensor) -> bool:
        """Whether this training step can backpropagate the unpruned pass
        first."""
        backbone, head = self.backbone, self.head
        return (self.unpruned_first and self.training
                and torch.is_grad_enabled() and not self.with_neck
                and isinstance(backbone, GTPT) and backbone.unpruned_pass
                and isinstance(head, GTPTHead)
                and isinstance(head.loss_module, GlobalPerceivedLoss)
                and not _fp16_autocast(inputs.device.type))


class _CarryGradients(torch.autograd.Function):
    """A loss value whose gradient with respect to ``tensors[i]`` is
    ``grads[i]`` (times the gradient of the value, e.g. a loss scale)."""

    @staticmethod
    def forward(ctx, value: Tensor, grads: Tuple[Optional[Tensor], ...],
                *tensors: Tensor) -> Tensor:
        ctx.grads = grads
        return value.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple:
        return (None, None, *(None if g is None else g * grad
                              for g in ctx.grads))


def _fp16_autocast(device_type: str) -> bool:
    """Autocast to float16 is on (a loss scaler's case)."""
    return (torch.is_autocast_enabled(device_type)
            and torch.get_autocast_dtype(device_type) == torch.float16)
