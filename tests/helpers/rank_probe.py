"""A hook for the distributed test: each rank records its own loss and a
checksum of its weights before training and after every iteration, and
digests of its BatchNorm statistics and of its EMA model's at the end of every
epoch."""
import hashlib
import json
import os.path as osp

import torch
import torch.distributed as dist
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpose.registry import HOOKS


def unwrapped(runner):
    """The runner's model without its DDP wrapper."""
    return runner.model.module if is_model_wrapper(
        runner.model) else runner.model


def checksum(runner) -> float:
    """Sum of every weight of the (unwrapped) model."""
    return sum(p.detach().double().sum().item()
               for p in unwrapped(runner).parameters())


def running_stats(model) -> dict:
    """The model's BatchNorm running means and variances by name."""
    return {
        name: buffer
        for name, buffer in model.named_buffers() if 'running_' in name
    }


def digest(buffers: dict) -> str:
    """SHA-256 of the buffers' bytes, in name order."""
    sha = hashlib.sha256()
    for name in sorted(buffers):
        sha.update(name.encode())
        sha.update(buffers[name].detach().cpu().contiguous().numpy().tobytes())
    return sha.hexdigest()


@HOOKS.register_module()
class RankProbeHook(Hook):
    """Writes ``rank{r}_{name}.json`` in the work directory after training.

    Args:
        name (str): Tells apart probes registered at different priorities
            (e.g. before and after the hooks that synchronise buffers).
    """

    def __init__(self, name: str = 'probe') -> None:
        self.name = name
        self.rows, self.epochs = [], []

    def before_train(self, runner) -> None:
        self.rows.append(dict(iter=-1, local=None, checksum=checksum(runner)))

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        self.rows.append(
            dict(
                iter=runner.iter,
                local=outputs['loss'].item(),
                checksum=checksum(runner)))

    def after_train_epoch(self, runner) -> None:
        live = running_stats(unwrapped(runner))
        ema_hook = next(h for h in runner.hooks if hasattr(h, 'ema_model'))
        ema = running_stats(ema_hook.ema_model.module)
        assert all(
            torch.isfinite(b).all() for b in (*live.values(), *ema.values()))
        self.epochs.append(
            dict(
                epoch=runner.epoch,
                names=sorted(live),
                live=digest(live),
                ema=digest(ema)))

    def after_train(self, runner) -> None:
        path = osp.join(runner.work_dir,
                        f'rank{dist.get_rank()}_{self.name}.json')
        with open(path, 'w') as f:
            json.dump(
                dict(
                    world_size=dist.get_world_size(),
                    backend=dist.get_backend(),
                    rows=self.rows,
                    epochs=self.epochs), f)
