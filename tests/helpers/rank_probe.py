"""A hook for the distributed test: each rank records its own loss and a
checksum of its weights before training and after every iteration."""
import json
import os.path as osp

import torch.distributed as dist
from mmengine.hooks import Hook
from mmpose.registry import HOOKS


def checksum(runner) -> float:
    """Sum of every weight of the (unwrapped) model."""
    model = runner.model.module if hasattr(runner.model,
                                           'module') else runner.model
    return sum(p.detach().double().sum().item() for p in model.parameters())


@HOOKS.register_module()
class RankProbeHook(Hook):

    def __init__(self) -> None:
        self.rows = []

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

    def after_train(self, runner) -> None:
        with open(
                osp.join(runner.work_dir, f'rank{dist.get_rank()}.json'),
                'w') as f:
            json.dump(
                dict(
                    world_size=dist.get_world_size(),
                    backend=dist.get_backend(),
                    rows=self.rows), f)
