# Halpe full body (136 keypoints: 20 body, 6 feet, 68 face, 42 hands):
# MMPose's HalpeDataset, 256x192 as COCO-WholeBody. By the layout rule
# (docs/layouts.md) the 20 body keypoints are sparse tokens, face, hands and
# feet dense parts, so a COCO-WholeBody model fine-tunes into it part by part
# (`--cfg-options stage1_checkpoint=PATH`); unlike COCO-WholeBody, no stage-1
# run is required. Variants set arch and widths.
_base_ = ['./gtpt_coco.py']
import os.path as osp  # noqa: E402 (data_root with or without its slash)

dataset_type = 'HalpeDataset'
# or GTPT_DATA_ROOT=... in the environment
data_root = '{{$GTPT_DATA_ROOT:data/halpe/}}'
num_keypoints = 136
metainfo = dict(from_file='configs/_base_/datasets/halpe.py')

# COCO-WholeBody's keep ratios: a group keeps its dense tokens (the face
# group 68) and needs visual tokens besides (COCO's ratios keep 25 per group)
model = dict(
    backbone=dict(
        num_keypoints=num_keypoints,
        metainfo=metainfo,
        keep_ratios=(1.0, 0.7, 0.5, 0.3)))
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/halpe_train_v1.json',
        data_prefix=dict(img='hico_20160224_det/images/train2015/')))
# Halpe's validation set annotates COCO val2017 images: link them here
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/halpe_val_v1.json',
        bbox_file=None,
        data_prefix=dict(img='val2017/')))
test_dataloader = val_dataloader

# full-body AP with Halpe's 136 OKS sigmas (Halpe's own benchmark; COCO's
# score threshold and OKS-NMS), and PCK@0.1 and AUC as MMPose's Halpe
# configs evaluate
val_evaluator = [
    dict(
        type='CocoMetric',
        ann_file=osp.join(data_root, 'annotations/halpe_val_v1.json'),
        score_mode='bbox_keypoint',
        keypoint_score_thr={{_base_.keypoint_score_thr}},
        nms_mode='oks_nms',
        nms_thr=0.9,
        prefix='halpe'),
    dict(type='PCKAccuracy', thr=0.1),
    dict(type='AUC'),
]
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='halpe/AP'))
