#!/usr/bin/env python
"""Export a GTPT model to ONNX: normalised image (N, 3, 256, 192) ->
(simcc_x, simcc_y) logits.

    python tools/deploy/export_onnx.py CONFIG CHECKPOINT OUT.onnx \
        [--batch 1] [--opset 23] [--image IMG]

The graph has static shapes (the pruned path keeps fixed token counts) and,
from opset 23, attention as the standard fused ``Attention`` op (use
``--opset 17`` for runtimes older than ONNX Runtime 1.23). Before OUT.onnx
is written, ONNX Runtime and OpenVINO (when installed) run it on a real
input, IMG (default: a bundled COCO-WholeBody image) cropped by the config's
test pipeline with the whole image as the box, and must agree with PyTorch
within --atol; nothing half-written is left behind. Decoding (softmax,
argmax / split ratio, flip test) stays outside the graph; what it needs is in
the file's metadata, and demo/onnx_inference.py is a complete example that
needs only numpy, OpenCV and a runtime.
"""
import argparse
import os.path as osp
import sys
from typing import Optional, Sequence

import torch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_IMAGE = osp.join(REPO, 'demo', 'data', 'coco-wholebody-mini', 'train2017',
                      '000000196141.jpg')


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    from gtpt_mmpose.deploy import FUSED_ATTENTION_OPSET
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('out', help='ONNX file to write')
    p.add_argument(
        '--batch', type=int, default=1, help='static batch size of the graph')
    p.add_argument(
        '--opset',
        type=int,
        default=FUSED_ATTENTION_OPSET,
        help='ONNX opset (23: fused attention; 17: runtimes before ONNX '
        'Runtime 1.23)')
    p.add_argument(
        '--image',
        help='image for the check (default: '
        f'{osp.relpath(DEMO_IMAGE, REPO)})')
    p.add_argument(
        '--atol',
        type=float,
        default=1e-3,
        help='largest allowed runtime vs PyTorch difference')
    args = p.parse_args(argv)
    if args.batch < 1:
        p.error(f'--batch must be positive, got {args.batch}')
    if args.opset < 17:
        p.error('--opset must be at least 17 (LayerNormalization), got '
                f'{args.opset}')
    return args


def decoding_metadata(pose_model: torch.nn.Module) -> dict:
    """What decoding an exported graph needs, for its metadata."""
    pre, head = pose_model.data_preprocessor, pose_model.head
    return dict(
        input_size=' '.join(map(str, head.input_size)),  # w h
        simcc_split_ratio=head.simcc_split_ratio,
        score_scale=head.score_scale,
        mean=' '.join(f'{v:g}' for v in pre.mean.flatten().tolist()),
        std=' '.join(f'{v:g}' for v in pre.std.flatten().tolist()),
        rgb_input=str(bool(pre._channel_conversion)),
        num_keypoints=pose_model.backbone.num_keypoints)


def export(config: str,
           checkpoint: str,
           out: str,
           batch: int = 1,
           opset: int = 23,
           image: Optional[str] = None,
           atol: float = 1e-3) -> dict:
    """Export and check; returns the largest |runtime - PyTorch| logit
    difference of every runtime that checked the graph."""
    for path in (config, checkpoint, image):
        if path is not None and not osp.isfile(path):
            raise FileNotFoundError(f'no such file: {path}')
    from mmpose.apis import init_model

    from gtpt_mmpose.deploy import (ImageToSimCC, export_onnx,
                                    prepare_for_inference, topdown_batch)
    pose_model = init_model(config, checkpoint, device='cpu')
    if image is None and osp.isfile(DEMO_IMAGE):
        image = DEMO_IMAGE
    if image is not None:
        x = topdown_batch(pose_model, image)['inputs']
    else:  # an installed package without the demo data: say so
        print(
            'no --image given and no bundled demo image: checking on '
            'random input',
            file=sys.stderr)
        w, h = pose_model.head.input_size
        x = torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(0))
    metadata = decoding_metadata(pose_model)
    model = ImageToSimCC(prepare_for_inference(pose_model, 'export'))
    return export_onnx(
        model,
        x.expand(batch, -1, -1, -1).contiguous(),
        out,
        opset=opset,
        atol=atol,
        metadata=metadata)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        diffs = export(args.config, args.checkpoint, args.out, args.batch,
                       args.opset, args.image, args.atol)
    except (FileNotFoundError, RuntimeError) as exc:
        sys.exit(f'export_onnx: {exc}')
    checks = ', '.join(f'{r} max |diff| = {d:.2e}' for r, d in diffs.items())
    print(f'{args.out}: input (N={args.batch}, 3, H, W) normalised -> '
          f'simcc_x, simcc_y; opset {args.opset}; {checks}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
