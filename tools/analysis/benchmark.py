#!/usr/bin/env python
"""CPU latency of GTPT-T/S/B and RTMPose-m/l in every runtime users deploy
with, in one process.

Runtimes: eager PyTorch fp32 and bf16 (autocast), ``torch.compile`` without
and with inductor's freezing, ONNX Runtime, and OpenVINO fp32 and bf16
(``gtpt_mmpose/analysis/runners.py``). Models carry random weights; timed is
image -> SimCC logits. Every round times every (model, runtime, batch size)
once, in an order reversed every other round, so that the ratios of one run
share the machine's state; the report gives medians over rounds and the
ratios of medians.

    python tools/analysis/benchmark.py --profile \\
        --docs docs/benchmarks.md --readme README.md     # the published run
    python tools/analysis/benchmark.py --variants s --runtimes eager \\
        onnxruntime --batch-sizes 1 --rounds 3
    python tools/analysis/benchmark.py --models gtpt-s_mpii gtpt-s \\
        rtmpose-m --runtimes eager onnxruntime openvino --batch-sizes 1
    python tools/analysis/benchmark.py --variants t --no-rtmpose \\
        --runtimes eager eager-bf16 openvino-bf16 --rounds 1 \\
        --bf16-accuracy configs/gtpt-t_coco-wholebody_mini.py CKPT

Writes ``benchmark.json`` (settings, machine, every round, ratios,
profiles) and ``benchmark.md`` to ``--out-dir``; ``--docs`` also rewrites
the inference section of ``docs/benchmarks.md``, ``--readme`` the README's
models table (between ``<!-- generated:models -->`` markers).
"""
import argparse
import json
import os
import os.path as osp
import sys
import tempfile
import time
import warnings
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from gtpt_mmpose.analysis import model_zoo, op_profile, report, runners
from gtpt_mmpose.analysis.flops import count_flops
from gtpt_mmpose.analysis.runtime_accuracy import RUNTIMES as ACCURACY
from gtpt_mmpose.analysis.runtime_accuracy import runtime_accuracy
from gtpt_mmpose.analysis.synthetic import random_images
from gtpt_mmpose.analysis.timing import (calls_per_timing, interleaved_rounds,
                                         machine, summary, time_per_image)

SCRIPT = 'tools/analysis/benchmark.py'
OUTPUTS = ('out_dir', 'docs', 'readme')
Key = Tuple[str, str, int]  # model, runtime, batch


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        '--variants',
        nargs='+',
        default=['t', 's', 'b'],
        choices=['t', 's', 'b'],
        help='GTPT sizes')
    p.add_argument(
        '--models',
        nargs='+',
        metavar='MODEL',
        help='instead of --variants and RTMPose-m/l: any of '
        f'{", ".join(model_zoo.MODELS)} or a config name of this package '
        '(e.g. gtpt-s_mpii), each timed at its own input size')
    p.add_argument(
        '--runtimes',
        nargs='+',
        default=list(runners.RUNTIMES),
        choices=runners.RUNTIMES)
    p.add_argument('--batch-sizes', nargs='+', type=int, default=[1, 32])
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument(
        '--threads', type=int, default=2, help='threads of every runtime')
    p.add_argument(
        '--no-unpruned', action='store_true', help="skip GTPT's unpruned path")
    p.add_argument(
        '--no-rtmpose', action='store_true', help='skip RTMPose-m and -l')
    p.add_argument(
        '--opset', type=int, help="ONNX opset (default: the export's)")
    p.add_argument(
        '--profile',
        action='store_true',
        help='also split the time of every model at the smallest batch by '
        'op kind, in every runtime')
    p.add_argument(
        '--bf16-accuracy',
        nargs=2,
        metavar=('CONFIG', 'CHECKPOINT'),
        help='also run the config\'s test set with these trained weights in '
        'each of --runtimes that is eager or exported, against eager fp32')
    p.add_argument(
        '--settle',
        type=float,
        default=1.0,
        help='seconds of sleep before each runtime\'s timings, so that the '
        'threads of the one before stop spinning')
    p.add_argument('--out-dir', default='work_dirs/benchmark')
    p.add_argument(
        '--docs',
        metavar='BENCHMARKS_MD',
        help='rewrite the inference section of this file')
    p.add_argument(
        '--readme',
        metavar='README',
        help='rewrite the models table of this file')
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.threads < 1 or min(args.batch_sizes) < 1:
        parser.error('--rounds, --threads and --batch-sizes must be positive')
    from gtpt_mmpose.deploy import available_runtimes
    missing = [
        r for r in args.runtimes
        if r in runners.EXPORTED and r not in available_runtimes()
    ]
    if missing:
        parser.error(f'{", ".join(missing)}: not installed (pip install -r '
                     'requirements/deploy.txt)')
    for path in [args.docs, args.readme] + list(args.bf16_accuracy or []):
        if path and not osp.isfile(path):
            parser.error(f'no such file: {path}')
    if args.bf16_accuracy and not set(args.runtimes) & set(ACCURACY):
        parser.error(f'--bf16-accuracy needs one of {ACCURACY} in --runtimes')
    for path, name in ((args.docs, 'inference'), (args.readme, 'models')):
        begin, end = report.markers(name)
        if path and not (begin in open(path).read()
                         and end in open(path).read()):
            parser.error(f'{path} has no {begin} ... {end} section')
    for name in args.models or ():
        try:
            model_zoo.config_file(name)
        except (ValueError, FileNotFoundError) as exc:
            parser.error(str(exc))
    args.command = report.command_line(SCRIPT, parser, args, OUTPUTS)
    return args


def model_names(args: argparse.Namespace) -> Tuple[str, ...]:
    if args.models:
        return tuple(dict.fromkeys(args.models))
    gtpt = tuple(f'gtpt-{v}' for v in args.variants)
    return gtpt + (() if args.no_rtmpose else model_zoo.RTMPOSE_MODELS)


def timed_names(args: argparse.Namespace) -> Dict[str, Tuple[str, str]]:
    """What is timed -> (model, GTPT's pruning path)."""
    out = {}
    for name in model_names(args):
        out[name] = (name, 'pruned')
        if model_zoo.is_gtpt(name) and not args.no_unpruned:
            out[f'{name} unpruned'] = (name, 'unpruned')
    return out


def model_info(name: str, module: nn.Module) -> dict:
    """Parameters, GFLOPs in both conventions, input size, config and
    published AP of the model ``name`` (without `` unpruned``)."""
    shape = model_zoo.input_shape(name)
    counts = count_flops(module, (random_images(1, shape=shape), ))
    config = osp.basename(model_zoo.config_file(name))
    return dict(
        params_m=counts['params'] / 1e6,
        gflops=counts['authors'] / 1e9,
        gflops_full=counts['full'] / 1e9,
        input_hw=list(shape[1:]),
        config=f'`configs/{config}`'
        if model_zoo.is_gtpt(name) else f'MMPose `{config[:-3]}`',
        published_ap=model_zoo.published_ap(name))


class Calls:
    """Builds each runtime's call of each timed module once, and records
    the largest logit difference of each from eager fp32."""

    def __init__(self, models: Dict[str, nn.Module], args: argparse.Namespace,
                 workdir: str) -> None:
        self.models, self.args, self.workdir = models, args, workdir
        self.names = timed_names(args)
        self.eager = {
            t: runners.image_to_logits(models[m], 'eager', path)
            for t, (m, path) in self.names.items()
        }
        self.shapes = {
            t: model_zoo.input_shape(m)
            for t, (m, _) in self.names.items()
        }
        self._images: Dict[Tuple[Tuple[int, ...], int], torch.Tensor] = {}
        self.onnx_files: Dict[Tuple[str, int], str] = {}
        self.max_abs_diff: Dict[str, float] = {}

    def image(self, name: str, batch: int) -> torch.Tensor:
        """The random images timed name is given: its input size."""
        key = (self.shapes[name], batch)
        if key not in self._images:
            self._images[key] = random_images(batch, shape=key[0])
        return self._images[key]

    def make(self, name: str, runtime: str,
             batch: int) -> Callable[[], object]:
        image = self.image(name, batch)
        onnx_file = self.onnx_file(
            name, batch) if (runtime in runners.EXPORTED) else None
        call = runners.runtime_call(runtime, image, self.eager[name],
                                    onnx_file, self.args.threads)
        with torch.no_grad():
            expected = self.eager[name](image)
        diff = max(
            float(np.abs(np.asarray(g, np.float32) - e.numpy()).max())
            for g, e in zip((torch.as_tensor(o).float()
                             for o in call()), expected))
        key = f'{name} {runtime}'
        self.max_abs_diff[key] = max(diff, self.max_abs_diff.get(key, 0.0))
        return call

    def onnx_file(self, name: str, batch: int) -> str:
        from gtpt_mmpose.deploy import FUSED_ATTENTION_OPSET, write_onnx
        if (name, batch) not in self.onnx_files:
            model, path = self.names[name]
            module = runners.image_to_logits(self.models[model], 'export',
                                             path)
            out = osp.join(self.workdir,
                           f'{name.replace(" ", "_")}_b{batch}.onnx')
            write_onnx(module, self.image(name, batch), out, self.args.opset
                       or FUSED_ATTENTION_OPSET)
            self.onnx_files[name, batch] = out
        return self.onnx_files[name, batch]


def profile_all(calls: Calls, made: Dict[Key, Callable],
                args: argparse.Namespace) -> list:
    """--profile: op time by kind of every model in every runtime at the
    smallest batch size."""
    n = min(args.batch_sizes)
    count = calls_per_timing(n)
    profiles = []
    for name in calls.names:
        image = calls.image(name, n).numpy()
        for runtime in args.runtimes:
            if runtime == 'onnxruntime':
                seconds = op_profile.onnxruntime_op_seconds(
                    calls.onnx_file(name, n), image, args.threads, count,
                    calls.workdir)
            elif runtime in runners.EXPORTED:
                seconds = op_profile.openvino_op_seconds(
                    calls.onnx_file(name, n), image, args.threads, count,
                    runtime)
            else:
                seconds = op_profile.torch_op_seconds(made[name, runtime, n],
                                                      count)
            profiles.append(
                dict(
                    model=name,
                    runtime=runtime,
                    batch=n,
                    **op_profile.by_kind(seconds, n),
                    top_ops=op_profile.top_ops(seconds, n)))
            print(f'profiled {name} {runtime}', flush=True)
    return profiles


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings('ignore')
    torch.set_num_threads(args.threads)
    # every model, runtime and batch size is a compiled graph of its own
    torch._dynamo.config.cache_size_limit = 256
    torch._dynamo.config.accumulated_cache_size_limit = 4096
    os.makedirs(args.out_dir, exist_ok=True)
    models = {name: model_zoo.build_model(name) for name in model_names(args)}
    info = {
        t: model_info(m, runners.image_to_logits(models[m], None, path))
        for t, (m, path) in timed_names(args).items()
    }
    order = list(runners.RUNTIMES).index
    with tempfile.TemporaryDirectory() as workdir:
        calls = Calls(models, args, workdir)
        made = {}
        for runtime in sorted(args.runtimes, key=order):
            for name in calls.names:
                for n in args.batch_sizes:
                    started = time.perf_counter()
                    made[name, runtime, n] = calls.make(name, runtime, n)
                    print(
                        f'ready: {name} {runtime} batch {n} '
                        f'({time.perf_counter() - started:.0f} s)',
                        flush=True)
        timers = {
            key: (lambda call=call, n=key[2]: time_per_image(call, n))
            for key, call in made.items()
        }
        rounds = interleaved_rounds(
            timers,
            args.rounds,
            group=lambda key: key[1],
            settle=args.settle,
            log=lambda line: print(line, flush=True))
        profiles = profile_all(calls, made, args) if args.profile else []
    accuracy = runtime_accuracy(*args.bf16_accuracy,
                                [r for r in args.runtimes if r in ACCURACY],
                                args.threads) if args.bf16_accuracy else None
    settings = {k: v for k, v in vars(args).items() if k not in OUTPUTS}
    result = dict(
        command=settings.pop('command'),
        settings=settings,
        machine=machine(args.threads, osp.dirname(osp.abspath(__file__))),
        models=info,
        max_abs_diff=calls.max_abs_diff,
        timings=[
            dict(model=k[0], runtime=k[1], batch=k[2], **summary(v))
            for k, v in rounds.items()
        ],
        profiles=profiles,
        accuracy=accuracy)
    result['ratios'] = report.ratios(result)
    text = report.inference_markdown(result)
    print(text)
    with open(osp.join(args.out_dir, 'benchmark.json'), 'w') as f:
        json.dump(result, f, indent=1)
    with open(osp.join(args.out_dir, 'benchmark.md'), 'w') as f:
        f.write(text + '\n')
    if args.docs:
        report.replace_generated(args.docs, 'inference', text)
    if args.readme:
        report.replace_generated(args.readme, 'models',
                                 report.models_table(result))
    bad = {
        k: d
        for k, d in calls.max_abs_diff.items()
        if d > (5e-2 if 'bf16' in k else 1e-3)
    }
    if bad:
        print(f'WARNING: outputs differ from eager fp32: {bad}')
    print(f'wrote {args.out_dir}/benchmark.json and benchmark.md')
    return 0


if __name__ == '__main__':
    sys.exit(main())
