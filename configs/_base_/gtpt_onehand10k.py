# OneHand10K (one hand, 21 keypoints): MMPose's OneHand10KDataset and its
# PCK@0.2 (of the box), AUC and EPE, 256x256 crops as MMPose's hand configs;
# ground-truth boxes. Variants set arch and widths.
_base_ = ['./gtpt_256x256.py']

dataset_type = 'OneHand10KDataset'
# or GTPT_DATA_ROOT=... in the environment
data_root = '{{$GTPT_DATA_ROOT:data/onehand10k/}}'
num_keypoints = 21
metainfo = dict(from_file='configs/_base_/datasets/onehand10k.py')
# A hand's keypoints have no head/upper/lower type, so the groups are set
# here: three, as the authors' (the same cost), each a connected region of
# the hand for its own visual tokens: the wrist with the thumb, forefinger
# with middle finger, ring finger with little finger
keypoint_groups = [
    ['wrist', 'thumb1', 'thumb2', 'thumb3', 'thumb4'],
    [f'{f}{i}' for f in ('forefinger', 'middle_finger') for i in range(1, 5)],
    [f'{f}{i}' for f in ('ring_finger', 'pinky_finger') for i in range(1, 5)],
]

model = dict(
    backbone=dict(
        num_keypoints=num_keypoints,
        metainfo=metainfo,
        keypoint_groups=keypoint_groups))

# MMPose's hand augmentation (RTMPose hand5): any rotation, scale 0.5-1.5,
# flips (a flipped left hand is a right one: flip_indices keep every
# keypoint); no half-body (no body halves), no shift (the authors')
train_pipeline = [
    dict(type='LoadImageAsBGR', color_type='color_ignore_orientation'),
    dict(type='GetBBoxCenterScale', padding=1.25),
    dict(type='RandomFlip', direction='horizontal', prob=0.5),
    dict(
        type='RandomBBoxTransform',
        shift_prob=0.,
        scale_factor=(0.5, 1.5),
        scale_prob=1.0,
        rotate_factor=180.,
        rotate_prob=0.6),
    dict(type='TopdownAffine', input_size={{_base_.input_size}}),
    dict(type='GenerateTarget', encoder={{_base_.codec}}),
    dict(type='PackPoseInputs'),
]
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/onehand10k_train.json',
        data_prefix=dict(img=''),
        pipeline=train_pipeline))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/onehand10k_test.json',
        bbox_file=None,
        data_prefix=dict(img='')))
test_dataloader = val_dataloader

val_evaluator = [
    dict(type='PCKAccuracy', thr=0.2),
    dict(type='AUC'),
    dict(type='EPE'),
]
test_evaluator = val_evaluator
default_hooks = dict(checkpoint=dict(save_best='AUC'))
