# COCO body (17 keypoints): data, metric and the model skeleton; variants set
# arch and widths.
_base_ = ['./gtpt_runtime.py']
import os.path as osp  # noqa: E402 (data_root with or without its slash)

# MMPose's CocoDataset whose training skips a bad sample with a warning
dataset_type = 'GTPTCocoDataset'
data_mode = 'topdown'
# or GTPT_DATA_ROOT=... in the environment
data_root = '{{$GTPT_DATA_ROOT:data/coco/}}'
num_keypoints = 17

model = dict(
    type='GTPTPoseEstimator',
    data_preprocessor={{_base_.data_preprocessor}},
    backbone=dict(
        type='GTPT',
        num_keypoints=num_keypoints,
        keep_ratios=(1.0, 0.7, 0.3, 0.1)),
    head=dict(
        type='GTPTHead',
        input_size={{_base_.input_size}},
        simcc_split_ratio=2.0,
        loss=dict(type='GlobalPerceivedLoss'),
        decoder={{_base_.codec}}),
    test_cfg=dict(flip_test=True))

# Per GPU. 10 worker processes, as RTMPose's configs: the whole-body train
# pipeline costs ~16 ms of CPU per sample (one core of our 2-core CI machine:
# image decoding 4.7 ms, SimCC targets 3.8 ms, affine warp 2.1 ms), about 1 s
# per batch of 64 for one process, so a GPU that trains on a batch in a
# fraction of a second needs several to keep up. Batches reach the GPU from
# pinned (page-locked) memory.
train_dataloader = dict(
    batch_size=64,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/person_keypoints_train2017.json',
        data_prefix=dict(img='train2017/'),
        pipeline={{_base_.train_pipeline}}))
val_dataloader = dict(
    batch_size=32,
    num_workers=10,
    persistent_workers=True,
    pin_memory=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False, round_up=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_mode=data_mode,
        ann_file='annotations/person_keypoints_val2017.json',
        bbox_file=osp.join(data_root, 'person_detection_results',
                           'COCO_val2017_detections_AP_H_56_person.json'),
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline={{_base_.val_pipeline}}))
test_dataloader = val_dataloader

# authors' evaluation: keypoint score threshold 0.01 (on probabilities),
# OKS-NMS 0.9 (spec §10)
val_evaluator = dict(
    type='CocoMetric',
    ann_file=osp.join(data_root, 'annotations/person_keypoints_val2017.json'),
    score_mode='bbox_keypoint',
    keypoint_score_thr={{_base_.keypoint_score_thr}},
    nms_mode='oks_nms',
    nms_thr=0.9)
test_evaluator = val_evaluator
default_hooks = dict(
    checkpoint=dict(save_best='coco/AP', rule='greater', max_keep_ckpts=1))
