#!/usr/bin/env python
"""Whole-body pose with an exported GTPT model, using only numpy, OpenCV and ONNX Runtime.

    python demo/onnx_inference.py MODEL.onnx IMAGE [--bbox X Y W H] [--out OUT.json]

Without --bbox the whole image is the person box. The crop follows MMPose's top-down test
pipeline (box padding 1.25, aspect ratio of the input, TopdownAffine) and the decoding the
authors' (softmax over bins, argmax / 2, score = the smaller of the two peak probabilities).
"""
import argparse
import json
import os.path as osp
import sys
from typing import Tuple

import cv2
import numpy as np
import onnxruntime as ort

MEAN = np.array([123.675, 116.28, 103.53],
                np.float32)  # RGB, as MMPose's data preprocessor
STD = np.array([58.395, 57.12, 57.375], np.float32)
SPLIT_RATIO = 2.0


def box_to_center_scale(box,
                        aspect: float,
                        padding: float = 1.25
                        ) -> Tuple[np.ndarray, np.ndarray]:
    """(x, y, w, h) -> centre and (w, h) of the padded box with the input's aspect ratio."""
    x, y, w, h = box
    center = np.array([x + w / 2, y + h / 2], np.float32)
    w, h = w * padding, h * padding
    w, h = (w, w / aspect) if w > h * aspect else (h * aspect, h)
    return center, np.array([w, h], np.float32)


def crop(image: np.ndarray, center: np.ndarray, scale: np.ndarray,
         size: Tuple[int, int]) -> Tuple[np.ndarray, float]:
    """Warp the box to ``size`` (w, h); returns the crop and the pixels-per-image-pixel factor."""
    s = size[0] / scale[0]
    matrix = np.array([[s, 0, size[0] / 2 - s * center[0]],
                       [0, s, size[1] / 2 - s * center[1]]], np.float32)
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR), s


def decode(simcc_x: np.ndarray,
           simcc_y: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(K, Wx), (K, Wy) logits -> (K, 2) crop coordinates and (K,) scores."""

    def softmax(z):
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    px, py = softmax(simcc_x), softmax(simcc_y)
    xy = np.stack(
        (px.argmax(-1), py.argmax(-1)), -1).astype(np.float32) / SPLIT_RATIO
    return xy, np.minimum(px.max(-1), py.max(-1))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('model')
    p.add_argument('image')
    p.add_argument('--bbox', type=float, nargs=4, metavar=('X', 'Y', 'W', 'H'))
    p.add_argument(
        '--out', help='JSON file for the keypoints (default: print)')
    args = p.parse_args(argv)
    if not osp.isfile(args.model):
        sys.exit(f'no such model file: {args.model!r}')
    if args.bbox is not None and min(args.bbox[2:]) <= 0:
        p.error(f'--bbox needs a positive width and height, got {args.bbox}')

    image = cv2.imread(args.image, cv2.IMREAD_COLOR)
    if image is None:
        sys.exit(f'cannot read image {args.image!r}')
    session = ort.InferenceSession(
        args.model, providers=['CPUExecutionProvider'])
    n, _, h, w = session.get_inputs()[0].shape
    box = args.bbox or (0, 0, image.shape[1], image.shape[0])
    center, scale = box_to_center_scale(box, w / h)
    patch, s = crop(
        cv2.cvtColor(image, cv2.COLOR_BGR2RGB), center, scale, (w, h))
    blob = ((patch.astype(np.float32) - MEAN) / STD).transpose(2, 0, 1)[None]
    simcc_x, simcc_y = session.run(
        None, {session.get_inputs()[0].name: np.repeat(blob, n, 0)})
    xy, scores = decode(simcc_x[0], simcc_y[0])
    keypoints = (xy -
                 np.array([w / 2, h / 2])) / s + center  # back to image pixels
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
