# CrowdPose (14 keypoints): MMPose's CrowdPoseDataset and CrowdPose AP (AP
# over all, easy, medium and hard crowds), the COCO recipe at 256x192 (as
# RTMPose's CrowdPose config); variants set arch and widths.
_base_ = ['./gtpt_coco.py']
import os.path as osp  # noqa: E402 (data_root with or without its slash)

dataset_type = 'CrowdPoseDataset'
# or GTPT_DATA_ROOT=... in the environment
data_root = '{{$GTPT_DATA_ROOT:data/crowdpose/}}'
num_keypoints = 14
# the keypoint names and types GTPT's layout comes from (docs/layouts.md):
# groups head (top_head, neck), upper and lower body by MMPose's types
metainfo = dict(from_file='configs/_base_/datasets/crowdpose.py')

model = dict(backbone=dict(num_keypoints=num_keypoints, metainfo=metainfo))
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/mmpose_crowdpose_trainval.json',
        data_prefix=dict(img='images/')))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/mmpose_crowdpose_test.json',
        bbox_file=osp.join(data_root,
                           'annotations/det_for_crowd_test_0.1_0.5.json'),
        data_prefix=dict(img='images/')))
test_dataloader = val_dataloader

# COCO's settings (score threshold, OKS-NMS) with CrowdPose's evaluation
val_evaluator = dict(
    ann_file=osp.join(data_root, 'annotations/mmpose_crowdpose_test.json'),
    use_area=False,
    iou_type='keypoints_crowd',
    prefix='crowdpose')
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='crowdpose/AP'))
