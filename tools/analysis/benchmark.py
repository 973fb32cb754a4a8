#!/usr/bin/env python
"""Speed of GTPT against MMPose's RTMPose, measured side by side in one process.

    python tools/analysis/benchmark.py [--rounds 5] [--variants t s b] [--backends torch ort]
                                       [--batch-sizes 1 32] [--threads 2] [--out-dir work_dirs/benchmark]

Whole-body models at 256x192 with random weights: GTPT-T/S/B (pruned, as at inference),
GTPT-S on the unpruned path, RTMPose-m and -l built from MMPose's own configs. Every round times
every (model, backend, batch size) once, interleaved, so drifts of a noisy machine hit all alike;
the table gives the median and the minimum over rounds of the time per image, the GFLOPs
(authors' convention, gtpt_mmpose.utils.flops) and the ratios the project tracks. Writes
benchmark.json and latency_vs_gflops.png to --out-dir.
"""
import argparse
import json
import os
import os.path as osp
import statistics
import sys
import tempfile
import time
from typing import Callable, Dict, List

import numpy as np
import torch
import torch.nn as nn

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
RTMPOSE = 'wholebody_2d_keypoint/rtmpose/coco-wholebody/rtmpose-{}_8xb64-270e_coco-wholebody-256x192.py'


class Logits(nn.Module):
    """image -> (simcc_x, simcc_y) of a top-down model; GTPT optionally on its unpruned path."""

    def __init__(self, model: nn.Module, unpruned: bool = False) -> None:
        super().__init__()
        self.model, self.unpruned = model, unpruned

    def forward(self, x: torch.Tensor):
        if self.unpruned:
            bb = self.model.backbone
            return self.model.head.classify(bb.encode(bb.tokenize(x), bb.plans['unpruned']))
        return self.model.head.forward(self.model.extract_feat(x))


def build_models(variants: List[str]) -> Dict[str, nn.Module]:
    import mmpose
    from mmengine.config import Config
    from mmpose.registry import MODELS

    models = {}
    for v in variants:
        cfg = Config.fromfile(osp.join(REPO, 'configs', f'gtpt-{v}_coco-wholebody.py'))
        models[f'GTPT-{v.upper()}'] = Logits(MODELS.build(cfg.model))
        if v == 's':
            models['GTPT-S unpruned'] = Logits(MODELS.build(cfg.model), unpruned=True)
    for size in ('m', 'l'):
        cfg = Config.fromfile(osp.join(osp.dirname(mmpose.__file__), '.mim', 'configs', RTMPOSE.format(size)))
        cfg.model.backbone.init_cfg = None       # no download: random weights
        cfg.model.backbone.norm_cfg = dict(type='BN')  # SyncBN needs a process group
        models[f'RTMPose-{size}'] = Logits(MODELS.build(cfg.model))
    return {name: m.eval() for name, m in models.items()}


def gflops(model: nn.Module) -> float:
    from gtpt_mmpose.utils.flops import count_flops
    with torch.no_grad():
        return count_flops(model, (torch.randn(1, 3, 256, 192),))['authors'] / 1e9


def ort_runner(model: nn.Module, batch: int, threads: int, work: str) -> Callable[[np.ndarray], None]:
    import onnxruntime as ort
    path = osp.join(work, f'{id(model)}_{batch}.onnx')
    with torch.no_grad():
        torch.onnx.export(model, (torch.randn(batch, 3, 256, 192),), path, input_names=['input'],
                          opset_version=17, dynamo=False)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    session = ort.InferenceSession(path, opts, providers=['CPUExecutionProvider'])
    return lambda x: session.run(None, {'input': x})


def time_per_image(fn: Callable, x, batch: int, min_seconds: float = 0.5) -> float:
    """Seconds per image: repeat ``fn(x)`` until ``min_seconds`` have passed (at least twice)."""
    fn(x)  # warm-up
    runs, start = 0, time.perf_counter()
    while runs < 2 or time.perf_counter() - start < min_seconds:
        fn(x)
        runs += 1
    return (time.perf_counter() - start) / runs / batch


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--variants', nargs='+', default=['t', 's', 'b'], choices=['t', 's', 'b'])
    p.add_argument('--backends', nargs='+', default=['torch', 'ort'], choices=['torch', 'ort'])
    p.add_argument('--batch-sizes', type=int, nargs='+', default=[1, 32])
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--min-seconds', type=float, default=0.5, help='timing window per measurement')
    p.add_argument('--out-dir', default=osp.join(REPO, 'work_dirs', 'benchmark'))
    args = p.parse_args(argv)

    import gtpt_mmpose  # noqa: F401
    from mmpose.utils import register_all_modules
    register_all_modules()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    os.makedirs(args.out_dir, exist_ok=True)
    models = build_models(args.variants)
    flops = {name: gflops(m) for name, m in models.items()}
    runners = {}
    with tempfile.TemporaryDirectory() as work:
        for name, model in models.items():
            for batch in args.batch_sizes:
                x = torch.randn(batch, 3, 256, 192)
                if 'torch' in args.backends:
                    runners[name, 'torch', batch] = (lambda t, m=model: m(t), x)
                if 'ort' in args.backends:
                    runners[name, 'ort', batch] = (ort_runner(model, batch, args.threads, work), x.numpy())
        times: Dict[tuple, List[float]] = {key: [] for key in runners}
        with torch.no_grad():
            for r in range(args.rounds):
                for key, (fn, x) in runners.items():
                    times[key].append(time_per_image(fn, x, key[2], args.min_seconds))
                print(f'round {r + 1}/{args.rounds} done', flush=True)

    rows = [dict(model=n, backend=b, batch=bs, gflops=flops[n], median_ms=1e3 * statistics.median(t),
                 min_ms=1e3 * min(t), rounds=len(t)) for (n, b, bs), t in times.items()]
    print(f'\n{"model":<16}{"backend":<8}{"batch":>6}{"GFLOPs":>8}{"median ms/img":>15}{"min ms/img":>12}')
    for row in rows:
        print(f'{row["model"]:<16}{row["backend"]:<8}{row["batch"]:>6}{row["gflops"]:>8.3f}'
              f'{row["median_ms"]:>15.2f}{row["min_ms"]:>12.2f}')
    med = {(r['model'], r['backend'], r['batch']): r['median_ms'] for r in rows}
    ratios = {}
    for b in args.backends:
        for bs in args.batch_sizes:
            pairs = {f'GTPT-S / RTMPose-m ({b}, batch {bs})': ('GTPT-S', 'RTMPose-m'),
                     f'GTPT-S pruned / unpruned ({b}, batch {bs})': ('GTPT-S', 'GTPT-S unpruned')}
            for label, (a, c) in pairs.items():
                if (a, b, bs) in med and (c, b, bs) in med:
                    ratios[label] = med[a, b, bs] / med[c, b, bs]
        if len(args.batch_sizes) > 1:
            lo, hi = min(args.batch_sizes), max(args.batch_sizes)
            for name in models:
                if (name, b, lo) in med:
                    ratios[f'{name} batch {hi} / batch {lo} per image ({b})'] = med[name, b, hi] / med[name, b, lo]
    print('\nratios of medians:')
    for label, value in ratios.items():
        print(f'  {label}: {value:.2f}')
    with open(osp.join(args.out_dir, 'benchmark.json'), 'w') as f:
        json.dump(dict(threads=args.threads, rounds=args.rounds, rows=rows, ratios=ratios), f, indent=1)
    plot(rows, osp.join(args.out_dir, 'latency_vs_gflops.png'), min(args.batch_sizes))
    print(f'\n-> {args.out_dir}/benchmark.json, latency_vs_gflops.png')
    return 0


def plot(rows: List[dict], out: str, batch: int) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for backend, marker in (('torch', 'o'), ('ort', 's')):
        pts = [r for r in rows if r['backend'] == backend and r['batch'] == batch]
        ax.scatter([r['gflops'] for r in pts], [r['median_ms'] for r in pts], marker=marker, label=backend)
        for r in pts:
            ax.annotate(r['model'], (r['gflops'], r['median_ms']), fontsize=7, xytext=(3, 3), textcoords='offset points')
    ax.set_xlabel('GFLOPs (authors\' convention)')
    ax.set_ylabel(f'median latency, batch {batch} (ms)')
    ax.set_title('whole-body 256x192 on CPU')
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


if __name__ == '__main__':
    sys.exit(main())
