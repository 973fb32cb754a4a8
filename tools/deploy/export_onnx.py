#!/usr/bin/env python
"""Export a GTPT model to ONNX: image (N, 3, 256, 192), normalised -> (simcc_x, simcc_y) logits.

    python tools/deploy/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--batch 1] [--opset 17] [--image IMG]

Static shapes (the pruned path keeps fixed token counts), TorchScript exporter (topk and the index
gathers become plain TopK / GatherElements nodes). Before OUT.onnx is written, ONNX Runtime's
outputs are compared with PyTorch's on a real input: IMG (default: a bundled COCO-WholeBody image)
cropped and normalised by the config's test pipeline, the whole image as the person box. Nothing
half-written is left behind. Decoding (softmax, argmax / split ratio, flip test) stays outside the
graph; demo/onnx_inference.py is a complete example that needs only numpy, OpenCV and ONNX Runtime.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile
import warnings
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DEMO_IMAGE = osp.join(REPO, 'demo', 'data', 'coco-wholebody-mini', 'train2017',
                      '000000196141.jpg')


class ImageToSimCC(nn.Module):
    """The inference path of a top-down GTPT model without pre- and post-processing:
    (N, 3, H, W) -> (N, K, W * split), (N, K, H * split) logits."""

    def __init__(self, pose_model: nn.Module) -> None:
        super().__init__()
        self.pose_model = pose_model

    def forward(self,
                image: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return self.pose_model.head.forward(
            self.pose_model.extract_feat(image))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('out', help='ONNX file to write')
    p.add_argument(
        '--batch', type=int, default=1, help='static batch size of the graph')
    p.add_argument('--opset', type=int, default=17)
    p.add_argument(
        '--image',
        help=
        f'image for the ONNX Runtime check (default: {osp.relpath(DEMO_IMAGE, REPO)})'
    )
    p.add_argument(
        '--atol',
        type=float,
        default=1e-3,
        help='largest allowed ONNX Runtime vs torch difference')
    args = p.parse_args(argv)
    if args.batch < 1:
        p.error(f'--batch must be positive, got {args.batch}')
    if args.opset < 17:
        p.error(
            f'--opset must be at least 17 (LayerNormalization), got {args.opset}'
        )
    return args


def real_input(pose_model: nn.Module, image: str, batch: int) -> torch.Tensor:
    """(batch, 3, H, W): ``image`` through the model's test pipeline and data preprocessor, the
    whole image as the box, repeated ``batch`` times."""
    import cv2
    from mmengine.dataset import Compose, pseudo_collate
    img = cv2.imread(image)
    if img is None:
        raise FileNotFoundError(f'cannot read image {image}')
    h, w = img.shape[:2]
    pipeline = Compose(pose_model.cfg.test_dataloader.dataset.pipeline)
    sample = pipeline(
        dict(
            img=img,
            bbox=np.array([[0, 0, w, h]], np.float32),
            bbox_score=np.ones(1, np.float32)))
    data = pose_model.data_preprocessor(
        pseudo_collate([sample] * batch), False)
    return data['inputs']


def export(config: str,
           checkpoint: str,
           out: str,
           batch: int = 1,
           opset: int = 17,
           image: Optional[str] = None,
           atol: float = 1e-3) -> float:
    """Export and verify; returns the largest absolute difference between ONNX Runtime and torch."""
    for path in (config, checkpoint, image):
        if path is not None and not osp.isfile(path):
            raise FileNotFoundError(f'no such file: {path}')
    if not osp.isdir(osp.dirname(osp.abspath(out))):
        raise FileNotFoundError(
            f'output folder does not exist: {osp.dirname(osp.abspath(out))}')
    import onnxruntime as ort
    from mmpose.apis import init_model
    from mmpose.utils import register_all_modules

    import gtpt_mmpose  # noqa: F401  (registers GTPT)
    register_all_modules()
    model = ImageToSimCC(init_model(config, checkpoint, device='cpu')).eval()
    if image is None and osp.isfile(DEMO_IMAGE):
        image = DEMO_IMAGE
    if image is not None:
        x = real_input(model.pose_model, image, batch)
    else:  # an installed package without the demo data: say so, check on noise
        print(
            'no --image given and no bundled demo image: checking on random input',
            file=sys.stderr)
        w, h = model.pose_model.cfg.codec.input_size
        x = torch.randn(
            batch, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(x)
    fd, tmp = tempfile.mkstemp(
        suffix='.onnx', dir=osp.dirname(osp.abspath(out)))
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                'ignore',
                torch.jit.TracerWarning)  # static shapes are intended
            torch.onnx.export(
                model, (x, ),
                tmp,
                input_names=['input'],
                output_names=['simcc_x', 'simcc_y'],
                opset_version=opset,
                dynamo=False)
        session = ort.InferenceSession(tmp, providers=['CPUExecutionProvider'])
        got = session.run(None, {'input': x.numpy()})
        diff = max(
            float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))
        if diff > atol:
            raise RuntimeError(
                f'ONNX Runtime differs from PyTorch by {diff:.2e} (> {atol}); {out} not written'
            )
        os.replace(tmp, out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return diff


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    try:
        diff = export(args.config, args.checkpoint, args.out, args.batch,
                      args.opset, args.image, args.atol)
    except (FileNotFoundError, RuntimeError) as exc:
        sys.exit(f'export_onnx: {exc}')
    print(
        f'{args.out}: input (N={args.batch}, 3, H, W) normalised -> simcc_x, simcc_y; '
        f'ONNX Runtime vs torch max |diff| = {diff:.2e}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
