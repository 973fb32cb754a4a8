#!/usr/bin/env python
"""The README's main job (`make demo`): the paper's body -> whole-body
curriculum, end to end.

1. stage 1: GTPT-T on the 17 body keypoints (`mim train gtpt_mmpose
   configs/gtpt-t_coco_mini.py`);
2. stage 2: GTPT-T on all 133 keypoints, initialised from stage 1's EMA
   weights;
3. `mim test` of stage 2 with body / foot / face / hand / whole-body AP;
4. a picture of the predictions on one image.

The data root defaults to the bundled 4-image mini set;
`GTPT_DATA_ROOT=/path/to/coco make demo` runs the same job on the full data set
(then also raise the epochs in the configs).
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
MIM = [sys.executable, '-m', 'mim']
# mim's complaint about each ignored path, kept in the log only
NOISE = 'is ignored: it is neither a file nor a directory'


def run(cmd, log_path: str) -> None:
    """Run a command, echoing its output to the terminal and to ``log_path``.
    """
    print('\n$ ' + ' '.join(cmd), flush=True)
    with open(log_path, 'w') as log:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True)
        for line in proc.stdout:
            if 'Warning' in line or NOISE in line:
                log.write(line)
                continue
            sys.stdout.write(line)
            log.write(line)
        if proc.wait():
            sys.exit(f'command failed ({proc.returncode}); log: {log_path}')


def last_checkpoint(work_dir: str) -> str:
    with open(osp.join(work_dir, 'last_checkpoint')) as f:
        return f.read().strip()


def test_metrics(work_dir: str) -> dict:
    """Metrics of the newest `mim test` run in ``work_dir`` (MMEngine's json
    log)."""
    logs = sorted(glob.glob(osp.join(work_dir, '*', '*.json')))
    if not logs:
        sys.exit(f'no metrics written in {work_dir}')
    with open(logs[-1]) as f:
        return json.loads(f.read().strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        '--work-dir', default=osp.join(REPO, 'work_dirs', 'demo'))
    args = parser.parse_args()
    os.makedirs(args.work_dir, exist_ok=True)
    stage1, stage2, test_dir = (
        osp.join(args.work_dir, d) for d in ('stage1', 'stage2', 'test'))
    times = {}

    start = time.time()
    run(
        MIM + [
            'train', 'gtpt_mmpose', 'configs/gtpt-t_coco_mini.py',
            '--work-dir', stage1
        ], osp.join(args.work_dir, 'stage1.log'))
    times['stage 1 (body)'] = time.time() - start
    body_metrics = test_metrics_from_val(stage1)

    start = time.time()
    run(
        MIM + [
            'train', 'gtpt_mmpose', 'configs/gtpt-t_coco-wholebody_mini.py',
            '--work-dir', stage2, '--cfg-options',
            f'stage1_checkpoint={last_checkpoint(stage1)}'
        ], osp.join(args.work_dir, 'stage2.log'))
    times['stage 2 (whole body)'] = time.time() - start

    start = time.time()
    checkpoint = last_checkpoint(stage2)
    run(
        MIM + [
            'test', 'gtpt_mmpose', 'configs/gtpt-t_coco-wholebody_mini.py',
            '--checkpoint', checkpoint, '--work-dir', test_dir
        ], osp.join(args.work_dir, 'test.log'))
    metrics = test_metrics(test_dir)
    times['test'] = time.time() - start

    start = time.time()
    picture = draw_predictions(checkpoint, args.work_dir)
    times['picture'] = time.time() - start

    print('\n==== GTPT-T demo: body -> whole-body curriculum on the mini set '
          '====')
    print('stage 1 body AP (coco/AP): '
          f'{body_metrics.get("coco/AP", float("nan")):.3f}')
    for part in ('body', 'foot', 'face', 'hand'):
        print(f'stage 2 {part} AP: {metrics[f"coco-wholebody/{part}/AP"]:.3f}')
    print('stage 2 whole-body AP (coco-wholebody/AP): '
          f'{metrics["coco-wholebody/AP"]:.3f}')
    print('times: ' + ', '.join(f'{k} {v / 60:.1f} min'
                                for k, v in times.items()))
    print(f'checkpoint: {checkpoint}\npicture: {picture}')
    with open(osp.join(args.work_dir, 'summary.json'), 'w') as f:
        json.dump(
            dict(
                stage1=body_metrics,
                stage2=metrics,
                seconds=times,
                picture=picture),
            f,
            indent=1)
    return 0


def test_metrics_from_val(work_dir: str) -> dict:
    """The last validation metrics of a training run (MMEngine's scalars log).
    """
    scalars = sorted(
        glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')))
    metrics = {}
    with open(scalars[-1]) as f:
        for line in f:
            row = json.loads(line)
            if 'coco/AP' in row:
                metrics = row
    return metrics


def draw_predictions(checkpoint: str, work_dir: str) -> str:
    """Predict on one mini-set image with its ground-truth boxes and save
    MMPose's visualisation."""
    import mmcv
    import numpy as np
    from mmpose.apis import inference_topdown, init_model
    from mmpose.registry import VISUALIZERS
    from mmpose.structures import merge_data_samples

    import gtpt_mmpose  # noqa: F401
    from gtpt_mmpose.utils.config_paths import config_path

    cfg_path = config_path('gtpt-t_coco-wholebody_mini')
    model = init_model(cfg_path, checkpoint, device='cpu')
    data_root = model.cfg.test_dataloader.dataset.data_root
    ann = json.load(
        open(
            osp.join(data_root, 'annotations',
                     'coco_wholebody_val_v1.0.json')))
    image = ann['images'][2]
    boxes = np.array([
        a['bbox'] for a in ann['annotations'] if a['image_id'] == image['id']
    ],
                     dtype=np.float32)
    boxes[:, 2:] += boxes[:, :2]  # xywh -> xyxy
    img_path = osp.join(data_root, 'val2017', image['file_name'])
    result = merge_data_samples(
        inference_topdown(model, img_path, boxes, bbox_format='xyxy'))
    visualizer = VISUALIZERS.build(model.cfg.visualizer)
    visualizer.set_dataset_meta(model.dataset_meta)
    out = osp.join(work_dir, 'predictions_' + image['file_name'])
    visualizer.add_datasample(
        'result',
        mmcv.imread(img_path, channel_order='rgb'),
        data_sample=result,
        draw_gt=False,
        draw_bbox=True,
        show=False,
        out_file=out)
    return out


if __name__ == '__main__':
    sys.exit(main())
