"""How far each runtime, bf16 above all, moves a trained GTPT model's
keypoints and AP from eager PyTorch in float32.

The config's test set runs with flip test off (so that every runtime decodes
the same single pass) in each runtime; every predicted keypoint's distance
to the float32 eager prediction is measured in image pixels, and the
config's own metric is evaluated per runtime.
"""
import copy
import os.path as osp
import tempfile
from typing import Callable, Dict, List, Sequence

import numpy as np
import torch
import torch.nn as nn
from torch import Tensor

RUNTIMES = ('eager', 'eager-bf16', 'onnxruntime', 'openvino', 'openvino-bf16')
Logits = Callable[[Tensor], Sequence[Tensor]]


def keypoint_shift(keypoints: np.ndarray,
                   reference: np.ndarray) -> Dict[str, float]:
    """Distances of corresponding keypoints, (..., 2) each, in pixels: their
    median, 90th percentile and maximum, and the share over 1 px."""
    moved = np.linalg.norm(keypoints - reference, axis=-1).ravel()
    return dict(
        median_px=float(np.median(moved)),
        p90_px=float(np.percentile(moved, 90)),
        max_px=float(moved.max()),
        moved_share=float((moved > 1).mean()))


def logit_functions(model: nn.Module, runtimes: Sequence[str], workdir: str,
                    threads: int) -> Dict[str, Logits]:
    """runtime -> (N, 3, H, W) images -> (simcc_x, simcc_y) float32 logits;
    exported graphs are written to ``workdir``, one per batch size."""
    from ..deploy import (ImageToSimCC, open_session, prepare_for_inference,
                          write_onnx)
    unknown = set(runtimes) - set(RUNTIMES)
    if unknown:
        raise ValueError(f'no accuracy run for {sorted(unknown)}; runtimes: '
                         f'{RUNTIMES}')
    eager = ImageToSimCC(prepare_for_inference(copy.deepcopy(model)))
    export = None
    onnx_files: Dict[int, str] = {}
    functions = {}
    for runtime in runtimes:
        if runtime.startswith('eager'):

            def run(x, bf16=runtime == 'eager-bf16'):
                with torch.no_grad(), torch.autocast(
                        'cpu', torch.bfloat16, enabled=bf16):
                    return tuple(t.float() for t in eager(x))

        else:
            sessions: Dict[int, Callable] = {}

            def run(x, runtime=runtime, sessions=sessions):
                nonlocal export
                n = x.shape[0]  # an exported graph's batch size is static
                if n not in onnx_files:
                    export = export or ImageToSimCC(
                        prepare_for_inference(copy.deepcopy(model), 'export'))
                    onnx_files[n] = osp.join(workdir, f'b{n}.onnx')
                    write_onnx(export, x, onnx_files[n])
                if n not in sessions:
                    sessions[n] = open_session(onnx_files[n], runtime, threads)
                return tuple(
                    torch.from_numpy(np.asarray(t))
                    for t in sessions[n](x.numpy()))

        functions[runtime] = run
    return functions


def runtime_accuracy(config: str, checkpoint: str, runtimes: Sequence[str],
                     threads: int) -> dict:
    """Keypoint shift against eager float32, and AP, per runtime.

    Args:
        config (str): A GTPT config with a test set.
        checkpoint (str): Its trained weights.
        runtimes (Sequence[str]): Of :data:`RUNTIMES`; ``'eager'`` is the
            reference and is run first whether listed or not.
        threads (int): Threads of every runtime.

    Returns:
        dict: ``config``, ``checkpoint``, ``people`` and ``rows``: per
        runtime its :func:`keypoint_shift` fields, ``whole_ap`` and
        ``body_ap`` (the metric's whole-body and body AP; the same value for
        a body-only data set).
    """
    from mmengine.evaluator import Evaluator
    from mmengine.runner import Runner
    from mmpose.apis import init_model

    import gtpt_mmpose  # noqa: F401  (registers GTPT's modules)
    runtimes = ['eager'] + [r for r in runtimes if r != 'eager']
    model = init_model(
        config,
        checkpoint,
        device='cpu',
        cfg_options=dict(model=dict(test_cfg=dict(flip_test=False))))
    loader = Runner.build_dataloader(model.cfg.test_dataloader)
    head = model.head
    keypoints: Dict[str, List[np.ndarray]] = {r: [] for r in runtimes}
    evaluators = {}
    for runtime in runtimes:
        evaluators[runtime] = Evaluator(
            copy.deepcopy(model.cfg.test_evaluator))
        evaluators[runtime].dataset_meta = model.dataset_meta
    with tempfile.TemporaryDirectory() as workdir:
        functions = logit_functions(model, runtimes, workdir, threads)
        for batch in loader:
            data = model.data_preprocessor(batch, False)
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
                evaluators[runtime].process(samples, batch)
    reference = np.stack(keypoints['eager'])
    rows = []
    for runtime in runtimes:
        metrics = evaluators[runtime].evaluate(len(loader.dataset))
        ap = metrics.get('coco-wholebody/AP', metrics.get('coco/AP'))
        rows.append(
            dict(
                runtime=runtime,
                **keypoint_shift(np.stack(keypoints[runtime]), reference),
                whole_ap=ap,
                body_ap=metrics.get('coco-wholebody/body/AP', ap)))
    return dict(
        config=osp.basename(config),
        checkpoint=osp.basename(checkpoint),
        people=len(reference),
        rows=rows)
