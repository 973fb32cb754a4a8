#!/usr/bin/env python
"""Training-step time and peak memory of GTPT and RTMPose whole-body models.

A step is what MMEngine runs per iteration without data loading: forward,
the loss, backward and an Adam step, on a synthetic batch with random
weights (``gtpt_mmpose/analysis/train_step.py``). GTPT trains with its
Global Perceived loss (pruned and unpruned passes) and, as ``gtpt-s
pruned-only``, with the pruned pass alone; RTMPose with its own config's
loss. After ``--warmup`` untimed steps of every model (a process's first
steps cost up to 2.5x a steady one, docs/design.md §6), times are
interleaved
over rounds in one process; peak memory is measured for each model in a
process of its own, the honest way to read a peak on a CPU.

    python tools/analysis/benchmark_training.py --profile \\
        --docs docs/benchmarks.md                    # the published run
    python tools/analysis/benchmark_training.py --amp  # bf16 on a CPU
    python tools/analysis/benchmark_training.py --device cuda --amp

Writes ``benchmark_training.json`` and ``.md`` to ``--out-dir``; ``--docs``
also rewrites the training section of ``docs/benchmarks.md``.
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
import warnings
from typing import Dict, List, Optional, Sequence

import torch

from gtpt_mmpose.analysis import model_zoo, op_profile, report
from gtpt_mmpose.analysis.timing import (interleaved, interleaved_rounds,
                                         machine, time_per_image)
from gtpt_mmpose.analysis.train_step import TrainStep

SCRIPT = 'tools/analysis/benchmark_training.py'
OUTPUTS = ('out_dir', 'docs')
MODELS = ('gtpt-t', 'gtpt-s', 'gtpt-b', 'gtpt-s pruned-only', 'rtmpose-m',
          'rtmpose-l')


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
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
        help='autocast: bf16 on a CPU, fp16 with a loss scaler on a GPU')
    p.add_argument('--no-memory', action='store_true')
    p.add_argument(
        '--profile',
        action='store_true',
        help='split one step of each model by op kind')
    p.add_argument('--out-dir', default='work_dirs/benchmark')
    p.add_argument(
        '--docs',
        metavar='BENCHMARKS_MD',
        help='rewrite the training section of this file')
    p.add_argument('--memory-child', help=argparse.SUPPRESS)
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if min(args.batch, args.memory_batch, args.rounds, args.threads) < 1:
        parser.error('--batch, --memory-batch, --rounds and --threads must '
                     'be positive')
    if args.warmup < 0:
        parser.error('--warmup must not be negative')
    if args.docs:
        begin, end = report.markers('training')
        if not osp.isfile(args.docs):
            parser.error(f'no such file: {args.docs}')
        text = open(args.docs).read()
        if begin not in text or end not in text:
            parser.error(f'{args.docs} has no {begin} ... {end} section')
    args.command = report.command_line(SCRIPT, parser, args, OUTPUTS)
    return args


def build(name: str, device: str) -> torch.nn.Module:
    """A model by benchmark name, in training mode on ``device``."""
    model = model_zoo.build_model(
        name.split()[0],
        device,
        unpruned_pass=False if 'pruned-only' in name else None)
    return model.train()


def peak_memory_mb(name: str, args: argparse.Namespace) -> float:
    """Peak training memory (MB) per image of two steps at --memory-batch,
    measured in a process of its own."""
    cmd = [
        sys.executable, __file__, '--memory-child', name, '--memory-batch',
        str(args.memory_batch), '--threads',
        str(args.threads), '--device', args.device
    ] + (['--amp'] if args.amp else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def memory_child(args: argparse.Namespace) -> None:
    """In the child: print the peak memory that two steps add, per image."""
    torch.set_num_threads(args.threads)
    step = TrainStep(
        build(args.memory_child, args.device), args.memory_batch, args.device,
        args.amp)
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
    torch.set_num_threads(args.threads)
    os.makedirs(args.out_dir, exist_ok=True)
    steps = {
        name:
        TrainStep(build(name, args.device), args.batch, args.device, args.amp)
        for name in args.models
    }
    start = time.perf_counter()
    for w in range(args.warmup):
        for name in interleaved(args.models, w):
            steps[name]()
    print(
        f'{args.warmup} warm-up steps of every model done, '
        f'{(time.perf_counter() - start) / 60:.1f} min',
        flush=True)
    timers = {
        name: (lambda step=step: time_per_image(step, args.batch, calls=2))
        for name, step in steps.items()
    }
    rounds: Dict[str, List[float]] = interleaved_rounds(
        timers, args.rounds, log=lambda line: print(line, flush=True))
    memory = {} if args.no_memory else {
        name: peak_memory_mb(name, args)
        for name in args.models
    }
    profiles = []
    if args.profile:
        for name, step in steps.items():
            seconds = op_profile.torch_op_seconds(step, 1)
            profiles.append(
                dict(
                    model=name,
                    runtime=args.device,
                    batch=args.batch,
                    **op_profile.by_kind(seconds, args.batch),
                    top_ops=op_profile.top_ops(seconds, args.batch)))
    settings = {k: v for k, v in vars(args).items() if k not in OUTPUTS}
    settings.pop('memory_child')
    result = dict(
        command=settings.pop('command'),
        settings=settings,
        machine=machine(args.threads, osp.dirname(osp.abspath(__file__)), ()),
        rounds_ms=rounds,
        memory_mb_per_image=memory,
        profiles=profiles)
    result['ratios'] = report.training_ratios(result)
    text = report.training_markdown(result)
    print(text)
    with open(osp.join(args.out_dir, 'benchmark_training.json'), 'w') as f:
        json.dump(result, f, indent=1)
    with open(osp.join(args.out_dir, 'benchmark_training.md'), 'w') as f:
        f.write(text + '\n')
    if args.docs:
        report.replace_generated(args.docs, 'training', text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
