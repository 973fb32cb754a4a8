# Square 256x256 crops, the input MMPose's RTMPose configs use for MPII,
# animals, hands and faces: the COCO recipe with that input size; data sets
# set data, metric and keypoint layout. GTPT pads the crop to whole 12x16
# token cells, 264x256 (16x22 = 352 visual tokens: +37.5 % over 256x192).
_base_ = ['./gtpt_coco.py']

input_size = (256, 256)
# sigma 4 bins as for 256x192: the crop scales by the box's longer side, so a
# pixel is the same size on the body whatever the width; RTMPose, likewise,
# keeps its 256-pixel sigma (5.66) for 256x256
codec = dict(
    type='SimCCLabel',
    input_size=input_size,
    sigma=4.0,
    simcc_split_ratio=2.0,
    normalize=True)

model = dict(
    backbone=dict(input_size=input_size),
    head=dict(input_size=input_size, decoder=codec))

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
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
