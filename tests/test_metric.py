"""WholeBodyPartMetric (issues 13 and 16): the ground truth scores AP 1.0 on
every part; the authors' threshold is one fact in GTPTHead's score units;
MMPose's CocoWholeBodyMetric, which it extends, needs it for a body file."""
import json
import math
import os.path as osp

import numpy as np
import pytest
from conftest import MINI_DATA, config_file

from gtpt_mmpose.datasets.wholebody_layout import WHOLEBODY_PARTS

WHOLEBODY_ANN = osp.join(MINI_DATA, 'annotations',
                         'coco_wholebody_val_v1.0.json')
PARTS = ('body', 'foot', 'face', 'hand', 'lefthand', 'righthand')


def ground_truth_as_predictions() -> list:
    """One prediction per annotated person: its own keypoints, score 1.

    Unlabelled keypoints go to the centre of the person's box: COCOeval
    measures a part without labels by the distance to the (enlarged) box, so
    this prediction matches such a part's ignored ground truth, as a model's
    would, instead of being a false positive at (0, 0).
    """
    with open(WHOLEBODY_ANN) as f:
        annotations = json.load(f)['annotations']
    samples = []
    for ann in annotations:
        if ann.get('iscrowd') or not ann.get('num_keypoints'):
            continue
        xyv = np.concatenate([
            np.array(ann[key], np.float32).reshape(-1, 3)
            for _, key, _ in WHOLEBODY_PARTS
        ])
        x, y, w, h = ann['bbox']
        xyv[xyv[:, 2] == 0, :2] = (x + w / 2, y + h / 2)
        samples.append(
            dict(
                id=ann['id'],
                img_id=ann['image_id'],
                category_id=1,
                gt_instances=dict(),
                pred_instances=dict(
                    keypoints=xyv[None, :, :2],
                    keypoint_scores=np.ones((1, len(xyv)), np.float32),
                    bbox_scores=np.ones(1, np.float32))))
    return samples


def evaluate(metric, samples) -> dict:
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    metric.dataset_meta = parse_pose_metainfo(
        dict(from_file='configs/_base_/datasets/coco_wholebody.py'))
    metric.process([], samples)
    return metric.evaluate(len(samples))


def test_the_ground_truth_scores_ap_1_on_every_part(tmp_path):
    from mmpose.registry import METRICS
    metric = METRICS.build(
        dict(
            type='WholeBodyPartMetric',
            ann_file=WHOLEBODY_ANN,
            outfile_prefix=str(tmp_path / 'gt')))
    samples = ground_truth_as_predictions()
    assert len(samples) == 12
    results = evaluate(metric, samples)
    assert results['coco-wholebody/AP'] == 1.0
    for part in PARTS:
        assert results[f'coco-wholebody/{part}/AP'] == 1.0, part
        assert results[f'coco-wholebody/{part}/AR'] == 1.0, part


def test_the_threshold_is_the_authors_in_gtpt_heads_score_units():
    """0.01 on probabilities; GTPTHead multiplies probabilities by its
    score_scale, so every config's COCO-style metric (the ones that
    threshold scores: COCO, COCO-WholeBody, CrowdPose, AIC, Halpe, AP-10K)
    and the metric's default use 0.01 times it."""
    import glob

    from mmengine.config import Config
    from mmpose.registry import MODELS

    from gtpt_mmpose.evaluation.wholebody_part_metric import \
        DEFAULT_KEYPOINT_SCORE_THR
    thresholded = ('CocoMetric', 'CocoWholeBodyMetric', 'WholeBodyPartMetric')
    checked = set()
    for path in glob.glob(config_file('gtpt-*')):
        cfg = Config.fromfile(path)
        scale = MODELS.build(cfg.model.head).score_scale
        assert scale == pytest.approx(4 * math.sqrt(2 * math.pi))
        for evaluators in (cfg.val_evaluator, cfg.test_evaluator):
            for evaluator in (evaluators if isinstance(evaluators, list) else
                              [evaluators]):
                if evaluator.type in thresholded:
                    assert evaluator.keypoint_score_thr == pytest.approx(
                        0.01 * scale), path
                    checked.add(osp.basename(path)[:-3].split('_', 1)[1])
    assert checked == {
        'coco', 'coco_mini', 'coco-wholebody', 'coco-wholebody_mini',
        'crowdpose', 'aic', 'halpe', 'ap10k'
    }
    assert DEFAULT_KEYPOINT_SCORE_THR == pytest.approx(0.01 * scale)


def test_mmposes_metric_accepts_a_body_file_and_fails_only_at_the_end(
        tmp_path):
    """Why WholeBodyPartMetric checks its file when built: MMPose's metric
    takes a COCO body file and fails with a bare KeyError after a whole
    validation epoch."""
    from mmpose.registry import METRICS
    body = osp.join(MINI_DATA, 'annotations', 'person_keypoints_val2017.json')
    metric = METRICS.build(
        dict(
            type='CocoWholeBodyMetric',
            ann_file=body,
            outfile_prefix=str(tmp_path / 'x')))  # built without a word
    with pytest.raises(KeyError, match='foot_kpts'):
        evaluate(metric, ground_truth_as_predictions())
    with pytest.raises(ValueError, match=f'{body} is not a COCO-WholeBody'):
        METRICS.build(dict(type='WholeBodyPartMetric', ann_file=body))
