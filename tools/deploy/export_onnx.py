#!/usr/bin/env python
"""Export a GTPT model to ONNX: image (N, 3, 256, 192), normalised -> (simcc_x, simcc_y) logits.

    python tools/deploy/export_onnx.py CONFIG CHECKPOINT OUT.onnx [--batch 1] [--opset 17]

Static shapes (the pruned path keeps fixed token counts). The exported graph is checked against
PyTorch with ONNX Runtime before OUT.onnx is written; nothing half-written is left behind.
Decoding (softmax, argmax / split ratio, flip test) stays outside the graph; see
demo/onnx_inference.py for a complete example that needs only numpy, OpenCV and ONNX Runtime.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn


class ImageToSimCC(nn.Module):
    """The inference path of a top-down GTPT model without pre- and post-processing."""

    def __init__(self, pose_model: nn.Module) -> None:
        super().__init__()
        self.pose_model = pose_model

    def forward(self, image: torch.Tensor):
        return self.pose_model.head.forward(self.pose_model.extract_feat(image))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('config')
    p.add_argument('checkpoint')
    p.add_argument('out')
    p.add_argument('--batch', type=int, default=1, help='static batch size of the graph')
    p.add_argument('--opset', type=int, default=17)
    p.add_argument('--atol', type=float, default=1e-3, help='largest allowed ONNX Runtime vs torch difference')
    return p.parse_args(argv)


def export(config: str, checkpoint: str, out: str, batch: int = 1, opset: int = 17, atol: float = 1e-3) -> float:
    """Export and verify; returns the largest absolute difference between ONNX Runtime and torch."""
    import onnxruntime as ort
    from mmpose.apis import init_model

    import gtpt_mmpose  # noqa: F401
    for path in (config, checkpoint):
        if not osp.isfile(path):
            raise FileNotFoundError(f'no such file: {path}')
    model = ImageToSimCC(init_model(config, checkpoint, device='cpu')).eval()
    w, h = model.pose_model.cfg.codec.input_size
    image = torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = model(image)
    fd, tmp = tempfile.mkstemp(suffix='.onnx', dir=osp.dirname(osp.abspath(out)) or '.')
    os.close(fd)
    try:
        torch.onnx.export(model, (image,), tmp, input_names=['input'], output_names=['simcc_x', 'simcc_y'],
                          opset_version=opset, dynamo=False)
        session = ort.InferenceSession(tmp, providers=['CPUExecutionProvider'])
        got = session.run(None, {'input': image.numpy()})
        diff = max(float(np.abs(g - e.numpy()).max()) for g, e in zip(got, expected))
        if diff > atol:
            raise RuntimeError(f'ONNX Runtime differs from PyTorch by {diff:.2e} (> {atol}); {out} not written')
        os.replace(tmp, out)
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    return diff


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        diff = export(args.config, args.checkpoint, args.out, args.batch, args.opset, args.atol)
    except (FileNotFoundError, RuntimeError) as exc:
        sys.exit(f'export_onnx: {exc}')
    print(f'{args.out}: input (N={args.batch}, 3, 256, 192) -> simcc_x, simcc_y; '
          f'ONNX Runtime vs torch max |diff| = {diff:.2e}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
