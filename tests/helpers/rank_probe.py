"""A hook for the distributed test: each rank records its loss, the loss
averaged over ranks, and a checksum of its weights after every iteration."""
import json
import os.path as osp

import torch.distributed as dist
from mmengine.hooks import Hook
from mmpose.registry import HOOKS


@HOOKS.register_module()
class RankProbeHook(Hook):

    def __init__(self) -> None:
        self.rows = []

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        local = outputs['loss'].detach().double().reshape(1)
        mean = local.clone()
        dist.all_reduce(mean)
        model = runner.model.module if hasattr(runner.model,
                                               'module') else runner.model
        checksum = sum(p.detach().double().sum().item()
                       for p in model.parameters())
        self.rows.append(
            dict(
                iter=runner.iter,
                local=local.item(),
                mean=mean.item() / dist.get_world_size(),
                checksum=checksum))

    def after_train(self, runner) -> None:
        with open(
                osp.join(runner.work_dir, f'rank{dist.get_rank()}.json'),
                'w') as f:
            json.dump(
                dict(
                    world_size=dist.get_world_size(),
                    backend=dist.get_backend(),
                    rows=self.rows), f)
