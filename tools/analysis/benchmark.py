#!/usr/bin/env python
"""CPU latency and throughput of GTPT and RTMPose whole-body models, eager PyTorch and ONNX Runtime.

Everything runs in one process, in interleaved rounds (the order reversed every other round), so
that ratios taken from one run share the machine's state. Each round times ``max(2, 10 // batch)``
calls after one warm-up call and keeps their mean per image; the table gives the median and the
minimum over rounds. Timed is the image -> SimCC logits path (backbone + head.forward; no data
preprocessing, flip test or decoding) on a normalised (N, 3, 256, 192) input. Models carry random
weights (timings do not depend on them): GTPT from this package's configs, RTMPose-m/l from
MMPose's own configs with the pretrained-backbone download stripped and SyncBN replaced by BN.

    python tools/analysis/benchmark.py                              # all variants, 5 rounds
    python tools/analysis/benchmark.py --variants s --rounds 3 --backends eager --no-rtmpose
    python tools/analysis/benchmark.py --variants s --no-unpruned --profile   # where the time goes

``--profile`` then runs every model at the smallest batch once more under the torch profiler or
ONNX Runtime's profiler and splits the per-image op time into matrix products (linear layers and
attention), convolutions and everything else, with the GFLOPs per second the first two reach, and
times GTPT's tokenizer alone in eager PyTorch (the part pruning cannot shorten).
Writes ``benchmark.json`` (settings, GFLOPs, every round's time, ratios, profiles) and
``latency_vs_gflops.png`` to ``--out-dir``.
"""
import argparse
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
import torch.nn as nn

# op kinds of --profile, by torch / ONNX Runtime op name; the rest is 'other' (copies, norms, ...)
MATRIX_OPS = frozenset({
    'aten::addmm', 'aten::mm', 'aten::bmm', 'aten::baddbmm',
    'aten::_scaled_dot_product_flash_attention_for_cpu', 'Gemm', 'MatMul',
    'FusedMatMul', 'FusedGemm'
})
CONV_OPS = frozenset({
    'aten::mkldnn_convolution', 'aten::_slow_conv2d_forward',
    'aten::thnn_conv2d', 'Conv', 'FusedConv'
})
TARGETS = (  # (ratio key, bound) from issue 4, checked when measured
    ('gtpt-s / rtmpose-m', 0.8), ('pruned / unpruned', 0.6),
    ('batch-32 / batch-1', 1.0))
RTMPOSE_CONFIG = ('wholebody_2d_keypoint/rtmpose/coco-wholebody/'
                  'rtmpose-{}_8xb64-270e_coco-wholebody-256x192.py')


class ImageToLogits(nn.Module):
    """A top-down model's image (N, 3, H, W) -> (pred_x (N, K, Wx), pred_y (N, K, Wy)) path.

    Args:
        pose_model (nn.Module): An MMPose ``TopdownPoseEstimator`` in eval mode.
        plan (str, optional): For GTPT, run this pruning plan ('unpruned') instead of the eval
            forward (the pruned plan).
    """

    def __init__(self,
                 pose_model: nn.Module,
                 plan: Optional[str] = None) -> None:
        super().__init__()
        self.pose_model, self.plan = pose_model, plan

    def forward(self,
                image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        m = self.pose_model
        if self.plan is None:
            return m.head.forward(m.extract_feat(image))
        tokens = m.backbone.encode(
            m.backbone.tokenize(image), m.backbone.plans[self.plan])
        return m.head.forward((tokens, ))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        '--variants',
        nargs='+',
        default=['t', 's', 'b'],
        choices=['t', 's', 'b'],
        help='GTPT sizes (whole-body configs)')
    p.add_argument(
        '--backends',
        nargs='+',
        default=['eager', 'ort'],
        choices=['eager', 'ort'])
    p.add_argument('--batch-sizes', nargs='+', type=int, default=[1, 32])
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument(
        '--threads',
        type=int,
        default=2,
        help=
        'torch.set_num_threads and ONNX Runtime intra_op_num_threads (target: 2 cores)'
    )
    p.add_argument(
        '--no-unpruned', action='store_true', help="skip GTPT's unpruned path")
    p.add_argument(
        '--no-rtmpose', action='store_true', help='skip RTMPose-m and -l')
    p.add_argument('--opset', type=int, default=17)
    p.add_argument(
        '--profile',
        action='store_true',
        help='also split each model\'s time at the smallest batch by op kind')
    p.add_argument('--out-dir', default='work_dirs/benchmark')
    args = p.parse_args(argv)
    if args.rounds < 1 or args.threads < 1 or min(args.batch_sizes) < 1:
        p.error('--rounds, --threads and --batch-sizes must be positive')
    return args


def rtmpose_config(size: str) -> str:
    """Path of MMPose's RTMPose-{size} whole-body 256x192 config in the installed package."""
    import mmpose
    path = osp.join(
        osp.dirname(mmpose.__file__), '.mim', 'configs',
        RTMPOSE_CONFIG.format(size))
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'MMPose config not found: {path} (is mmpose installed with its configs?)'
        )
    return path


def offline_bn(cfg):
    """Copy of a model config without pretrained-weight downloads and with SyncBN -> BN."""
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


def build_models(args: argparse.Namespace) -> Dict[str, nn.Module]:
    """name -> ImageToLogits in eval mode, GTPT pruned (and unpruned), then RTMPose."""
    from mmengine.config import Config
    from mmpose.registry import MODELS
    from mmpose.utils import register_all_modules

    import gtpt_mmpose  # noqa: F401  (registers GTPT)
    from gtpt_mmpose.utils.config_paths import config_path
    register_all_modules()
    torch.manual_seed(0)
    models = {}
    for arch in args.variants:
        pose = MODELS.build(
            Config.fromfile(config_path(f'gtpt-{arch}_coco-wholebody')).model)
        models[f'gtpt-{arch}'] = ImageToLogits(pose)
        if not args.no_unpruned:
            models[f'gtpt-{arch} unpruned'] = ImageToLogits(
                pose, plan='unpruned')
    if not args.no_rtmpose:
        for size in ('m', 'l'):
            cfg = offline_bn(
                Config.fromfile(rtmpose_config(size)).model.to_dict())
            models[f'rtmpose-{size}'] = ImageToLogits(MODELS.build(cfg))
    # the wrappers too: torch.onnx.export restores the wrapper's mode on all submodules afterwards
    return {name: m.eval() for name, m in models.items()}


def gflops(model: nn.Module) -> Dict[str, float]:
    """GFLOPs (multiply-accumulates) of one 256x192 image, both conventions of count_flops."""
    from gtpt_mmpose.utils.flops import count_flops
    with torch.no_grad():
        counts = count_flops(model, (torch.zeros(1, 3, 256, 192), ))
    return dict(
        full=counts['full'] / 1e9,
        authors=counts['authors'] / 1e9,
        params_m=counts['params'] / 1e6)


def ort_session(path: str, threads: int, profile_prefix: Optional[str] = None):
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    if profile_prefix:
        options.enable_profiling, options.profile_file_prefix = True, profile_prefix
    return ort.InferenceSession(
        path, options, providers=['CPUExecutionProvider'])


def ort_runner(model: nn.Module, image: torch.Tensor, workdir: str,
               threads: int,
               opset: int) -> Tuple[Callable[[], object], float, str]:
    """Export with a static batch, open an ONNX Runtime session; returns the call, the largest
    |ONNX Runtime - torch| logit difference on ``image`` and the ONNX file."""
    path = osp.join(workdir, f'model_{len(os.listdir(workdir))}.onnx')
    torch.onnx.export(
        model, (image, ),
        path,
        input_names=['input'],
        output_names=['pred_x', 'pred_y'],
        opset_version=opset,
        dynamo=False)
    session = ort_session(path, threads)
    feed = {'input': image.numpy()}
    with torch.no_grad():
        expected = model(image)
    diff = max(
        float(np.abs(g - e.numpy()).max())
        for g, e in zip(session.run(None, feed), expected))
    return (lambda: session.run(None, feed)), diff, path


def eager_op_seconds(call: Callable[[], object],
                     calls: int) -> Dict[str, float]:
    """Self CPU seconds per call of every torch op over ``calls`` calls (one warm-up first)."""
    from torch.profiler import ProfilerActivity, profile
    call()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            call()
    return {
        e.key: e.self_cpu_time_total * 1e-6 / calls
        for e in prof.key_averages()
    }


def ort_op_seconds(path: str, image: torch.Tensor, threads: int, calls: int,
                   workdir: str) -> Dict[str, float]:
    """Kernel seconds per call of every ONNX Runtime op type over ``calls`` runs after a warm-up."""
    session = ort_session(
        path, threads, profile_prefix=osp.join(workdir, 'ort_profile'))
    feed = {'input': image.numpy()}
    for _ in range(calls + 1):
        session.run(None, feed)
    with open(session.end_profiling()) as f:
        events = json.load(f)
    runs = sorted(
        e['ts'] for e in events
        if e.get('cat') == 'Session' and e.get('name') == 'model_run')
    seconds: Dict[str, float] = {}
    for e in events:  # node events of the runs after the first (warm-up) one
        if e.get('cat') == 'Node' and e['name'].endswith(
                '_kernel_time') and e['ts'] >= runs[1]:
            op = e['args']['op_name']
            seconds[op] = seconds.get(op, 0.0) + e['dur'] * 1e-6 / calls
    return seconds


def op_kinds(seconds: Dict[str, float], batch: int,
             gflops_full: float) -> Dict[str, float]:
    """ms per image in matrix products, convolutions and other ops, and the multiply-accumulate
    rate (G/s) of the first two if they did all of the model's counted work."""
    matrix = sum(t for op, t in seconds.items() if op in MATRIX_OPS)
    conv = sum(t for op, t in seconds.items() if op in CONV_OPS)
    total = sum(seconds.values())
    return dict(
        total_ms=total * 1e3 / batch,
        matrix_ms=matrix * 1e3 / batch,
        conv_ms=conv * 1e3 / batch,
        other_ms=(total - matrix - conv) * 1e3 / batch,
        gmac_per_s=gflops_full * batch / (matrix + conv) if matrix +
        conv else float('nan'))


def time_per_image(call: Callable[[], object], batch: int) -> float:
    """Mean seconds per image over ``max(2, 10 // batch)`` calls after one warm-up call."""
    call()
    calls = max(2, 10 // batch)
    start = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - start) / calls / batch


def ratio(a: Optional[dict], b: Optional[dict]) -> Optional[Dict[str, float]]:
    if a is None or b is None:
        return None
    return dict(
        median=a['median_ms'] / b['median_ms'], min=a['min_ms'] / b['min_ms'])


def ratios(timings: Dict[Tuple[str, str, int],
                         dict], names: List[str], backends: List[str],
           batches: List[int]) -> Dict[str, Dict[str, dict]]:
    """The issue's ratios, keyed by kind, then by 'backend batch' or 'model backend'."""
    out: Dict[str, Dict[str, dict]] = {k: {} for k, _ in TARGETS}
    for be in backends:
        for n in batches:
            r = ratio(
                timings.get(('gtpt-s', be, n)),
                timings.get(('rtmpose-m', be, n)))
            if r:
                out['gtpt-s / rtmpose-m'][f'{be} batch {n}'] = r
            for name in names:
                r = ratio(
                    timings.get((name, be, n)),
                    timings.get((f'{name} unpruned', be, n)))
                if r:
                    out['pruned / unpruned'][f'{name} {be} batch {n}'] = r
        for name in names:
            r = ratio(timings.get((name, be, 32)), timings.get((name, be, 1)))
            if r:
                out['batch-32 / batch-1'][f'{name} {be}'] = r
    return out


def format_report(timings: Dict[Tuple[str, str, int], dict], flops: Dict[str,
                                                                         dict],
                  names: List[str], backends: List[str], batches: List[int],
                  ratio_table: Dict[str, Dict[str, dict]]) -> str:
    """Markdown: per-model medians and minima, then the ratios against the issue's targets."""
    head = ' | '.join(f'batch {n} ms/img median | min' for n in batches)
    lines = [
        f'| model | GFLOPs | backend | {head} |',
        '| --- | ---: | --- |' + ' ---: | ---: |' * len(batches)
    ]
    for name in names:
        for be in backends:
            cells = []
            for n in batches:
                t = timings.get((name, be, n))
                cells += [f"{t['median_ms']:.2f}", f"{t['min_ms']:.2f}"
                          ] if t else ['-', '-']
            lines.append(f"| {name} | {flops[name]['full']:.3f} | {be} | " +
                         ' | '.join(cells) + ' |')
    lines += [
        '', '| ratio | target | where | median | min | met (median) |',
        '| --- | ---: | --- | ---: | ---: | --- |'
    ]
    for kind, bound in TARGETS:
        for where, r in ratio_table[kind].items():
            met = 'yes' if r['median'] <= bound else 'no'
            lines.append(
                f"| {kind} | <= {bound} | {where} | {r['median']:.3f} | {r['min']:.3f} | {met} |"
            )
    return '\n'.join(lines)


def profile_models(models: Dict[str, nn.Module], calls: dict, onnx_files: dict,
                   images: Dict[int, torch.Tensor], flops: Dict[str, dict],
                   args: argparse.Namespace,
                   workdir: str) -> Dict[Tuple[str, str, int], dict]:
    """--profile: op kinds of every model and backend at the smallest batch, and GTPT's tokenizer
    timed alone in eager PyTorch (it runs the same on the pruned and the unpruned path)."""
    n = min(args.batch_sizes)
    profile_calls = max(2, 10 // n)
    profiles = {}
    for name, model in models.items():
        for be in args.backends:
            seconds = (
                eager_op_seconds(calls[name, be,
                                       n], profile_calls) if be == 'eager' else
                ort_op_seconds(onnx_files[name, n], images[n], args.threads,
                               profile_calls, workdir))
            profiles[name, be, n] = op_kinds(seconds, n, flops[name]['full'])
            if be == 'eager' and name.startswith('gtpt'):
                tokenize = (lambda m=model.pose_model.backbone, x=images[n]: m.
                            tokenize(x))
                profiles[name, be, n]['tokenizer_ms'] = statistics.median(
                    time_per_image(tokenize, n) * 1e3 for _ in range(3))
    return profiles


def format_profile(profiles: Dict[Tuple[str, str, int], dict]) -> str:
    lines = [
        '| model | backend | batch | op time ms/img | matrix products | convolutions | other | '
        'GMAC/s in products + convolutions | tokenizer ms/img (timed) |',
        '| --- | --- | ---: |' + ' ---: |' * 6
    ]
    for (name, be, n), p in profiles.items():
        tokenizer = f"{p['tokenizer_ms']:.2f}" if 'tokenizer_ms' in p else '-'
        lines.append(
            f"| {name} | {be} | {n} | {p['total_ms']:.2f} | {p['matrix_ms']:.2f} | {p['conv_ms']:.2f} | "
            f"{p['other_ms']:.2f} | {p['gmac_per_s']:.1f} | {tokenizer} |")
    return '\n'.join(lines)


def plot(timings: Dict[Tuple[str, str, int], dict], flops: Dict[str, dict],
         backends: List[str], batch: int, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 5))
    for be, marker in zip(backends, 'os'):
        pts = [(flops[name]['full'], t['median_ms'], name)
               for (name, b, n), t in timings.items()
               if b == be and n == batch]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts],
                   marker=marker,
                   label=be)
        for x, y, name in pts:
            ax.annotate(
                name, (x, y),
                textcoords='offset points',
                xytext=(4, 4),
                fontsize=7)
        at = {name: (x, y) for x, y, name in pts}
        for name in at:  # pruning's saving: a line from each unpruned path to its pruned one
            if name.endswith(' unpruned') and name[:-len(' unpruned')] in at:
                (x0, y0), (x1, y1) = at[name], at[name[:-len(' unpruned')]]
                ax.plot([x0, x1], [y0, y1], color='grey', lw=0.8, ls=':')
    ax.set_xlabel('GFLOPs (multiply-accumulates, attention products included)')
    ax.set_ylabel(f'batch-{batch} latency per image, median (ms)')
    ax.set_title(
        f'Whole-body 256x192 on {torch.get_num_threads()} CPU threads')
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings(
        'ignore',
        category=torch.jit.TracerWarning)  # static shapes are intended
    torch.set_num_threads(args.threads)
    os.makedirs(args.out_dir, exist_ok=True)
    models = build_models(args)
    names = list(models)
    flops = {name: gflops(m) for name, m in models.items()}
    images = {
        n: torch.randn(
            n, 3, 256, 192, generator=torch.Generator().manual_seed(n))
        for n in args.batch_sizes
    }
    calls, ort_diff, onnx_files, profiles = {}, {}, {}, {}
    with tempfile.TemporaryDirectory() as workdir:
        for name, model in models.items():
            for n, image in images.items():
                if 'eager' in args.backends:
                    calls[name, 'eager', n] = (lambda m=model, x=image: m(x))
                if 'ort' in args.backends:
                    calls[name, 'ort',
                          n], ort_diff[f'{name} batch {n}'], onnx_files[
                              name, n] = ort_runner(model, image, workdir,
                                                    args.threads, args.opset)
        rounds: Dict[Tuple[str, str, int], List[float]] = {
            key: []
            for key in calls
        }
        order = list(calls)
        with torch.inference_mode():
            for key in order:  # one untimed pass: lazy set-up (oneDNN primitives, ORT arenas)
                calls[key]()
            for r in range(args.rounds):
                for key in (order if r % 2 == 0 else order[::-1]):
                    rounds[key].append(
                        time_per_image(calls[key], key[2]) * 1e3)
                print(
                    f'round {r + 1}/{args.rounds} done',
                    file=sys.stderr,
                    flush=True)
            if args.profile:
                profiles = profile_models(models, calls, onnx_files, images,
                                          flops, args, workdir)
    timings = {
        key: dict(median_ms=statistics.median(v), min_ms=min(v), rounds_ms=v)
        for key, v in rounds.items()
    }
    gtpt = [n for n in names if n.startswith('gtpt') and 'unpruned' not in n]
    batches = sorted(args.batch_sizes)
    ratio_table = ratios(timings, gtpt, args.backends, batches)
    print(
        f'{args.rounds} interleaved rounds, {args.threads} threads (torch and ONNX Runtime), '
        'ms per image; GFLOPs = multiply-accumulates incl. attention products')
    print(
        format_report(timings, flops, names, args.backends, batches,
                      ratio_table))
    if profiles:
        print(
            '\nwhere the time goes (profilers, whose own overhead is included; matrix products include the '
            'fused attention of eager PyTorch; GMAC/s = the model\'s GFLOPs over the time of those two kinds; '
            'GTPT\'s tokenizer runs the same on the pruned and the unpruned path)'
        )
        print(format_profile(profiles))
    if any(d > 1e-3 for d in ort_diff.values()):
        print(
            f'WARNING: ONNX Runtime differs from torch by more than 1e-3: {ort_diff}'
        )
    result = dict(
        settings=dict(
            vars(args),
            torch=torch.__version__,
            cpu=platform.processor() or platform.machine(),
            cpu_count=os.cpu_count()),
        gflops=flops,
        ort_max_abs_diff=ort_diff,
        ratios=ratio_table,
        profiles=[
            dict(model=k[0], backend=k[1], batch=k[2], **v)
            for k, v in profiles.items()
        ],
        timings=[
            dict(model=k[0], backend=k[1], batch=k[2], **v)
            for k, v in timings.items()
        ])
    with open(osp.join(args.out_dir, 'benchmark.json'), 'w') as f:
        json.dump(result, f, indent=1)
    plot(timings, flops, args.backends, batches[0],
         osp.join(args.out_dir, 'latency_vs_gflops.png'))
    print(f'wrote {args.out_dir}/benchmark.json and latency_vs_gflops.png')
    return 0


if __name__ == '__main__':
    sys.exit(main())
