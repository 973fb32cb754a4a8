#!/usr/bin/env python
r"""Parameters and GFLOPs of pose models in eval mode (GTPT: one branch,
pruned path).

Two conventions (``gtpt_mmpose/analysis/flops.py``): ``authors`` follows thop's
``profile``, the counter behind the GTPT paper's figures (no attention matrix
products); ``full`` adds q @ k^T and attn @ v of every attention call. FLOPs
here are multiply-accumulates, as in thop and the paper.

    python tools/analysis/get_flops.py gtpt-t_coco \
        configs/gtpt-b_coco-wholebody.py gtpt-s_mpii
    python tools/analysis/get_flops.py CONFIG --input-shape 256 192 --breakdown

Each config is measured at its own input size (its codec's), unless
--input-shape names one for all.
"""
import argparse
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from mmengine.config import Config
from mmpose.registry import MODELS
from mmpose.utils import register_all_modules

import gtpt_mmpose  # noqa: F401  (registers GTPT's modules)
from gtpt_mmpose.analysis.flops import count_flops
from gtpt_mmpose.utils.config_paths import config_path


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Count parameters and GFLOPs of pose models')
    parser.add_argument(
        'configs',
        nargs='+',
        help='config files, or GTPT config names such as gtpt-t_coco')
    parser.add_argument(
        '--input-shape',
        type=int,
        nargs=2,
        default=None,
        metavar=('H', 'W'),
        help='input height and width (default: each config\'s own, e.g. '
        '256 192 for COCO, 256 256 for MPII)')
    parser.add_argument(
        '--breakdown',
        action='store_true',
        help='also print the MACs per module type')
    return parser.parse_args()


def build_model(
    config: str,
    input_shape: Optional[Tuple[int, int]] = None
) -> Tuple[nn.Module, Tuple[int, int]]:
    """The model of ``config`` in eval mode, randomly initialised (the
    weights do not change the counts), and its input (H, W).

    The input is the config's (its codec's; 256 x 192 without one), or
    ``input_shape``: a GTPT is then built for that size (its visual tokens
    and classifiers depend on it); other models must accept it as they are.
    """
    register_all_modules()
    cfg = Config.fromfile(config_path(config))
    w, h = cfg.get('codec', {}).get('input_size', (192, 256))
    if input_shape is not None:
        h, w = input_shape
        if cfg.model.backbone.get('type') == 'GTPT':
            cfg.model.backbone.input_size = (w, h)
            cfg.model.head.input_size = (w, h)
            cfg.model.head.decoder.input_size = (w, h)
    return MODELS.build(cfg.model).eval(), (h, w)


def measure(config: str,
            input_shape: Optional[Tuple[int, int]] = None) -> Dict:
    """``count_flops`` of one forward of a (1, 3, H, W) image through
    backbone, neck and head, at ``input_shape`` or the config's own; the
    result's ``input_shape`` says which."""
    model, input_shape = build_model(config, input_shape)
    # mode 'tensor' runs extract_feat + head.forward, without data
    # preprocessing or decoding
    result = count_flops(model,
                         (torch.zeros(1, 3, *input_shape), None, 'tensor'))
    return dict(result, input_shape=input_shape)


def format_table(rows: List[Tuple[str, Dict]]) -> str:
    """Markdown table: config, input, params (M), GFLOPs in both
    conventions."""
    lines = [
        '| config | input (h x w) | params (M) | GFLOPs authors '
        '| GFLOPs full |', '| --- | --- | ---: | ---: | ---: |'
    ]
    lines += [
        f"| {name} | {r['input_shape'][0]}x{r['input_shape'][1]} "
        f"| {r['params'] / 1e6:.3f} | {r['authors'] / 1e9:.3f} "
        f"| {r['full'] / 1e9:.3f} |" for name, r in rows
    ]
    return '\n'.join(lines)


def main() -> None:
    args = parse_args()
    rows = []
    for config in args.configs:
        result = measure(config, args.input_shape)
        name = config.rsplit('/', 1)[-1].removesuffix('.py')
        rows.append((name, result))
        if args.breakdown:
            parts = ', '.join(f'{k} {v / 1e9:.4f}'
                              for k, v in sorted(result['by_type'].items()))
            print(f'{name} GMACs by module type: {parts}')
    print('input 1x3xHxW, eval mode; FLOPs = multiply-accumulates')
    print(format_table(rows))


if __name__ == '__main__':
    main()
