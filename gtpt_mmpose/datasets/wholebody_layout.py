"""Where each part of the body lives among COCO-WholeBody's 133 keypoints.

The one source of these ids for the whole package: the annotation checks, the
part metric and the model's keypoint groups (docs/spec.md §3.1) all read them
from here.
"""
from typing import Tuple

# COCO's body keypoints, ids 0..16 of COCO-WholeBody too
NUM_BODY_KEYPOINTS = 17
NUM_WHOLEBODY_KEYPOINTS = 133

# (part, keypoint list of an annotation, keypoint ids), in id order
WHOLEBODY_PARTS: Tuple[Tuple[str, str, range], ...] = (
    ('body', 'keypoints', range(0, 17)),
    ('foot', 'foot_kpts', range(17, 23)),
    ('face', 'face_kpts', range(23, 91)),
    ('lefthand', 'lefthand_kpts', range(91, 112)),
    ('righthand', 'righthand_kpts', range(112, 133)),
)

# the parts that get one part token each in GTPT, in the order of the authors'
# part tokens (`extra_token`) and of their dense keypoint token table
# (`fine_keypoint_token`), spec §2.2, §3.5
PART_TOKENS: Tuple[Tuple[str, range], ...] = (
    ('face', range(23, 91)),
    ('left_hand', range(91, 112)),
    ('right_hand', range(112, 133)),
    ('left_foot', range(17, 20)),
    ('right_foot', range(20, 23)),
)
