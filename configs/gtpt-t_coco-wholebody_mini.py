# Stage 2 of the README's demo (`make demo`): GTPT-T on all 133 keypoints of
# the bundled mini set, initialised from stage 1 (`--cfg-options
# stage1_checkpoint=...`). Same shortcuts as gtpt-t_coco_mini.py: no
# augmentation or flip test, GT boxes, lr 2e-3 without decay, EMA decay 0.9 on
# a cosine stretched over 10k iterations.
_base_ = ['./gtpt-t_coco-wholebody.py']
import os.path as osp  # noqa: E402 (data_root with or without its slash)

data_root = '{{$GTPT_DATA_ROOT:demo/data/coco-wholebody-mini/}}'
stage1_work_dir = 'work_dirs/gtpt-t_coco_mini'
max_epochs = 100
train_cfg = dict(max_epochs=max_epochs, val_interval=25)
model = dict(test_cfg=dict(
    flip_test=False))  # trained without flip augmentation
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = []
custom_hooks = [
    dict(
        type='GTPTEMAHook',
        momentum_start=0.9,
        total_iters=10000,
        priority='NORMAL'),
    dict(type='CurriculumInitHook', priority='ABOVE_NORMAL'),
    dict(type='SyncBuffersHook'),
    dict(type='KeypointCountCheckHook'),
    dict(type='NonFiniteCheckHook'),
    dict(type='BadSampleReportHook'),
    dict(type='TF32Hook'),
]
default_hooks = dict(
    logger=dict(interval=10), checkpoint=dict(interval=25, max_keep_ckpts=2))

train_pipeline = [
    dict(type='LoadImageAsBGR', color_type='color_ignore_orientation'),
    dict(type='GetBBoxCenterScale', padding=1.25),
    dict(type='TopdownAffine', input_size={{_base_.input_size}}),
    dict(type='GenerateTarget', encoder={{_base_.codec}}),
    dict(type='PackPoseInputs'),
]
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    pin_memory=False,
    dataset=dict(data_root=data_root, bbox_file=None))
test_dataloader = val_dataloader
val_evaluator = dict(
    ann_file=osp.join(data_root, 'annotations/coco_wholebody_val_v1.0.json'))
test_evaluator = val_evaluator
