# AP-10K (animals, 17 keypoints): MMPose's AP10KDataset and COCO AP with its
# OKS sigmas, 256x256 crops as RTMPose's AP-10K config (flip and half-body
# augmentation too); ground-truth boxes. Variants set arch and widths.
_base_ = ['./gtpt_256x256.py']
import os.path as osp  # noqa: E402 (data_root with or without its slash)

dataset_type = 'AP10KDataset'
# or GTPT_DATA_ROOT=... in the environment
data_root = '{{$GTPT_DATA_ROOT:data/ap10k/}}'
num_keypoints = 17
metainfo = dict(from_file='configs/_base_/datasets/ap10k.py')
# head, front body and back body. The rule (by MMPose's types) would put
# R_F_Paw, typed 'lower' in ap10k.py unlike L_F_Paw, with the hind legs:
# grouped here by hand, left and right alike
keypoint_groups = [
    ['L_Eye', 'R_Eye', 'Nose', 'Neck'],
    ['L_Shoulder', 'L_Elbow', 'L_F_Paw', 'R_Shoulder', 'R_Elbow', 'R_F_Paw'],
    [
        'Root of tail', 'L_Hip', 'L_Knee', 'L_B_Paw', 'R_Hip', 'R_Knee',
        'R_B_Paw'
    ],
]

model = dict(
    backbone=dict(
        num_keypoints=num_keypoints,
        metainfo=metainfo,
        keypoint_groups=keypoint_groups))
train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/ap10k-train-split1.json',
        data_prefix=dict(img='data/')))
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/ap10k-val-split1.json',
        bbox_file=None,
        data_prefix=dict(img='data/')))
test_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/ap10k-test-split1.json',
        bbox_file=None,
        data_prefix=dict(img='data/')))

val_evaluator = dict(
    ann_file=osp.join(data_root, 'annotations/ap10k-val-split1.json'))
test_evaluator = dict(
    ann_file=osp.join(data_root, 'annotations/ap10k-test-split1.json'))
