#!/usr/bin/env python
"""Convert an authors' GTPT checkpoint (flat or wrapped) into an MMPose
checkpoint of this package.

    python tools/convert_official_checkpoint.py SRC DST [--config CONFIG]

Takes the EMA branch, maps the keys, checks every key and shape against the
model of CONFIG (detected from the checkpoint when omitted) and writes DST
atomically. Nothing but tensors and plain containers is ever unpickled.
"""
import argparse
import os.path as osp
import sys
from collections import OrderedDict
from typing import Optional

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
    """Check ``state`` against the model of ``config``.

    Args:
        state (OrderedDict): Converted ``backbone.*`` / ``head.*`` weights.
        config (str): The config of the target model.

    Returns:
        OrderedDict: ``state`` in the model's key order and dtypes.

    Raises:
        CheckpointMismatchError: A weight is missing, extra or of another
            shape (the first one is named).
    """
    from mmengine.config import Config
    from mmpose.registry import MODELS
    from mmpose.utils import register_all_modules

    from gtpt_mmpose.models.checkpoint_fit import check_weights_fit

    register_all_modules()
    model = MODELS.build(Config.fromfile(config).model)
    check_weights_fit(model, state, '', osp.basename(config))
    expected = model.state_dict()
    return OrderedDict((k, state[k].to(expected[k].dtype)) for k in expected)


def convert(src: str, dst: str, config: Optional[str] = None) -> str:
    """Convert ``src`` into ``dst``; return a one-line summary.

    Args:
        src (str): The authors' checkpoint.
        dst (str): The converted checkpoint to write (atomically).
        config (str, optional): Config of the target model; detected from
            the weights when not given.

    Returns:
        str: What was converted.
    """
    import gtpt_mmpose
    from gtpt_mmpose.converters import (convert_official_state_dict,
                                        detect_variant,
                                        load_official_checkpoint)
    from gtpt_mmpose.models.backbones.keypoint_layout import (DEFAULT_METAINFO,
                                                              load_metainfo)
    from gtpt_mmpose.utils.config_paths import config_path
    from gtpt_mmpose.utils.safe_checkpoint import save_checkpoint_file

    state = convert_official_state_dict(load_official_checkpoint(src))
    arch, num_keypoints = detect_variant(state)
    dataset = 'coco' if num_keypoints == 17 else 'coco-wholebody'
    config = config_path(config or f'gtpt-{arch}_{dataset}')
    state = check_against_model(state, config)
    checkpoint = dict(
        state_dict=state,
        meta=dict(
            # what MMPose's init_model and fine-tuning read the keypoints from
            dataset_meta=load_metainfo(DEFAULT_METAINFO[num_keypoints]),
            converted_from=osp.basename(src),
            arch=arch,
            num_keypoints=num_keypoints,
            config=osp.basename(config),
            gtpt_mmpose=gtpt_mmpose.__version__))
    save_checkpoint_file(checkpoint, dst)
    return (f'GTPT-{arch.upper()} {num_keypoints} keypoints, {len(state)} '
            f'tensors -> {dst} (config {osp.basename(config)})')


def main(argv=None) -> int:
    args = parse_args(argv)
    from gtpt_mmpose.utils.safe_checkpoint import CheckpointFileError

    try:
        print(convert(args.src, args.dst, args.config))
    # a file that cannot be read, converted or written: one line, not a
    # traceback
    except (OSError, CheckpointFileError, ValueError) as exc:
        raise SystemExit(f'convert_official_checkpoint: {exc}') from None
    return 0


if __name__ == '__main__':
    sys.exit(main())
