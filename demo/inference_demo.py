#!/usr/bin/env python
"""Whole-body pose with GTPT on images, folders or videos, through MMPose's own inference APIs.

    # the whole image is the person box (offline, no detector)
    python demo/inference_demo.py IMAGE_OR_DIR_OR_VIDEO --config CONFIG --checkpoint CKPT --out-dir OUT
    # an MMDetection person detector
    python demo/inference_demo.py INPUT ... --det-config DET_CFG --det-checkpoint DET_CKPT
    # your own boxes: {"image.jpg": [[x, y, w, h], ...]} or a COCO detection file
    python demo/inference_demo.py IMAGE_OR_DIR ... --bboxes boxes.json

Writes OUT/vis/<name> (drawn predictions) and OUT/predictions/<name>.json (MMPoseInferencer's
layout: one dict per person with keypoints, keypoint_scores, bbox, bbox_score).
"""
import argparse
import json
import os
import os.path as osp
import sys
from typing import Dict, List

import numpy as np

# GTPT's keypoint scores are SimCC probabilities: a confident keypoint peaks near 0.1
DEFAULT_KPT_THR = 0.03
IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('inputs', help='an image, a folder of images, or a video')
    p.add_argument('--config', required=True)
    p.add_argument('--checkpoint', required=True)
    p.add_argument('--out-dir', required=True)
    p.add_argument('--det-config', help='MMDetection config of a person detector')
    p.add_argument('--det-checkpoint', help='its weights')
    p.add_argument('--bboxes', help='JSON of person boxes per image (x, y, w, h)')
    p.add_argument('--kpt-thr', type=float, default=DEFAULT_KPT_THR)
    p.add_argument('--device', default='cpu')
    return p.parse_args(argv)


def check_paths(args) -> None:
    for what, path in (('input', args.inputs), ('config', args.config), ('checkpoint', args.checkpoint),
                       ('detector config', args.det_config), ('detector checkpoint', args.det_checkpoint),
                       ('boxes file', args.bboxes)):
        if path is not None and not osp.exists(path):
            raise SystemExit(f'inference_demo: {what} {path!r} does not exist')
    if bool(args.det_config) != bool(args.det_checkpoint):
        raise SystemExit('inference_demo: give both --det-config and --det-checkpoint, or neither')


def run_inferencer(args) -> int:
    """Whole-image or detector mode: MMPoseInferencer does reading, detection, drawing and JSON."""
    from mmpose.apis import MMPoseInferencer
    det = dict(det_model=args.det_config, det_weights=args.det_checkpoint, det_cat_ids=[0]) \
        if args.det_config else dict(det_model='whole_image')
    inferencer = MMPoseInferencer(pose2d=args.config, pose2d_weights=args.checkpoint, device=args.device, **det)
    count = 0
    for _ in inferencer(args.inputs, vis_out_dir=osp.join(args.out_dir, 'vis'),
                        pred_out_dir=osp.join(args.out_dir, 'predictions'), kpt_thr=args.kpt_thr,
                        draw_bbox=True, show=False):
        count += 1
    return count


def load_boxes(path: str) -> Dict[str, List[List[float]]]:
    """{file name: [[x, y, w, h], ...]}, from our layout or a COCO detection list."""
    with open(path) as f:
        data = json.load(f)
    if isinstance(data, dict):
        return data
    if isinstance(data, list) and all('image_id' in d and 'bbox' in d for d in data):
        raise SystemExit(f'inference_demo: {path} is a COCO detection list; it names image ids, not files: '
                         'give {"file.jpg": [[x, y, w, h], ...]} instead')
    raise SystemExit(f'inference_demo: {path} is not a {{"file.jpg": [[x, y, w, h], ...]}} mapping')


def run_with_boxes(args) -> int:
    """User-given boxes: ``inference_topdown`` per image, drawn with MMPose's visualiser."""
    import mmcv
    import mmengine
    from mmpose.apis import inference_topdown, init_model
    from mmpose.registry import VISUALIZERS
    from mmpose.structures import merge_data_samples, split_instances

    model = init_model(args.config, args.checkpoint, device=args.device)
    visualizer = VISUALIZERS.build(model.cfg.visualizer)
    visualizer.set_dataset_meta(model.dataset_meta)
    boxes = load_boxes(args.bboxes)
    images = [args.inputs] if osp.isfile(args.inputs) else sorted(
        osp.join(args.inputs, f) for f in os.listdir(args.inputs) if f.lower().endswith(IMAGE_EXTS))
    os.makedirs(osp.join(args.out_dir, 'vis'), exist_ok=True)
    os.makedirs(osp.join(args.out_dir, 'predictions'), exist_ok=True)
    for path in images:
        name = osp.basename(path)
        image = mmcv.imread(path, channel_order='rgb')
        if image is None:
            raise SystemExit(f'inference_demo: cannot read image {path!r}')
        xywh = np.array(boxes.get(name, []), dtype=np.float32).reshape(-1, 4)
        xyxy = np.concatenate((xywh[:, :2], xywh[:, :2] + xywh[:, 2:]), axis=1)
        instances = []
        if len(xyxy):  # nobody in the image: an empty result, not an error
            result = merge_data_samples(inference_topdown(model, path, xyxy, bbox_format='xyxy'))
            instances = split_instances(result.pred_instances)
            visualizer.add_datasample('result', image, data_sample=result, draw_gt=False, draw_bbox=True,
                                      kpt_thr=args.kpt_thr, show=False,
                                      out_file=osp.join(args.out_dir, 'vis', name))
        else:
            mmcv.imwrite(image[..., ::-1], osp.join(args.out_dir, 'vis', name))
        mmengine.dump(instances, osp.join(args.out_dir, 'predictions', osp.splitext(name)[0] + '.json'))
    return len(images)


def main(argv=None) -> int:
    args = parse_args(argv)
    check_paths(args)
    import gtpt_mmpose  # noqa: F401  (registries, safe checkpoint loading)
    count = run_with_boxes(args) if args.bboxes else run_inferencer(args)
    print(f'{count} input(s) -> {args.out_dir}/vis, {args.out_dir}/predictions')
    return 0


if __name__ == '__main__':
    sys.exit(main())
