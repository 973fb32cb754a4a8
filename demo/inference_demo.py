#!/usr/bin/env python
"""Whole-body pose with GTPT on an image, a folder of images or a video,
through MMPose's APIs.

    # the whole image is the person box (offline, no detector):
    MMPoseInferencer python demo/inference_demo.py INPUT --config CONFIG
    --checkpoint CKPT --out-dir OUT # an MMDetection person detector, then
    top-down pose on each person box python demo/inference_demo.py INPUT ...
    --det-config DET_CFG --det-checkpoint DET_CKPT # your own boxes:
    {"image.jpg": [[x, y, w, h], ...]} or a COCO detection file python
    demo/inference_demo.py IMAGE_OR_FOLDER ... --bboxes boxes.json

Writes OUT/vis/<name> (the drawn predictions; a video for a video) and
OUT/predictions/<stem>.json in MMPoseInferencer's layout: a list with one dict
per person (keypoints, keypoint_scores, bbox, bbox_score); for a video a list
of {frame_id, instances}. Where nobody is found the list is empty.
"""
import argparse
import json
import mimetypes
import os
import os.path as osp
import sys
from typing import Callable, Dict, List, NoReturn, Optional, Tuple, TypeVar

import numpy as np

NMS_THR = 0.3  # MMPose's default IoU threshold for detector boxes
COCO_PERSON = 1  # category id of people in COCO detection files

Boxes = np.ndarray  # (N, 5): x1, y1, x2, y2, score
T = TypeVar('T')


def fail(message: str) -> NoReturn:
    """Stop with one line naming the problem, and no traceback."""
    raise SystemExit(f'inference_demo: {message}')


def build(what: str, config: str, checkpoint: str, factory: Callable[[],
                                                                     T]) -> T:
    """Build a model; a config or checkpoint that does not fit ends in one
    line, not a traceback."""
    try:
        return factory()
    # MMEngine raises many kinds for a bad config or checkpoint
    except Exception as e:
        fail(f'cannot build the {what} from {config!r} and {checkpoint!r}: '
             f'{type(e).__name__}: {e}')


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('input', help='an image, a folder of images, or a video')
    p.add_argument('--config', required=True, help='GTPT whole-body config')
    p.add_argument('--checkpoint', required=True, help='its weights')
    p.add_argument(
        '--out-dir', required=True, help='writes vis/ and predictions/ here')
    p.add_argument(
        '--det-config', help='MMDetection config of a person detector')
    p.add_argument('--det-checkpoint', help='its weights')
    p.add_argument(
        '--bboxes',
        help='JSON {"image file name": [[x, y, w, h], ...]} or a COCO '
        'detection file')
    p.add_argument(
        '--bbox-thr',
        type=float,
        default=0.3,
        help='minimum score of detector / COCO-file boxes')
    p.add_argument(
        '--kpt-thr',
        type=float,
        help='minimum score of drawn keypoints (default: MMPose\'s, 0.3)')
    p.add_argument('--device', default='cpu')
    return p.parse_args(argv)


def media_type(path: str) -> Optional[str]:
    """'image', 'video' or None, by file name, as MMPoseInferencer decides."""
    guess = mimetypes.guess_type(path)[0]
    return guess.split('/')[0] if guess else None


def collect_inputs(args: argparse.Namespace) -> Tuple[str, List[str]]:
    """Check every path before any model is built. Returns ('images', paths) or
    ('video', [path])."""
    for what, path in (('input', args.input), ('config', args.config),
                       ('checkpoint', args.checkpoint), ('detector config',
                                                         args.det_config),
                       ('detector checkpoint',
                        args.det_checkpoint), ('boxes file', args.bboxes)):
        if path is not None and not osp.exists(path):
            fail(f'{what} {path!r} does not exist')
    if bool(args.det_config) != bool(args.det_checkpoint):
        fail('give both --det-config and --det-checkpoint, or neither')
    if args.det_config and args.bboxes:
        fail('give --bboxes or a detector, not both')
    import mmcv

    if osp.isdir(args.input):
        images = sorted(
            osp.join(args.input, f) for f in os.listdir(args.input) if
            media_type(f) == 'image' and osp.isfile(osp.join(args.input, f)))
        if not images:
            fail(f'no images in folder {args.input!r}')
    elif media_type(args.input) == 'video':
        if args.bboxes:
            fail('--bboxes names image files; for a video use the whole frame '
                 'or a detector')
        video = mmcv.VideoReader(args.input)
        if not video.opened or video.read() is None:
            fail(f'cannot read video {args.input!r}')
        return 'video', [args.input]
    elif media_type(args.input) == 'image':
        if not readable(args.input):
            fail(f'cannot read image {args.input!r}')
        return 'images', [args.input]
    else:
        fail(f'input {args.input!r} is not an image, a video or a folder')
    # in a folder, an unreadable file is reported and the others go on
    good = [path for path in images if readable(path)]
    for path in sorted(set(images) - set(good)):
        print(
            f'inference_demo: cannot read image {path!r}; skipped',
            file=sys.stderr)
    if not good:
        fail(f'no readable images in folder {args.input!r}')
    return 'images', good


def readable(path: str) -> bool:
    """Whether ``path`` decodes as an image (as the model's pipeline reads
    it)."""
    from gtpt_mmpose.datasets import BadSampleError, LoadImageAsBGR
    try:
        LoadImageAsBGR().read(path)
    except BadSampleError:
        return False
    return True


def drawing_options(args: argparse.Namespace) -> dict:
    """How MMPose's visualiser draws: boxes, and keypoints above
    ``--kpt-thr`` (MMPose's own default when not given)."""
    options = dict(draw_bbox=True, show=False)
    if args.kpt_thr is not None:
        options['kpt_thr'] = args.kpt_thr
    return options


def load_boxes(path: str, bbox_thr: float) -> Dict[str, Boxes]:
    """Boxes per image file name, from ``{name: [[x, y, w, h], ...]}`` (score
    1) or from a COCO detection list (people only, score > ``bbox_thr``; image
    ids matched to COCO's file names)."""
    try:
        with open(path) as f:
            data = json.load(f)
        if isinstance(data, dict):
            return {
                name: xywh_to_boxes(xywh_rows(b))
                for name, b in data.items()
            }
        per_image: Dict[str, list] = {}
        for d in data:
            if d['category_id'] == COCO_PERSON and d.get('score',
                                                         1.0) > bbox_thr:
                per_image.setdefault(
                    f"{d['image_id']:012d}",
                    []).append(list(d['bbox']) + [d.get('score', 1.0)])
    except (OSError, ValueError, TypeError, KeyError) as e:
        fail(f'boxes file {path!r} is neither '
             f'{{"file.jpg": [[x, y, w, h], ...]}} nor a COCO detection list '
             f'({type(e).__name__}: {e})')
    return {
        name: xywh_to_boxes(np.array(b, np.float32))
        for name, b in per_image.items()
    }


def xywh_rows(rows: list) -> np.ndarray:
    """[[x, y, w, h], ...] (possibly empty) -> (N, 4) array; anything else is a
    ValueError."""
    xywh = np.array(rows, np.float32)
    if xywh.size == 0:  # nobody in this image
        return xywh.reshape(0, 4)
    if xywh.ndim != 2 or xywh.shape[1] != 4:
        raise ValueError(f'expected [[x, y, w, h], ...], got {rows!r}')
    return xywh


def xywh_to_boxes(xywh: np.ndarray) -> Boxes:
    """(N, 4) x, y, w, h, or (N, 5) with a score -> (N, 5) x1, y1, x2, y2,
    score."""
    scores = xywh[:, 4:5] if xywh.shape[1] > 4 else np.ones(
        (len(xywh), 1), np.float32)
    return np.concatenate((xywh[:, :2], xywh[:, :2] + xywh[:, 2:4], scores),
                          axis=1)


def boxes_for(boxes: Dict[str, Boxes], image_path: str) -> Boxes:
    """An image's boxes, looked up by file name, then by stem (COCO detection
    files)."""
    name = osp.basename(image_path)
    return boxes.get(
        name, boxes.get(osp.splitext(name)[0], np.zeros((0, 5), np.float32)))


def build_detector(args: argparse.Namespace) -> Callable[[np.ndarray], Boxes]:
    """MMDetection's detector as MMPose's top-down demo uses it: people (class
    0) above ``--bbox-thr``, then NMS."""
    from mmdet.apis import inference_detector, init_detector
    from mmpose.evaluation.functional import nms
    from mmpose.utils import adapt_mmdet_pipeline

    detector = init_detector(
        args.det_config, args.det_checkpoint, device=args.device)
    detector.cfg = adapt_mmdet_pipeline(detector.cfg)

    def detect(image: np.ndarray) -> Boxes:
        found = inference_detector(detector,
                                   image).pred_instances.cpu().numpy()
        boxes = np.concatenate((found.bboxes, found.scores[:, None]), axis=1)
        boxes = boxes[(found.labels == 0) & (found.scores > args.bbox_thr)]
        return boxes[nms(boxes, NMS_THR)]

    return detect


class TopdownPredictor:
    """``inference_topdown`` on given boxes, drawn with MMPose's visualiser; no
    boxes, nobody."""

    def __init__(self, args: argparse.Namespace) -> None:
        from mmpose.apis import init_model
        from mmpose.registry import VISUALIZERS

        self.model = init_model(
            args.config, args.checkpoint, device=args.device)
        # a name of its own: MMEngine keeps one visualiser per name and process
        self.visualizer = VISUALIZERS.build(
            dict(self.model.cfg.visualizer, name=f'inference_demo_{id(self)}'))
        self.visualizer.set_dataset_meta(self.model.dataset_meta)
        self.drawing_options = drawing_options(args)

    def __call__(self, image: np.ndarray,
                 boxes: Boxes) -> Tuple[list, np.ndarray]:
        """BGR image, (N, 5) boxes -> (per-person dicts as MMPoseInferencer
        writes them, RGB drawing)."""
        from mmpose.apis import inference_topdown
        from mmpose.structures import (PoseDataSample, merge_data_samples,
                                       split_instances)

        sample = PoseDataSample()
        # no boxes: inference_topdown would take the whole image as a person
        if len(boxes):
            sample = merge_data_samples(
                inference_topdown(
                    self.model, image, boxes[:, :4], bbox_format='xyxy'))
            # inference_topdown sets every box score to 1
            sample.pred_instances.bbox_scores = boxes[:, 4]
        drawing = self.visualizer.add_datasample(
            'result',
            image[..., ::-1],
            data_sample=sample,
            draw_gt=False,
            **self.drawing_options)
        return split_instances(sample.get('pred_instances')), drawing


def run_topdown(args: argparse.Namespace, kind: str, paths: List[str],
                predict: TopdownPredictor,
                find_boxes: Callable[[np.ndarray, str], Boxes]) -> int:
    """Detector or user-box mode: boxes per image (or frame), then top-down
    pose on each box. Returns the number of people found."""
    import cv2
    import mmcv
    import mmengine

    vis_dir, pred_dir, found = osp.join(args.out_dir, 'vis'), osp.join(
        args.out_dir, 'predictions'), 0
    mmengine.mkdir_or_exist(vis_dir)
    mmengine.mkdir_or_exist(pred_dir)
    if kind == 'images':
        for path in paths:
            image = mmcv.imread(path)
            people, drawing = predict(image, find_boxes(image, path))
            mmcv.imwrite(drawing[..., ::-1],
                         osp.join(vis_dir, osp.basename(path)))
            mmengine.dump(
                people,
                osp.join(pred_dir,
                         osp.splitext(osp.basename(path))[0] + '.json'),
                indent='  ')
            found += len(people)
        return found
    video, frames, writer = mmcv.VideoReader(paths[0]), [], None
    for i, frame in enumerate(video):
        people, drawing = predict(frame, find_boxes(frame, paths[0]))
        # MMPoseInferencer's video output: mp4v at the input's frame rate
        if writer is None:
            writer = cv2.VideoWriter(
                osp.join(vis_dir, osp.basename(paths[0])),
                cv2.VideoWriter_fourcc(*'mp4v'), video.fps,
                (drawing.shape[1], drawing.shape[0]))
        writer.write(np.ascontiguousarray(drawing[..., ::-1]))
        frames.append(dict(frame_id=i, instances=people))
        found += len(people)
    if writer is not None:
        writer.release()
    mmengine.dump(
        frames,
        osp.join(pred_dir,
                 osp.splitext(osp.basename(paths[0]))[0] + '.json'),
        indent='  ')
    return found


def run_whole_image(args: argparse.Namespace, kind: str,
                    paths: List[str]) -> int:
    """Default mode: MMPoseInferencer with ``det_model='whole_image'`` reads,
    predicts, draws and writes. Returns the number of people found (one per
    image or frame)."""
    from mmpose.apis import MMPoseInferencer

    inferencer = build(
        'pose model', args.config, args.checkpoint, lambda: MMPoseInferencer(
            pose2d=args.config,
            pose2d_weights=args.checkpoint,
            device=args.device,
            det_model='whole_image'))
    # a video goes in as its path (the inferencer reads the frames), images as
    # the checked list
    inputs = paths[0] if kind == 'video' else paths
    results = inferencer(
        inputs,
        vis_out_dir=osp.join(args.out_dir, 'vis'),
        pred_out_dir=osp.join(args.out_dir, 'predictions'),
        **drawing_options(args))
    return sum(
        len(people) for result in results for people in result['predictions'])


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    kind, paths = collect_inputs(args)
    import gtpt_mmpose  # noqa: F401  (registries, safe checkpoint loading)

    if args.bboxes:
        boxes = load_boxes(args.bboxes, args.bbox_thr)
        predict = build('pose model', args.config, args.checkpoint,
                        lambda: TopdownPredictor(args))
        found = run_topdown(args, kind, paths, predict,
                            lambda image, path: boxes_for(boxes, path))
    elif args.det_config:
        detect = build('detector', args.det_config, args.det_checkpoint,
                       lambda: build_detector(args))
        predict = build('pose model', args.config, args.checkpoint,
                        lambda: TopdownPredictor(args))
        found = run_topdown(args, kind, paths, predict,
                            lambda image, path: detect(image))
    else:
        found = run_whole_image(args, kind, paths)
    print(f'{len(paths)} input(s), {found} people -> '
          f'{osp.join(args.out_dir, "vis")}, '
          f'{osp.join(args.out_dir, "predictions")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
