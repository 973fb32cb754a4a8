#!/usr/bin/env python
"""CPU latency of GTPT and RTMPose whole-body models in every runtime users
deploy with, in one process.

Runtimes: eager PyTorch fp32 and bf16 (autocast), ``torch.compile`` without
and with inductor freezing, ONNX Runtime, and OpenVINO fp32 and bf16
(reading the same ONNX file). GTPT runs as ``gtpt_mmpose.deploy`` prepares
it; RTMPose-m/l as MMPose builds them (their configs with the
pretrained-backbone download stripped and SyncBN -> BN). Models carry random
weights: timings do not depend on them. Timed is image -> SimCC logits on a
normalised (N, 3, 256, 192) input: no preprocessing, flip test or decoding.

Timings are interleaved: every round times every (model, runtime, batch)
once, in an order reversed every other round, so that the ratios of one run
share the machine's state. A timing is the mean per image of max(2, 10 //
batch) calls after a warm-up call; the report gives medians (and minima)
over rounds.

    python tools/analysis/benchmark.py                     # everything
    python tools/analysis/benchmark.py --variants s --runtimes eager \
        onnxruntime --batch-sizes 1 --rounds 3 --profile
    python tools/analysis/benchmark.py --update-readme README.md

Writes ``benchmark.json`` (settings, GFLOPs, every round, ratios against
the targets, profiles) and ``benchmark.md`` to ``--out-dir``; with
``--update-readme`` the tables also replace the README's benchmark section.
"""
import argparse
import copy
import json
import os
import os.path as osp
import platform
import statistics
import sys
import tempfile
import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch._inductor.config as inductor_config
import torch.nn as nn

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import benchmark_report as report  # noqa: E402 (a sibling script)
import op_profile  # noqa: E402

RUNTIMES = ('eager', 'eager-bf16', 'compile', 'compile-freezing',
            'onnxruntime', 'openvino', 'openvino-bf16')
EXPORTED = ('onnxruntime', 'openvino', 'openvino-bf16')
RTMPOSE_CONFIG = ('wholebody_2d_keypoint/rtmpose/coco-wholebody/'
                  'rtmpose-{}_8xb64-270e_coco-wholebody-256x192.py')
Key = Tuple[str, str, int]  # model, runtime, batch


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        '--variants',
        nargs='+',
        default=['t', 's', 'b'],
        choices=['t', 's', 'b'],
        help='GTPT sizes (whole-body configs)')
    p.add_argument(
        '--runtimes', nargs='+', default=list(RUNTIMES), choices=RUNTIMES)
    p.add_argument('--batch-sizes', nargs='+', type=int, default=[1, 32])
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument(
        '--threads',
        type=int,
        default=2,
        help='threads of every runtime (target machine: 2 cores)')
    p.add_argument(
        '--no-unpruned', action='store_true', help="skip GTPT's unpruned path")
    p.add_argument(
        '--no-rtmpose', action='store_true', help='skip RTMPose-m and -l')
    p.add_argument(
        '--opset',
        type=int,
        default=None,
        help='ONNX opset (default: the export tool\'s)')
    p.add_argument(
        '--profile',
        action='store_true',
        help='also split the time of every model at the smallest batch by '
        'op kind, in every runtime')
    p.add_argument(
        '--settle',
        type=float,
        default=1.0,
        help='seconds of sleep before each runtime\'s timings, so that the '
        'threads of the one before stop spinning')
    p.add_argument('--out-dir', default='work_dirs/benchmark')
    p.add_argument(
        '--update-readme',
        metavar='README',
        help='replace the benchmark section of this file with the tables')
    args = p.parse_args(argv)
    if args.rounds < 1 or args.threads < 1 or min(args.batch_sizes) < 1:
        p.error('--rounds, --threads and --batch-sizes must be positive')
    missing = [
        r for r in args.runtimes
        if r in EXPORTED and r.split('-')[0] not in _installed_runtimes()
    ]
    if missing:
        p.error(f'{", ".join(missing)}: not installed (pip install -r '
                'requirements/deploy.txt)')
    return args


def _installed_runtimes() -> List[str]:
    from gtpt_mmpose.deploy import available_runtimes
    return available_runtimes()


def rtmpose_config(size: str) -> str:
    """MMPose's RTMPose-{size} whole-body 256x192 config, installed copy."""
    import mmpose
    path = osp.join(
        osp.dirname(mmpose.__file__), '.mim', 'configs',
        RTMPOSE_CONFIG.format(size))
    if not osp.isfile(path):
        raise FileNotFoundError(f'MMPose config not found: {path} (is mmpose '
                                'installed with its configs?)')
    return path


def offline_bn(cfg):
    """A model config without pretrained-weight downloads, SyncBN -> BN."""
    if isinstance(cfg, dict):
        out = {
            k: offline_bn(v)
            for k, v in cfg.items()
            if not (k == 'init_cfg' and _is_pretrained(v))
        }
        if out.get('type') == 'SyncBN':
            out['type'] = 'BN'
        return out
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(offline_bn(v) for v in cfg)
    return cfg


def _is_pretrained(init_cfg) -> bool:
    items = init_cfg if isinstance(init_cfg, (list, tuple)) else [init_cfg]
    return any(
        isinstance(c, dict) and c.get('type') == 'Pretrained' for c in items)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what ``platform``
    knows: the benchmarks' figures depend on it (MKL picks its kernels by
    vendor)."""
    from gtpt_mmpose.deploy.cpu_info import cpuinfo_field
    return cpuinfo_field('model name') or platform.processor() \
        or platform.machine()


def build_models(args: argparse.Namespace) -> Dict[str, nn.Module]:
    """name -> pose model in eval mode: GTPT variants, then RTMPose."""
    from mmengine.config import Config
    from mmpose.registry import MODELS
    from mmpose.utils import register_all_modules

    from gtpt_mmpose.utils.config_paths import config_path
    register_all_modules()
    torch.manual_seed(0)
    models = {}
    for arch in args.variants:
        cfg = Config.fromfile(config_path(f'gtpt-{arch}_coco-wholebody'))
        models[f'gtpt-{arch}'] = MODELS.build(cfg.model).eval()
    if not args.no_rtmpose:
        for size in ('m', 'l'):
            cfg = offline_bn(
                Config.fromfile(rtmpose_config(size)).model.to_dict())
            models[f'rtmpose-{size}'] = MODELS.build(cfg).eval()
    return models


def timed_modules(models: Dict[str, nn.Module], unpruned: bool,
                  backend: Optional[str]) -> Dict[str, nn.Module]:
    """name -> image-to-logits module, for the eager (also compile) or the
    export backend: GTPT prepared by ``prepare_for_inference``; as it is
    when ``backend`` is None."""
    from gtpt_mmpose.deploy import ImageToSimCC, prepare_for_inference
    out = {}
    for name, model in models.items():
        if not name.startswith('gtpt'):
            out[name] = ImageToSimCC(model).eval()
            continue
        prepared = model if backend is None else prepare_for_inference(
            copy.deepcopy(model), backend)
        out[name] = ImageToSimCC(prepared).eval()
        if unpruned:
            out[f'{name} unpruned'] = ImageToSimCC(prepared, 'unpruned').eval()
    return out


def gflops(module: nn.Module) -> Dict[str, float]:
    """GFLOPs (multiply-accumulates) of one image, both conventions."""
    from gtpt_mmpose.analysis.flops import count_flops
    with torch.no_grad():
        counts = count_flops(module, (torch.zeros(1, 3, 256, 192), ))
    return dict(
        full=counts['full'] / 1e9,
        authors=counts['authors'] / 1e9,
        params_m=counts['params'] / 1e6)


class Runners:
    """Builds, once, the call that runs a model in a runtime at a batch
    size, and checks its outputs against eager PyTorch."""

    def __init__(self, eager: Dict[str, nn.Module], export: Dict[str,
                                                                 nn.Module],
                 args: argparse.Namespace, workdir: str) -> None:
        self.eager, self.export, self.args = eager, export, args
        self.workdir = workdir
        self.images = {
            n:
            torch.randn(
                n, 3, 256, 192, generator=torch.Generator().manual_seed(n))
            for n in args.batch_sizes
        }
        self.onnx_files: Dict[Tuple[str, int], str] = {}
        self.max_abs_diff: Dict[str, float] = {}

    def make(self, name: str, runtime: str,
             batch: int) -> Callable[[], object]:
        x = self.images[batch]
        if runtime in EXPORTED:
            from gtpt_mmpose.deploy import open_session
            run = open_session(
                self.onnx_file(name, batch), runtime, self.args.threads)
            feed = x.numpy()
            self._check(name, runtime, batch, run(feed))
            return lambda: run(feed)
        module = self.eager[name]
        if runtime == 'compile-freezing':  # graphs of its own, see below
            module = FrozenGraphs(module)
        if runtime.startswith('compile'):
            # one compiled module per batch size, compiled now: inductor's
            # freezing is a global setting, read when the graph compiles
            module = torch.compile(module, dynamic=False)
        autocast = torch.autocast(
            'cpu', torch.bfloat16, enabled=runtime == 'eager-bf16')

        def call():
            with torch.no_grad(), autocast:
                return module(x)

        with inductor_config.patch(freezing=runtime == 'compile-freezing'):
            call()
        self._check(name, runtime, batch, call())
        return call

    def onnx_file(self, name: str, batch: int) -> str:
        from gtpt_mmpose.deploy import FUSED_ATTENTION_OPSET, write_onnx
        if (name, batch) not in self.onnx_files:
            path = osp.join(self.workdir, f'{name.replace(" ", "_")}'
                            f'_b{batch}.onnx')
            write_onnx(self.export[name], self.images[batch], path,
                       self.args.opset or FUSED_ATTENTION_OPSET)
            self.onnx_files[name, batch] = path
        return self.onnx_files[name, batch]

    def _check(self, name: str, runtime: str, batch: int, got) -> None:
        """Largest |runtime - eager fp32| logit difference."""
        with torch.no_grad():
            expected = self.eager[name](self.images[batch])
        diff = max(
            float(np.abs(np.asarray(g, np.float32) - e.float().numpy()).max())
            for g, e in zip((torch.as_tensor(t).float()
                             for t in got), expected))
        key = f'{name} {runtime}'
        self.max_abs_diff[key] = max(diff, self.max_abs_diff.get(key, 0.0))


class FrozenGraphs(nn.Module):
    """``module`` behind a forward of its own, for ``compile-freezing``.

    Dynamo keeps its compiled graphs per code object of the outermost
    forward and reuses one whose guards pass, whatever inductor's settings
    were: compiled after ``compile``, the same model would run its unfrozen
    graph again (RTMPose-m, batch 1: 32 ms either way; 20.5 frozen).
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor):
        return self.module(x)


def time_per_image(call: Callable[[], object], batch: int) -> float:
    """Mean seconds per image over max(2, 10 // batch) calls after a
    warm-up call."""
    call()
    calls = max(2, 10 // batch)
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls / batch


def run_rounds(calls: Dict[Key, Callable[[], object]], rounds: int,
               settle: float) -> Dict[Key, List[float]]:
    """Interleaved rounds; ms per image of every key in every round.

    Keys run grouped by runtime, and each runtime's group starts after
    ``settle`` seconds of sleep: every runtime keeps its default threading
    (spinning idle threads, which is what it does when deployed alone), and
    the pause lets the last runtime's threads stop spinning first.
    """
    keys = sorted(calls, key=lambda k: RUNTIMES.index(k[1]))
    times: Dict[Key, List[float]] = {k: [] for k in keys}
    start = time.perf_counter()
    for r in range(rounds):
        previous = None
        for key in (keys if r % 2 == 0 else keys[::-1]):
            if key[1] != previous:
                time.sleep(settle)
                previous = key[1]
            times[key].append(time_per_image(calls[key], key[2]) * 1e3)
        print(
            f'round {r + 1}/{rounds} done: {len(keys)} timings, '
            f'{(time.perf_counter() - start) / 60:.1f} min so far',
            flush=True)
    return times


def profile_all(runners: Runners, names: List[str],
                args: argparse.Namespace) -> Dict[Key, dict]:
    """--profile: time by op kind of every model in every runtime at the
    smallest batch size."""
    n = min(args.batch_sizes)
    x = runners.images[n]
    calls = max(2, 10 // n)
    profiles = {}
    for name in names:
        for runtime in args.runtimes:
            if runtime == 'onnxruntime':
                seconds = op_profile.onnxruntime_op_seconds(
                    runners.onnx_file(name, n), x.numpy(), args.threads, calls,
                    runners.workdir)
            elif runtime.startswith('openvino'):
                seconds = op_profile.openvino_op_seconds(
                    runners.onnx_file(name, n), x.numpy(), args.threads, calls,
                    runtime)
            else:
                seconds = op_profile.torch_op_seconds(
                    runners.make(name, runtime, n), calls)
            profiles[name, runtime, n] = dict(
                op_profile.by_kind(seconds, n),
                top_ops=op_profile.top_ops(seconds, n))
            print(f'profiled {name} {runtime}', flush=True)
    return profiles


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings('ignore')
    torch.set_num_threads(args.threads)
    # every model, runtime and batch size is its own compiled graph
    torch._dynamo.config.cache_size_limit = 256
    torch._dynamo.config.accumulated_cache_size_limit = 4096
    import gtpt_mmpose  # noqa: F401  (registries)
    os.makedirs(args.out_dir, exist_ok=True)
    models = build_models(args)
    eager = timed_modules(models, not args.no_unpruned, 'eager')
    export = timed_modules(models, not args.no_unpruned, 'export')
    names = list(eager)
    # the work of the model as trained, before the deploy rewrites
    flops = {
        name: gflops(module)
        for name, module in timed_modules(models, not args.no_unpruned,
                                          None).items()
    }
    with tempfile.TemporaryDirectory() as workdir:
        runners = Runners(eager, export, args, workdir)
        calls = {}
        for name in names:
            for runtime in args.runtimes:
                for n in args.batch_sizes:
                    started = time.perf_counter()
                    calls[name, runtime, n] = runners.make(name, runtime, n)
                    print(
                        f'ready: {name} {runtime} batch {n} '
                        f'({time.perf_counter() - started:.0f} s)',
                        flush=True)
        rounds = run_rounds(calls, args.rounds, args.settle)
        profiles = profile_all(runners, names, args) if args.profile else {}
    timings = {
        key: dict(median_ms=statistics.median(v), min_ms=min(v), rounds_ms=v)
        for key, v in rounds.items()
    }
    result = dict(
        settings=dict(
            vars(args),
            torch=torch.__version__,
            cpu=cpu_name(),
            cpu_count=os.cpu_count(),
            date=time.strftime('%Y-%m-%d')),
        gflops=flops,
        max_abs_diff=runners.max_abs_diff,
        timings=[
            dict(model=k[0], runtime=k[1], batch=k[2], **v)
            for k, v in timings.items()
        ],
        profiles=[
            dict(model=k[0], runtime=k[1], batch=k[2], **v)
            for k, v in profiles.items()
        ])
    result['ratios'] = report.ratios(result)
    text = report.markdown(result)
    print(text)
    with open(osp.join(args.out_dir, 'benchmark.json'), 'w') as f:
        json.dump(result, f, indent=1)
    with open(osp.join(args.out_dir, 'benchmark.md'), 'w') as f:
        f.write(text + '\n')
    if args.update_readme:
        report.update_readme(args.update_readme,
                             report.markdown(result, compact=True))
    bad = {
        k: d
        for k, d in runners.max_abs_diff.items()
        if d > (5e-2 if 'bf16' in k else 1e-3)
    }
    if bad:
        print(f'WARNING: outputs differ from eager fp32: {bad}')
    print(f'wrote {args.out_dir}/benchmark.json and benchmark.md')
    return 0


if __name__ == '__main__':
    sys.exit(main())
