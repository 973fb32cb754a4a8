# MPII (16 keypoints): MMPose's MpiiDataset and PCKh (MpiiPCKAccuracy,
# normalised by the head boxes of mpii_gt_val.mat), 256x256 crops as
# MMPose's MPII configs; ground-truth boxes. Variants set arch and widths.
_base_ = ['./gtpt_256x256.py']
import os.path as osp  # noqa: E402 (data_root with or without its slash)

dataset_type = 'MpiiDataset'
# or GTPT_DATA_ROOT=... in the environment
data_root = '{{$GTPT_DATA_ROOT:data/mpii/}}'
num_keypoints = 16
# the keypoint names and types GTPT's layout comes from (docs/layouts.md):
# groups head (upper_neck, head_top), upper body (thorax, arms) and lower
# body (pelvis, legs) by MMPose's types
metainfo = dict(from_file='configs/_base_/datasets/mpii.py')

model = dict(backbone=dict(num_keypoints=num_keypoints, metainfo=metainfo))
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/mpii_train.json',
        data_prefix=dict(img='images/')))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/mpii_val.json',
        headbox_file=osp.join(data_root, 'annotations/mpii_gt_val.mat'),
        bbox_file=None,
        data_prefix=dict(img='images/')))
test_dataloader = val_dataloader

val_evaluator = dict(_delete_=True, type='MpiiPCKAccuracy')
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='PCK'))
