#!/usr/bin/env python
r"""Parameters and GFLOPs of pose models in eval mode (GTPT: one branch,
pruned path).

Two conventions (``gtpt_mmpose/analysis/flops.py``): ``authors`` follows thop's
``profile``, the counter behind the GTPT paper's figures (no attention matrix
products); ``full`` adds q @ k^T and attn @ v of every attention call. FLOPs
here are multiply-accumulates, as in thop and the paper.

    python tools/analysis/get_flops.py gtpt-t_coco \
        configs/gtpt-b_coco-wholebody.py
    python tools/analysis/get_flops.py CONFIG --input-shape 256 192 --breakdown
"""
import argparse
from typing import Dict, List, Tuple

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
        default=(256, 192),
        metavar=('H', 'W'),
        help='input height and width (default: 256 192)')
    parser.add_argument(
        '--breakdown',
        action='store_true',
        help='also print the MACs per module type')
    return parser.parse_args()


def build_model(config: str) -> nn.Module:
    """The model of ``config`` in eval mode, randomly initialised.

    The weights do not change the counts.
    """
    register_all_modules()
    return MODELS.build(Config.fromfile(config_path(config)).model).eval()


def measure(config: str, input_shape: Tuple[int, int]) -> Dict:
    """``count_flops`` of one forward of a (1, 3, H, W) image through
    backbone, neck and head."""
    model = build_model(config)
    # mode 'tensor' runs extract_feat + head.forward, without data
    # preprocessing or decoding
    return count_flops(model,
                       (torch.zeros(1, 3, *input_shape), None, 'tensor'))


def format_table(rows: List[Tuple[str, Dict]]) -> str:
    """Markdown table: config, params (M), GFLOPs in both conventions."""
    lines = [
        '| config | params (M) | GFLOPs authors | GFLOPs full |',
        '| --- | ---: | ---: | ---: |'
    ]
    lines += [
        f"| {name} | {r['params'] / 1e6:.3f} | {r['authors'] / 1e9:.3f} "
        f"| {r['full'] / 1e9:.3f} |" for name, r in rows
    ]
    return '\n'.join(lines)


def main() -> None:
    args = parse_args()
    shape = tuple(args.input_shape)
    rows = []
    for config in args.configs:
        result = measure(config, shape)
        name = config.rsplit('/', 1)[-1].removesuffix('.py')
        rows.append((name, result))
        if args.breakdown:
            parts = ', '.join(f'{k} {v / 1e9:.4f}'
                              for k, v in sorted(result['by_type'].items()))
            print(f'{name} GMACs by module type: {parts}')
    print(f'input 1x3x{shape[0]}x{shape[1]}, eval mode; '
          'FLOPs = multiply-accumulates')
    print(format_table(rows))


if __name__ == '__main__':
    main()
