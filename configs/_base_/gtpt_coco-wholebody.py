# COCO-WholeBody (133 keypoints), stage 2 of the curriculum: starts from a
# stage-1 COCO model's EMA weights, `stage1_checkpoint` if set, else the best
# checkpoint in `stage1_work_dir` (`from_scratch=True` trains without them).
_base_ = ['./gtpt_coco.py']
import os.path as osp  # noqa: E402 (data_root with or without its slash)

# refuses a non-whole-body annotation file; training skips bad samples
dataset_type = 'CheckedCocoWholeBodyDataset'
# or GTPT_DATA_ROOT=... in the environment
data_root = '{{$GTPT_DATA_ROOT:data/coco/}}'
num_keypoints = 133
stage1_checkpoint = None
stage1_work_dir = None  # set by each variant
from_scratch = False

model = dict(
    backbone=dict(
        num_keypoints=num_keypoints, keep_ratios=(1.0, 0.7, 0.5, 0.3)))
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        ann_file='annotations/coco_wholebody_train_v1.0.json'))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        ann_file='annotations/coco_wholebody_val_v1.0.json'))
test_dataloader = val_dataloader

# body, foot, face, hand and whole-body AP/AR; the authors' keypoint score
# threshold and OKS-NMS 0.9 (spec §10)
val_evaluator = dict(
    _delete_=True,
    type='WholeBodyPartMetric',
    keypoint_score_thr={{_base_.keypoint_score_thr}},
    ann_file=osp.join(data_root, 'annotations/coco_wholebody_val_v1.0.json'))
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='coco-wholebody/AP'))
# gtpt_runtime.py's hooks, with stage 2's initialisation from stage 1
custom_hooks = [
    dict(type='GTPTEMAHook', momentum_start=0.996, priority='NORMAL'),
    dict(type='CurriculumInitHook', priority='ABOVE_NORMAL'),
    dict(type='SyncBuffersHook'),
    dict(type='KeypointCountCheckHook'),
    dict(type='NonFiniteCheckHook'),
    dict(type='BadSampleReportHook'),
    dict(type='TF32Hook'),
]
