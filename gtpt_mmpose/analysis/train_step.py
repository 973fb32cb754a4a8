"""One training step of a pose model on a synthetic batch, as MMEngine runs
it per iteration without data loading: forward, loss, backward, Adam."""
import torch
import torch.nn as nn

from ..models import GTPTPoseEstimator
from .synthetic import training_batch


class TrainStep:
    """A callable that runs one training step of ``model``.

    GTPT runs its own ``loss`` (which backpropagates the unpruned pass
    first) under autocast; other models their backbone under autocast and
    their head's loss in float32, as MMPose's SimCC heads turn predictions
    into numpy arrays, which have no bfloat16.

    Args:
        model (nn.Module): A top-down pose model, put in training mode.
        batch (int): Images per step.
        device (str): ``'cpu'`` or ``'cuda'``.
        amp (bool): Autocast: bf16 on a CPU, fp16 with a loss scaler on a
            GPU (MMEngine's ``--amp``).
    """

    def __init__(self, model: nn.Module, batch: int, device: str,
                 amp: bool) -> None:
        self.model, self.device = model.train(), device
        self.images, self.samples = training_batch(batch, device)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        dtype = torch.float16 if device == 'cuda' else torch.bfloat16
        self.autocast = torch.autocast(device, dtype, enabled=amp)
        self.scaler = torch.amp.GradScaler(
            device, enabled=amp and device == 'cuda')

    def __call__(self) -> None:
        if isinstance(self.model, GTPTPoseEstimator):
            with self.autocast:
                losses = self.model.loss(self.images, self.samples)
        else:
            with self.autocast:
                feats = self.model.extract_feat(self.images)
            feats = tuple(f.float() for f in feats)
            losses = self.model.head.loss(feats, self.samples)
        loss = sum(v for k, v in losses.items() if k.startswith('loss'))
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.device == 'cuda':
            torch.cuda.synchronize()
