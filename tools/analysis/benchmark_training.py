#!/usr/bin/env python
"""Training-step time and peak memory of GTPT and RTMPose whole-body models.

A step is what MMEngine runs per iteration without data loading: forward,
the loss, backward and an Adam step, on a synthetic batch (normalised
images, SimCC targets of the right shape) with random weights. GTPT trains
with its Global Perceived loss (pruned and unpruned passes, as configured)
and, as ``gtpt-s pruned-only``, with the pruned pass alone; RTMPose with its
own config's loss. After ``--warmup`` untimed steps of every model (a
process's first steps pay for its allocator's and the BLAS's first use of
each buffer: up to 2.5x a steady step for about ten steps), times are
interleaved over rounds, in one process; peak memory is measured for each
model in a process of its own (two steps at ``--memory-batch``), the honest
way to read a peak on the CPU.

    python tools/analysis/benchmark_training.py                  # CPU, fp32
    python tools/analysis/benchmark_training.py --amp            # bf16 on
        # the CPU, fp16 with a loss scaler on a GPU (MMEngine's --amp)
    python tools/analysis/benchmark_training.py --device cuda --amp
    python tools/analysis/benchmark_training.py --attention auto sdpa matmul \
        --models gtpt-s                                # compare kernels

Writes ``benchmark_training.json`` and ``.md`` to ``--out-dir``.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time
import warnings
from typing import Dict, List, Optional, Sequence

import torch

from gtpt_mmpose.models import GTPTPoseEstimator

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import op_profile  # noqa: E402
from benchmark import cpu_name, offline_bn, rtmpose_config  # noqa: E402

MODELS = ('gtpt-t', 'gtpt-s', 'gtpt-b', 'gtpt-s pruned-only', 'rtmpose-m',
          'rtmpose-l')
#: GTPT-S / RTMPose-m per image must be at most this (issue 15)
TARGETS = {
    'time gtpt-s / rtmpose-m': 2.2,
    'time gtpt-s pruned-only / rtmpose-m': 1.2,
    'memory gtpt-s / rtmpose-m': 2.0,
}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--models', nargs='+', default=list(MODELS), choices=MODELS)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--memory-batch', type=int, default=16)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument(
        '--warmup',
        type=int,
        default=10,
        help='untimed steps of every model before the rounds, interleaved '
        'like them')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument(
        '--amp',
        action='store_true',
        help='autocast: bf16 on the CPU, fp16 with a loss scaler '
        'on a GPU')
    p.add_argument(
        '--attention',
        nargs='+',
        default=['sdpa'],
        choices=['sdpa'],
        help="GTPT's attention kernels to time (each its own model)")
    p.add_argument('--no-memory', action='store_true')
    p.add_argument(
        '--profile',
        action='store_true',
        help='split one step of each model by op kind')
    p.add_argument('--out-dir', default='work_dirs/benchmark')
    p.add_argument('--memory-child', help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if min(args.batch, args.memory_batch, args.rounds, args.threads) < 1:
        p.error('--batch, --memory-batch, --rounds and --threads must be '
                'positive')
    if args.warmup < 0:
        p.error('--warmup must not be negative')
    return args


def build(name: str, attention: str, device: str) -> torch.nn.Module:
    """A model in training mode on ``device``."""
    from mmengine.config import Config
    from mmpose.registry import MODELS as REGISTRY
    from mmpose.utils import register_all_modules

    from gtpt_mmpose.utils.config_paths import config_path
    register_all_modules()
    torch.manual_seed(0)
    if name.startswith('rtmpose'):
        cfg = offline_bn(
            Config.fromfile(rtmpose_config(name[-1])).model.to_dict())
    else:
        cfg = Config.fromfile(
            config_path(f'{name.split()[0]}_coco-wholebody')).model
        cfg.backbone.update(unpruned_pass='pruned-only' not in name)
    return REGISTRY.build(cfg).to(device).train()


def synthetic_batch(batch: int, device: str):
    """Normalised images and SimCC targets (133 keypoints, 384 / 512 bins,
    Gaussians of sigma 4 bins as MMPose's codec makes them)."""
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample
    g = torch.Generator().manual_seed(0)
    bins = {'x': torch.arange(384.), 'y': torch.arange(512.)}
    samples = []
    for _ in range(batch):
        labels = {}
        for axis, b in bins.items():
            mu = torch.rand(1, 133, 1, generator=g) * len(b)
            labels[f'keypoint_{axis}_labels'] = torch.exp(
                -(b - mu)**2 / 32).div(4 * 2.5066283).to(device)
        s = PoseDataSample()
        s.gt_instance_labels = InstanceData(
            keypoint_weights=torch.ones(1, 133, device=device), **labels)
        samples.append(s)
    images = torch.randn(batch, 3, 256, 192, generator=g).to(device)
    return images, samples


class Step:
    """One training step of a model: forward, loss, backward, Adam
    (``model.loss`` split into the backbone's features and the head's loss,
    so that autocast covers the backbone only)."""

    def __init__(self, model: torch.nn.Module, batch: int, device: str,
                 amp: bool) -> None:
        self.model, self.device = model, device
        self.images, self.samples = synthetic_batch(batch, device)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        dtype = torch.float16 if device == 'cuda' else torch.bfloat16
        self.autocast = torch.autocast(device, dtype, enabled=amp)
        self.scaler = torch.amp.GradScaler(
            device, enabled=amp and device == 'cuda')

    def __call__(self) -> None:
        if isinstance(self.model, GTPTPoseEstimator):
            # its own loss, which backpropagates the unpruned pass first;
            # GTPT's head reads bfloat16 predictions
            with self.autocast:
                losses = self.model.loss(self.images, self.samples)
        else:
            # the backbone under autocast; the head and loss in float32, as
            # MMPose's SimCC heads turn predictions into numpy arrays, which
            # have no bfloat16
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


def time_per_image(step: Step, batch: int, calls: int = 2) -> float:
    step()  # warm-up
    start = time.perf_counter()
    for _ in range(calls):
        step()
    return (time.perf_counter() - start) / calls / batch * 1e3


def peak_memory_mb(name: str, attention: str,
                   args: argparse.Namespace) -> float:
    """Peak training memory (MB) per image of two steps at --memory-batch,
    measured in a process of its own."""
    cmd = [
        sys.executable, __file__, '--memory-child', name, '--attention',
        attention, '--memory-batch',
        str(args.memory_batch), '--threads',
        str(args.threads), '--device', args.device
    ] + (['--amp'] if args.amp else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def memory_child(args: argparse.Namespace) -> None:
    """In the child: the peak memory two steps add, per image."""
    import gtpt_mmpose  # noqa: F401
    torch.set_num_threads(args.threads)
    step = Step(
        build(args.memory_child, args.attention[0], args.device),
        args.memory_batch, args.device, args.amp)
    if args.device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:  # resident set before the first step; the high-water mark reset
        with open('/proc/self/clear_refs', 'w') as f:  # (ru_maxrss would
            f.write('5')  # carry the parent's size over fork and exec)
        base = _status_kb('VmRSS') * 1024
    step()
    step()
    if args.device == 'cuda':
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = _status_kb('VmHWM') * 1024
    print((peak - base) / args.memory_batch / 2**20)


def _status_kb(field: str) -> int:
    """A /proc/self/status field (kB)."""
    with open('/proc/self/status') as f:
        return next(
            int(line.split()[1]) for line in f if line.startswith(field))


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings('ignore')
    if args.memory_child:
        memory_child(args)
        return 0
    import gtpt_mmpose  # noqa: F401
    torch.set_num_threads(args.threads)
    os.makedirs(args.out_dir, exist_ok=True)
    names = [(m, a) for m in args.models
             for a in (args.attention if m.startswith('gtpt') else ['sdpa'])]
    label = {
        (m, a):
        m if len(args.attention) == 1 or m.startswith('rtm') else f'{m} {a}'
        for m, a in names
    }
    steps = {
        key:
        Step(
            build(key[0], key[1], args.device), args.batch, args.device,
            args.amp)
        for key in names
    }
    times: Dict[str, List[float]] = {label[k]: [] for k in names}
    start = time.perf_counter()
    for w in range(args.warmup):
        for key in (names if w % 2 == 0 else names[::-1]):
            steps[key]()
    if args.warmup:
        print(
            f'{args.warmup} warm-up steps of every model done, '
            f'{(time.perf_counter() - start) / 60:.1f} min',
            flush=True)
    for r in range(args.rounds):
        for key in (names if r % 2 == 0 else names[::-1]):
            times[label[key]].append(time_per_image(steps[key], args.batch))
        print(
            f'round {r + 1}/{args.rounds} done, '
            f'{(time.perf_counter() - start) / 60:.1f} min: ' +
            ', '.join(f'{k} {statistics.median(v):.1f}'
                      for k, v in times.items()),
            flush=True)
    memory = {} if args.no_memory else {
        label[k]: peak_memory_mb(k[0], k[1], args)
        for k in names
    }
    profiles = {}
    if args.profile:
        for key in names:
            seconds = op_profile.torch_op_seconds(steps[key], 1)
            profiles[label[key]] = dict(
                op_profile.by_kind(seconds, args.batch),
                top_ops=op_profile.top_ops(seconds, args.batch))
    result = dict(
        settings=dict(
            vars(args),
            torch=torch.__version__,
            cpu=cpu_name(),
            date=time.strftime('%Y-%m-%d')),
        ms_per_image={
            k: statistics.median(v)
            for k, v in times.items()
        },
        rounds_ms=times,
        memory_mb_per_image=memory,
        profiles=profiles)
    result['ratios'] = ratios(result)
    text = markdown(result)
    print(text)
    with open(osp.join(args.out_dir, 'benchmark_training.json'), 'w') as f:
        json.dump(result, f, indent=1)
    with open(osp.join(args.out_dir, 'benchmark_training.md'), 'w') as f:
        f.write(text + '\n')
    return 0


def ratios(result: dict) -> Dict[str, dict]:
    """The issue's ratios against RTMPose-m, where both were measured."""
    out = {}
    t, m = result['ms_per_image'], result['memory_mb_per_image']
    for key, bound in TARGETS.items():
        kind, rest = key.split(' ', 1)
        model = rest.split(' / ')[0]
        table = t if kind == 'time' else m
        if model in table and 'rtmpose-m' in table:
            value = table[model] / table['rtmpose-m']
            out[key] = dict(value=value, bound=bound, met=value <= bound)
    return out


def markdown(result: dict) -> str:
    s = result['settings']
    amp = 'bf16 autocast' if s['amp'] and s['device'] == 'cpu' else (
        'fp16 autocast' if s['amp'] else 'fp32')
    lines = [
        f"Training step (forward, loss, backward, Adam), {s['device']} "
        f"({s['cpu']}), "
        f"{amp}, batch {s['batch']}, {s['threads']} threads, "
        f"{s.get('warmup', 0)} warm-up steps, "
        f"{s['rounds']} interleaved rounds, {s['date']}; peak memory of two "
        f"steps at batch {s['memory_batch']}, each model in its own "
        'process.', '', '| model | ms per image | peak MB per image |',
        '| --- | ---: | ---: |'
    ]
    for name, ms in result['ms_per_image'].items():
        mem = result['memory_mb_per_image'].get(name)
        lines.append(f'| {name} | {ms:.1f} | '
                     f'{"-" if mem is None else f"{mem:.0f}"} |')
    if result['ratios']:
        lines += [
            '', '| ratio | value | target | met |', '| --- | ---: | '
            '--- | --- |'
        ]
        for k, r in result['ratios'].items():
            lines.append(f"| {k} | {r['value']:.2f} | <= {r['bound']} | "
                         f"{'yes' if r['met'] else '**no**'} |")
    if result['profiles']:
        lines += [
            '', '| profile (ms per image) | op time | matrix products | '
            'convolutions | layout glue | other | slowest ops |',
            '| --- |' + ' ---: |' * 5 + ' --- |'
        ]
        for name, p in result['profiles'].items():
            lines.append(
                f"| {name} | {p['total_ms']:.1f} | {p['matrix_ms']:.1f} | "
                f"{p['conv_ms']:.1f} | {p['glue_ms']:.1f} | "
                f"{p['other_ms']:.1f} | {p['top_ops']} |")
    return '\n'.join(lines)


if __name__ == '__main__':
    sys.exit(main())
