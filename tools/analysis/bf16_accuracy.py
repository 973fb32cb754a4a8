#!/usr/bin/env python
"""How far bf16 inference moves a trained GTPT model's keypoints and AP.

    python tools/analysis/bf16_accuracy.py CONFIG CHECKPOINT \
        [--runtimes eager eager-bf16 openvino openvino-bf16]

Runs the config's test set (flip test off, so that every runtime decodes the
same single pass) in each runtime and compares with eager PyTorch fp32: the
distance of every predicted keypoint in image pixels, and the config's own
metric. For the README: the ``make demo`` checkpoint on the mini set.
"""
import argparse
import copy
import os.path as osp
import sys
import tempfile
import warnings
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

RUNTIMES = ('eager', 'eager-bf16', 'onnxruntime', 'openvino', 'openvino-bf16')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument(
        '--runtimes',
        nargs='+',
        default=['eager', 'eager-bf16', 'openvino', 'openvino-bf16'],
        choices=RUNTIMES)
    p.add_argument('--threads', type=int, default=2)
    return p.parse_args(argv)


def logit_functions(model: torch.nn.Module, runtimes: Sequence[str],
                    example: torch.Tensor,
                    workdir: str) -> Dict[str, Callable]:
    """runtime -> (N, 3, H, W) images -> (pred_x, pred_y) float32 logits."""
    from gtpt_mmpose.deploy import (ImageToSimCC, open_session,
                                    prepare_for_inference, write_onnx)
    eager = ImageToSimCC(prepare_for_inference(copy.deepcopy(model)))
    functions = {}
    onnx_files: Dict[int, str] = {}
    for runtime in runtimes:
        if runtime.startswith('eager'):
            bf16 = runtime == 'eager-bf16'

            def run(x, bf16=bf16):
                with torch.no_grad(), torch.autocast(
                        'cpu', torch.bfloat16, enabled=bf16):
                    return tuple(t.float() for t in eager(x))

        else:
            sessions: Dict[int, Callable] = {}

            def run(x, runtime=runtime, sessions=sessions):
                n = x.shape[0]  # the graph's batch size is static
                if n not in onnx_files:
                    export = ImageToSimCC(
                        prepare_for_inference(copy.deepcopy(model), 'export'))
                    onnx_files[n] = osp.join(workdir, f'b{n}.onnx')
                    write_onnx(export, x, onnx_files[n])
                if n not in sessions:
                    sessions[n] = open_session(onnx_files[n], runtime)
                return tuple(
                    torch.from_numpy(np.array(t))
                    for t in sessions[n](x.numpy()))

        functions[runtime] = run
    return functions


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    warnings.filterwarnings('ignore')
    torch.set_num_threads(args.threads)
    from mmengine.evaluator import Evaluator
    from mmengine.runner import Runner
    from mmpose.apis import init_model

    import gtpt_mmpose  # noqa: F401
    model = init_model(
        args.config,
        args.checkpoint,
        device='cpu',
        cfg_options=dict(model=dict(test_cfg=dict(flip_test=False))))
    loader = Runner.build_dataloader(model.cfg.test_dataloader)
    head = model.head
    keypoints: Dict[str, List[np.ndarray]] = {r: [] for r in args.runtimes}
    evaluators = {}
    with tempfile.TemporaryDirectory() as workdir:
        functions = None
        for batch in loader:
            data = model.data_preprocessor(batch, False)
            if functions is None:
                functions = logit_functions(model, args.runtimes,
                                            data['inputs'], workdir)
            for runtime, run in functions.items():
                pred_x, pred_y = run(data['inputs'])
                instances = head.decode(
                    (pred_x.softmax(-1) * head.score_scale,
                     pred_y.softmax(-1) * head.score_scale))
                samples = model.add_pred_to_datasample(
                    instances, None, copy.deepcopy(data['data_samples']))
                keypoints[runtime] += [
                    s.pred_instances.keypoints[0] for s in samples
                ]
                if runtime not in evaluators:
                    evaluators[runtime] = Evaluator(
                        copy.deepcopy(model.cfg.test_evaluator))
                    evaluators[runtime].dataset_meta = model.dataset_meta
                evaluators[runtime].process(samples, batch)
    reference = np.stack(keypoints[args.runtimes[0]])
    rows = [
        f'{osp.basename(args.config)}, {osp.basename(args.checkpoint)}: '
        f'{len(reference)} people, flip test off; keypoint distance to '
        f'{args.runtimes[0]} in image pixels',
        '| runtime | median px | 90th pct px | max px | moved > 1 px | '
        'whole-body AP | body AP |', '| --- |' + ' ---: |' * 6
    ]
    for runtime in args.runtimes:
        moved = np.linalg.norm(
            np.stack(keypoints[runtime]) - reference, axis=-1).ravel()
        metrics = evaluators[runtime].evaluate(len(loader.dataset))
        ap = metrics.get('coco-wholebody/AP', metrics.get('coco/AP'))
        cells = (np.median(moved), np.percentile(moved, 90), moved.max())
        rows.append(f'| {runtime} | ' + ' | '.join(f'{v:.2f}' for v in cells) +
                    f' | {(moved > 1).mean():.1%} | {ap:.3f} | '
                    f'{metrics.get("coco-wholebody/body/AP", ap):.3f} |')
    print('\n'.join(rows))
    return 0


if __name__ == '__main__':
    sys.exit(main())
