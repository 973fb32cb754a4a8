#!/usr/bin/env python
"""Convert an authors' GTPT checkpoint (flat or wrapped) into an MMPose
checkpoint of this package.

    python tools/convert_official_checkpoint.py SRC DST [--config CONFIG]

Takes the EMA branch, maps the keys, checks every key and shape against the
model of CONFIG (detected from the checkpoint when omitted) and writes DST
atomically. Nothing but tensors and plain containers is ever unpickled.
"""
import argparse
import os
import os.path as osp
import sys
import tempfile
from collections import OrderedDict

import torch


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        'src',
        help="authors' checkpoint (model_best.pth, final_state.pth or "
        "checkpoint.pth)")
    p.add_argument('dst', help='converted checkpoint to write')
    p.add_argument(
        '--config',
        help='config of the target model (default: detected from the weights)')
    return p.parse_args(argv)


def check_against_model(state: 'OrderedDict[str, torch.Tensor]',
                        config: str) -> 'OrderedDict[str, torch.Tensor]':
    """Return ``state`` in the model's key order; raise naming the first key
    that does not fit."""
    from mmengine.config import Config
    from mmpose.registry import MODELS
    from mmpose.utils import register_all_modules

    register_all_modules()
    cfg = Config.fromfile(config)
    expected = MODELS.build(cfg.model).state_dict()
    for key, value in expected.items():
        if key not in state:
            raise ValueError(
                f'the checkpoint does not fit {osp.basename(config)}: {key} '
                f'(shape {tuple(value.shape)}) is missing from it')
        if state[key].shape != value.shape:
            raise ValueError(
                f'the checkpoint does not fit {osp.basename(config)}: {key} '
                'has shape '
                f'{tuple(state[key].shape)} in the checkpoint and '
                f'{tuple(value.shape)} in the model')
    extra = [k for k in state if k not in expected]
    if extra:
        raise ValueError(
            f'the checkpoint does not fit {osp.basename(config)}: {extra[0]} '
            f'(shape {tuple(state[extra[0]].shape)}) has no place in the model'
        )
    return OrderedDict((k, state[k].to(expected[k].dtype)) for k in expected)


def main(argv=None) -> int:
    args = parse_args(argv)
    import gtpt_mmpose  # noqa: F401  (safe loading, registries)
    from gtpt_mmpose.converters import (convert_official_state_dict,
                                        detect_variant,
                                        load_official_checkpoint)
    from gtpt_mmpose.utils.config_paths import config_path

    state = convert_official_state_dict(load_official_checkpoint(args.src))
    arch, num_keypoints = detect_variant(state)
    config = config_path(
        args.config or
        f'gtpt-{arch}_{"coco" if num_keypoints == 17 else "coco-wholebody"}')
    state = check_against_model(state, config)
    checkpoint = dict(
        state_dict=state,
        meta=dict(
            converted_from=osp.basename(args.src),
            arch=arch,
            num_keypoints=num_keypoints,
            config=osp.basename(config),
            gtpt_mmpose=gtpt_mmpose.__version__))
    out_dir = osp.dirname(osp.abspath(args.dst))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out_dir, suffix='.tmp')
    os.close(fd)
    try:
        torch.save(checkpoint, tmp)
        os.replace(tmp, args.dst)  # never leave a half-written DST
    finally:
        if osp.exists(tmp):
            os.remove(tmp)
    print(
        f'GTPT-{arch.upper()} {num_keypoints} keypoints, {len(state)} tensors '
        f'-> {args.dst} '
        f'(config {osp.basename(config)})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
