#!/usr/bin/env python
"""Whole-body pose with an exported GTPT model, using only numpy, OpenCV and
ONNX Runtime or OpenVINO (no PyTorch, no MMPose).

    python demo/onnx_inference.py MODEL.onnx IMAGE [--bbox X Y W H] \
        [--runtime onnxruntime|openvino] [--precision fp32|bf16] [--out J]

Without --bbox the whole image is the person box. The crop follows MMPose's
top-down test pipeline (box padding 1.25, the input's aspect ratio,
TopdownAffine); the decoding is the authors' (softmax over bins, argmax /
split ratio, score = the smaller of the two peaks) times the model's score
scale, as MMPose's GTPTHead reports it. Normalisation, input size, split
ratio and score scale come from the file's metadata (tools/deploy/
export_onnx.py writes them).
"""
import argparse
import json
import os.path as osp
import sys
from typing import Callable, Dict, List, Tuple

import cv2
import numpy as np

# what an exported file without metadata is assumed to hold (GTPT, 256x192)
DEFAULTS = dict(
    mean='123.675 116.28 103.53',
    std='58.395 57.12 57.375',
    rgb_input='True',
    simcc_split_ratio='2.0',
    score_scale='1.0')


def load_model(path: str, runtime: str,
               precision: str) -> Tuple[Callable, Tuple[int, ...], Dict]:
    """-> run(blob) -> [simcc_x, simcc_y], the input shape, the metadata."""
    if runtime == 'onnxruntime':
        if precision != 'fp32':
            sys.exit('onnx_inference: ONNX Runtime runs fp32 here; use '
                     '--runtime openvino for bf16')
        import onnxruntime as ort
        session = ort.InferenceSession(
            path, providers=['CPUExecutionProvider'])
        meta = session.get_modelmeta().custom_metadata_map
        name = session.get_inputs()[0].name
        shape = tuple(session.get_inputs()[0].shape)
        return (lambda blob: session.run(None, {name: blob})), shape, meta
    import onnx
    import openvino as ov
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    compiled = ov.Core().compile_model(
        path, 'CPU',
        {'INFERENCE_PRECISION_HINT': 'bf16' if precision == 'bf16' else 'f32'})
    request = compiled.create_infer_request()

    def run(blob: np.ndarray) -> List[np.ndarray]:
        request.infer({0: blob})
        return [request.get_output_tensor(i).data for i in range(2)]

    return run, tuple(compiled.inputs[0].shape), meta


def box_to_center_scale(box,
                        aspect: float,
                        padding: float = 1.25
                        ) -> Tuple[np.ndarray, np.ndarray]:
    """(x, y, w, h) -> centre and (w, h) of the padded box with the input's
    aspect ratio."""
    x, y, w, h = box
    center = np.array([x + w / 2, y + h / 2], np.float32)
    w, h = w * padding, h * padding
    w, h = (w, w / aspect) if w > h * aspect else (h * aspect, h)
    return center, np.array([w, h], np.float32)


def crop(image: np.ndarray, center: np.ndarray, scale: np.ndarray,
         size: Tuple[int, int]) -> Tuple[np.ndarray, float]:
    """Warp the box to ``size`` (w, h); returns the crop and its pixels per
    image pixel."""
    s = size[0] / scale[0]
    matrix = np.array([[s, 0, size[0] / 2 - s * center[0]],
                       [0, s, size[1] / 2 - s * center[1]]], np.float32)
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR), s


def decode(simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float,
           score_scale: float) -> Tuple[np.ndarray, np.ndarray]:
    """(K, Wx), (K, Wy) logits -> (K, 2) crop coordinates and (K,)
    scores."""

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    px, py = softmax(simcc_x), softmax(simcc_y)
    xy = np.stack((px.argmax(-1), py.argmax(-1)), -1).astype(np.float32)
    return xy / split_ratio, np.minimum(px.max(-1), py.max(-1)) * score_scale


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('model')
    p.add_argument('image')
    p.add_argument('--bbox', type=float, nargs=4, metavar=('X', 'Y', 'W', 'H'))
    p.add_argument(
        '--runtime',
        choices=['onnxruntime', 'openvino'],
        default='onnxruntime')
    p.add_argument('--precision', choices=['fp32', 'bf16'], default='fp32')
    p.add_argument(
        '--out', help='JSON file for the keypoints (default: print)')
    args = p.parse_args(argv)
    if not osp.isfile(args.model):
        sys.exit(f'onnx_inference: no such model file: {args.model!r}')
    if args.bbox is not None and min(args.bbox[2:]) <= 0:
        p.error(f'--bbox needs a positive width and height, got {args.bbox}')
    image = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if image is None:
        sys.exit(f'onnx_inference: cannot read image {args.image!r}')

    run, (n, _, h, w), meta = load_model(args.model, args.runtime,
                                         args.precision)
    meta = dict(DEFAULTS, **meta)
    mean, std = (
        np.array(meta[k].split(), np.float32) for k in ('mean', 'std'))
    box = args.bbox or (0, 0, image.shape[1], image.shape[0])
    center, scale = box_to_center_scale(box, w / h)
    if meta['rgb_input'] == 'True':
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    patch, s = crop(image, center, scale, (w, h))
    blob = ((patch.astype(np.float32) - mean) / std).transpose(2, 0, 1)[None]
    simcc_x, simcc_y = run(np.ascontiguousarray(np.repeat(blob, n, 0)))
    xy, scores = decode(simcc_x[0], simcc_y[0],
                        float(meta['simcc_split_ratio']),
                        float(meta['score_scale']))
    keypoints = (xy - np.array([w / 2, h / 2])) / s + center  # image pixels
    result = dict(
        image=args.image,
        bbox=list(map(float, box)),
        keypoints=keypoints.round(2).tolist(),
        keypoint_scores=scores.round(4).tolist())
    if args.out:
        with open(args.out, 'w') as f:
            json.dump(result, f)
        print(f'{len(keypoints)} keypoints -> {args.out}')
    else:
        print(json.dumps(result))
    return 0


if __name__ == '__main__':
    sys.exit(main())
