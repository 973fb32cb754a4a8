# COCO-WholeBody (133 keypoints), stage 2 of the curriculum: starts from a stage-1 COCO model's
# EMA weights (set `stage1_checkpoint`, or `from_scratch=True` to train without them).
_base_ = ['./gtpt_runtime.py']

dataset_type = 'CocoWholeBodyDataset'
data_mode = 'topdown'
data_root = '{{$GTPT_DATA_ROOT:data/coco/}}'  # or GTPT_DATA_ROOT=... in the environment
num_keypoints = 133
stage1_checkpoint = None
from_scratch = False

model = dict(
    type='TopdownPoseEstimator',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(type='GTPT', num_keypoints=num_keypoints, keep_ratios=(1.0, 0.7, 0.5, 0.3)),
    head=dict(type='GTPTHead', input_size={{_base_.input_size}}, simcc_split_ratio=2.0,
              loss=dict(type='GlobalPerceivedLoss'), decoder={{_base_.codec}}),
    test_cfg=dict(flip_test=True))

train_dataloader = dict(
    batch_size=64, num_workers=4, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type=dataset_type, data_root=data_root, data_mode=data_mode,
                 ann_file='annotations/coco_wholebody_train_v1.0.json',
                 data_prefix=dict(img='train2017/'), pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    batch_size=32, num_workers=4, persistent_workers=True, drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(type=dataset_type, data_root=data_root, data_mode=data_mode,
                 ann_file='annotations/coco_wholebody_val_v1.0.json',
                 bbox_file=data_root + 'person_detection_results/COCO_val2017_detections_AP_H_56_person.json',
                 data_prefix=dict(img='val2017/'), test_mode=True, pipeline={{_base_.val_pipeline}}))
test_dataloader = val_dataloader

# body, foot, face, hand and whole-body AP/AR; keypoint score threshold 0.01, OKS-NMS 0.9 (spec §10)
val_evaluator = dict(type='WholeBodyPartMetric',
                     ann_file=data_root + 'annotations/coco_wholebody_val_v1.0.json')
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='coco-wholebody/AP', rule='greater', max_keep_ckpts=1))
custom_hooks = [
    dict(type='GTPTEMAHook', momentum_start=0.996, priority='NORMAL'),
    dict(type='CurriculumInitHook', priority='ABOVE_NORMAL'),
]
