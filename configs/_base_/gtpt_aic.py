# AI Challenger (14 keypoints): MMPose's AicDataset and COCO AP with AIC's
# OKS sigmas (no areas: use_area=False), the COCO recipe at 256x192 (as
# MMPose's AIC configs); ground-truth boxes. Variants set arch and widths.
_base_ = ['./gtpt_coco.py']
import os.path as osp  # noqa: E402 (data_root with or without its slash)

dataset_type = 'AicDataset'
# or GTPT_DATA_ROOT=... in the environment
data_root = '{{$GTPT_DATA_ROOT:data/aic/}}'
num_keypoints = 14
# the keypoint names and types GTPT's layout comes from (docs/layouts.md):
# groups head (head_top, neck), upper and lower body by MMPose's types
metainfo = dict(from_file='configs/_base_/datasets/aic.py')

model = dict(backbone=dict(num_keypoints=num_keypoints, metainfo=metainfo))
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/aic_train.json',
        data_prefix=dict(img='ai_challenger_keypoint_train_20170902/'
                         'keypoint_train_images_20170902/')))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/aic_val.json',
        bbox_file=None,
        data_prefix=dict(img='ai_challenger_keypoint_validation_20170911/'
                         'keypoint_validation_images_20170911/')))
test_dataloader = val_dataloader

val_evaluator = dict(
    ann_file=osp.join(data_root, 'annotations/aic_val.json'), use_area=False)
test_evaluator = val_evaluator
