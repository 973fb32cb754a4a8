# Stage 1 of the README's demo (`make demo`): GTPT-T on the 17 body keypoints
# of the bundled 4-image mini set, trained and evaluated on the same images
# (overfitting on purpose). Differences from gtpt-t_coco.py, all for a run of
# minutes on 2 CPU cores:
# * no augmentation (flip, half-body, scale, rotation off), so no flip test;
#   ground-truth boxes;
# * lr 2e-3 for the whole short schedule (no step decay); EMA decay 0.9 (not
#   0.996) on a cosine stretched over 10k iterations: the authors' cosine
#   reaches 1 at the end of the run and would freeze the average of a run this
#   short long before its last iteration;
# * one batch holds the whole set; no worker processes, no pinned memory.
_base_ = ['./gtpt-t_coco.py']
import os.path as osp  # noqa: E402 (data_root with or without its slash)

data_root = '{{$GTPT_DATA_ROOT:demo/data/coco-wholebody-mini/}}'
max_epochs = 180
train_cfg = dict(max_epochs=max_epochs, val_interval=60)
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
    logger=dict(interval=10), checkpoint=dict(interval=60, max_keep_ckpts=2))

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
    ann_file=osp.join(data_root, 'annotations/person_keypoints_val2017.json'))
test_evaluator = val_evaluator
