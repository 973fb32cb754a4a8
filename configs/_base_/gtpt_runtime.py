# Shared by every GTPT config: MMPose's default runtime, the authors'
# optimisation (spec §9.1), EMA with a cosine momentum (§7.1), the SimCC codec
# and the test-time settings (§10).
_base_ = ['mmpose::_base_/default_runtime.py']
import math  # noqa: E402 (the score threshold below)

custom_imports = dict(imports=['gtpt_mmpose'], allow_failed_imports=False)

# ---- schedule -------------------------------------------------------------
# Adam 1e-3, no weight decay, x0.1 at 0-based epochs 199 and 259, 300 epochs
max_epochs = 300
base_lr = 1e-3
train_cfg = dict(by_epoch=True, max_epochs=max_epochs, val_interval=5)
optim_wrapper = dict(
    optimizer=dict(
        type='Adam', lr=base_lr, betas=(0.9,
                                        0.999), eps=1e-8, weight_decay=0.))
param_scheduler = [
    dict(type='MultiStepLR', milestones=[199, 259], gamma=0.1, by_epoch=True)
]
auto_scale_lr = dict(base_batch_size=256)  # 4 GPUs x 64
randomness = dict(seed=42)

# ---- GPU kernels -----------------------------------------------------------
# cudnn_benchmark: cuDNN times its convolution kernels once and keeps the
# fastest, which pays because every batch has the same shape (the authors
# trained with it on). allow_tf32 (read by TF32Hook): float32 matrix products
# and convolutions in TensorFloat-32 on Ampere and newer GPUs; set it False
# (--cfg-options env_cfg.allow_tf32=False) where GPU results must match float32
# exactly, e.g. a parity check. Neither changes anything on the CPU.
env_cfg = dict(cudnn_benchmark=True, allow_tf32=True)

# ---- hooks ----------------------------------------------------------------
# checkpoints written atomically; --resume falls back to the newest intact one
default_hooks = dict(checkpoint=dict(type='AtomicCheckpointHook'))
# EMA of every weight and buffer (validation and checkpoints use the EMA copy);
# a run starts from `stage1_checkpoint` (a GTPT of any keypoint layout: what
# means the same carries over) when one is set, and must when the config names
# a `stage1_work_dir` (whole body); BatchNorm statistics averaged over the GPUs
# at the end of every epoch (MMPose keeps SyncBuffersHook in its default hooks;
# MMEngine's DDP wrapper does not broadcast buffers); model and data set must
# agree on the keypoints; a NaN/Inf input or loss stops the run before
# anything is saved (under --amp the loss scaler skips such a step; 16 skipped
# in a row stop the run); skipped bad samples are reported; TF32 as
# env_cfg.allow_tf32 says
stage1_checkpoint = None
custom_hooks = [
    dict(type='GTPTEMAHook', momentum_start=0.996, priority='NORMAL'),
    dict(type='CurriculumInitHook', priority='ABOVE_NORMAL'),
    dict(type='SyncBuffersHook'),
    dict(type='KeypointCountCheckHook'),
    dict(type='NonFiniteCheckHook'),
    dict(type='BadSampleReportHook'),
    dict(type='TF32Hook'),
]

# ---- codec: SimCC, 2 bins per pixel, Gaussian sigma 4 bins, normalised -----
# Differs from the authors' targets (spec §6.1): MMPose rounds the centre to a
# whole bin (<= 0.25 px) and drops keypoints more than 3 sigma = 6 px outside
# the crop (authors: 12 px).
input_size = (192, 256)
codec = dict(
    type='SimCCLabel',
    input_size=input_size,
    sigma=4.0,
    simcc_split_ratio=2.0,
    normalize=True)

# GTPTHead scores a keypoint as its softmax peak times sigma * sqrt(2 pi), so
# that one as sharp as its target scores about 1; the authors' evaluation
# threshold of 0.01 on probabilities (spec §10) is this in those units
keypoint_score_thr = 0.01 * codec['sigma'] * math.sqrt(2 * math.pi)

data_preprocessor = dict(
    type='PoseDataPreprocessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True)

# ---- pipelines (spec §9.2) -------------------------------------------------
# Where MMPose's transforms differ from the authors' (spec §9.3):
# * half-body: MMPose counts only the 17 body keypoints (face/hands have no
#   upper/lower type);
# * scale: truncated normal mapped onto [0.65, 1.35] (authors: clipped
#   N(1, 0.35^2));
# * rotation: truncated normal x 90 degrees on [-90, 90], p 0.6 (authors:
#   clipped N(0, 45^2));
# * boxes: x2 = x + w (authors: x + w - 1, a 0.5 px shift of the centre).
train_pipeline = [
    dict(type='LoadImageAsBGR', color_type='color_ignore_orientation'),
    dict(type='GetBBoxCenterScale', padding=1.25),
    dict(type='RandomFlip', direction='horizontal', prob=0.5),
    dict(
        type='RandomHalfBody',
        min_total_keypoints=9,
        min_upper_keypoints=3,
        min_lower_keypoints=3,
        padding=1.5,
        prob=0.3,
        upper_prioritized_prob=0.69),
    dict(
        type='RandomBBoxTransform',
        shift_prob=0.,
        scale_factor=(0.65, 1.35),
        scale_prob=1.0,
        rotate_factor=90.,
        rotate_prob=0.6),
    dict(type='TopdownAffine', input_size=input_size),
    dict(type='GenerateTarget', encoder=codec),
    dict(type='PackPoseInputs'),
]
val_pipeline = [
    dict(type='LoadImageAsBGR', color_type='color_ignore_orientation'),
    dict(type='GetBBoxCenterScale', padding=1.25),
    dict(type='TopdownAffine', input_size=input_size),
    dict(type='PackPoseInputs'),
]
