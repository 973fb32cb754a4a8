"""Write annotations/mpii_gt_val.mat, the head boxes MMPose's MpiiDataset
reads for PCKh, for the annotations in annotations/mpii_val.json.

MPII's own file holds measured head rectangles; MMPose's test data ships
none, so each box here is a square centred between the person's head top
and upper neck, with their distance as its side (PCKh then normalises by
0.6 x its diagonal, about 0.85 x that distance).

    python tests/data/mpii/make_headboxes.py
"""
import json
import os.path as osp

import numpy as np
from scipy.io import savemat

HERE = osp.dirname(osp.abspath(__file__))
UPPER_NECK, HEAD_TOP = 8, 9  # MPII's joint order


def head_boxes(annotations: list) -> np.ndarray:
    """(N, 2, 2) boxes, [[x1, y1], [x2, y2]] per person."""
    boxes = []
    for ann in annotations:
        neck, top = (
            np.array(ann['joints'][k]) for k in (UPPER_NECK, HEAD_TOP))
        half = np.linalg.norm(top - neck) / 2
        centre = (top + neck) / 2
        boxes.append([centre - half, centre + half])
    return np.array(boxes, dtype=np.float64)


if __name__ == '__main__':
    with open(osp.join(HERE, 'annotations', 'mpii_val.json')) as f:
        boxes = head_boxes(json.load(f))
    # MPII's layout: (2 corners, 2 coordinates, N), as MMPose transposes it
    savemat(
        osp.join(HERE, 'annotations', 'mpii_gt_val.mat'),
        dict(headboxes_src=boxes.transpose(1, 2, 0)))
