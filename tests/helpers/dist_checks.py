"""Checks run in 2 gloo processes (``torchrun --nproc_per_node 2``) on the
hooks themselves, with stand-ins for the runner: each rank writes what it saw
to ``OUT/rank{r}.json``.

``dist_checks.py stop OUT``: NonFiniteCheckHook with a NaN/Inf on one rank.
``dist_checks.py resume OUT``: AtomicCheckpointHook choosing what --resume
loads.
"""
import json
import os
import os.path as osp
import sys
from types import SimpleNamespace

import torch
import torch.distributed as dist
import torch.nn as nn
from mmengine.logging import MMLogger
from mmpose.structures import PoseDataSample

import gtpt_mmpose  # noqa: F401
from gtpt_mmpose.engine import atomic_checkpoint
from gtpt_mmpose.engine.atomic_checkpoint import AtomicCheckpointHook
from gtpt_mmpose.engine.non_finite_check import NonFiniteCheckHook


class StubRunner(SimpleNamespace):
    """What the hooks read of a runner: iteration 5 of epoch 2."""

    def __init__(self, **kwargs) -> None:
        super().__init__(
            iter=4,
            epoch=1,
            logger=MMLogger.get_instance('dist_checks'),
            **kwargs)


class BatchNormNet(nn.Module):

    def __init__(self) -> None:
        super().__init__()
        self.bn = nn.BatchNorm1d(2)


def one_iteration(hook, runner, outputs, data_batch=None, between=None):
    """Run the hook around one training iteration; return how it ended."""
    try:
        hook.before_train_iter(runner, 0, data_batch)
        if between is not None:
            between()
        hook.after_train_iter(runner, 0, data_batch, outputs)
    except FloatingPointError as exc:
        return str(exc)
    return 'went on'


def losses(*values) -> dict:
    return {
        k: torch.tensor(v)
        for k, v in zip(('loss', 'loss_kpt', 'loss_distill'), values)
    }


def stop_checks(rank: int) -> dict:
    inf = float('inf')
    seen = {}
    no_scaler = StubRunner(
        optim_wrapper=SimpleNamespace(), model=nn.Linear(1, 1))
    # rank 1's distillation loss is Inf (float32: no loss scaler)
    seen['loss'] = one_iteration(
        NonFiniteCheckHook(), no_scaler,
        losses(inf, 0.5, inf) if rank == 1 else losses(1.0, 0.5, 0.5))
    # rank 0's second image has a NaN pixel
    images = [torch.zeros(3, 4, 4), torch.zeros(3, 4, 4)]
    if rank == 0:
        images[1][0, 1, 1] = float('nan')
    samples = [PoseDataSample(metainfo=dict(img_path=p)) for p in 'ab']
    samples[1].set_metainfo(dict(img_path='b.jpg'))
    seen['input'] = one_iteration(NonFiniteCheckHook(), no_scaler,
                                  losses(1.0, 0.5, 0.5),
                                  dict(inputs=images, data_samples=samples))
    # under a loss scaler: a step it skips (its scale halves) goes on, unless
    # the forward pass left NaN in rank 1's BatchNorm statistics
    scaler = torch.amp.GradScaler('cpu')
    scaler.scale(torch.ones(()))  # the scale exists from the first step

    def skip() -> None:
        scaler._scale.mul_(0.5)

    model = BatchNormNet()
    scaled = StubRunner(
        optim_wrapper=SimpleNamespace(loss_scaler=scaler), model=model)
    hook = NonFiniteCheckHook()
    assert one_iteration(hook, scaled, losses(1.0, 0.5, 0.5)) == 'went on'
    seen['skip'] = one_iteration(hook, scaled, losses(1.0, 0.5, 0.5), None,
                                 skip)
    if rank == 1:
        model.bn.running_mean[0] = float('nan')
    seen['statistics'] = one_iteration(hook, scaled, losses(inf, 0.5, inf),
                                       None, skip)
    return seen


def resume_checks(rank: int, out: str) -> dict:
    work, broken = osp.join(out, 'work'), osp.join(out, 'broken')
    if rank == 0:
        for folder in (work, broken):
            os.makedirs(folder)
        intact = dict(meta=dict(epoch=1), state_dict={'w': torch.ones(2)})
        torch.save(intact, osp.join(out, 'epoch_1.pth'))
        with open(osp.join(out, 'epoch_2.pth'), 'wb') as f:
            f.write(open(osp.join(out, 'epoch_1.pth'), 'rb').read()[:100])
        with open(osp.join(work, 'last_checkpoint'), 'w') as f:
            f.write(osp.join(out, 'epoch_2.pth'))
        open(osp.join(broken, 'epoch_1.pth'), 'wb').close()
        with open(osp.join(broken, 'last_checkpoint'), 'w') as f:
            f.write(osp.join(broken, 'epoch_1.pth'))
    dist.barrier()
    loads = []
    reader = atomic_checkpoint.load_checkpoint_file

    def counted(path, *args, **kwargs):
        loads.append(path)
        return reader(path, *args, **kwargs)

    atomic_checkpoint.load_checkpoint_file = counted
    runner = StubRunner(_resume=True, _load_from=None, work_dir=work)
    AtomicCheckpointHook(interval=1).before_run(runner)
    seen = dict(loads=len(loads), chosen=runner._load_from)
    runner = StubRunner(_resume=True, _load_from=None, work_dir=broken)
    try:
        AtomicCheckpointHook(interval=1).before_run(runner)
    except atomic_checkpoint.CheckpointFileError as exc:
        seen['error'] = str(exc)
    return seen


def main() -> None:
    check, out = sys.argv[1:3]
    dist.init_process_group('gloo')
    rank = dist.get_rank()
    seen = stop_checks(rank) if check == 'stop' else resume_checks(rank, out)
    with open(osp.join(out, f'rank{rank}.json'), 'w') as f:
        json.dump(seen, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == '__main__':
    main()
