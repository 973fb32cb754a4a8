"""COCO-WholeBody metric that reports every part, not only the whole body."""
import math
from typing import List, Optional, Tuple

import numpy as np
from mmengine.fileio import get_local_path
from mmpose.evaluation.metrics import CocoWholeBodyMetric
from mmpose.registry import METRICS
from xtcocotools.cocoeval import COCOeval

from ..datasets.coco_wholebody import check_wholebody_annotations, load_coco
from ..datasets.wholebody_layout import (NUM_WHOLEBODY_KEYPOINTS,
                                         WHOLEBODY_PARTS)

_STATS = ('AP', 'AP .5', 'AP .75', 'AP (M)', 'AP (L)', 'AR', 'AR .5', 'AR .75',
          'AR (M)', 'AR (L)')
# (name in the logs, xtcocotools iouType, slice of the 133 sigmas)
_PARTS = [(name, f'keypoints_{name}', slice(ids.start, ids.stop))
          for name, _, ids in WHOLEBODY_PARTS]
_PARTS.append(
    ('wholebody', 'keypoints_wholebody', slice(0, NUM_WHOLEBODY_KEYPOINTS)))
# the authors' keypoint score threshold (docs/spec.md §10), on softmax
# probabilities, times GTPTHead's score scale sigma * sqrt(2 pi) for the
# configs' SimCC sigma of 4 bins: the same keypoints count
DEFAULT_KEYPOINT_SCORE_THR = 0.01 * 4.0 * math.sqrt(2 * math.pi)


@METRICS.register_module()
class WholeBodyPartMetric(CocoWholeBodyMetric):
    """``CocoWholeBodyMetric`` with the authors' evaluation settings that
    returns body, foot, face, left/right hand, hand (mean of the two) and
    whole-body AP/AR.

    Keys (under the ``coco-wholebody`` prefix): ``AP``, ``AR`` ... for the
    whole body, as MMPose logs them, and ``body/AP``, ``foot/AP``, ``face/AP``,
    ``hand/AP``, ``lefthand/AP``, ... for the parts, so ``save_best`` can use
    any of them.

    An ``ann_file`` that is not COCO-WholeBody (e.g. a COCO body file, or not
    COCO-style at all) is refused when the metric is built, with a ValueError
    naming it; MMPose's metric accepts a COCO body file and fails with
    ``KeyError: 'foot_kpts'`` only when the first validation ends.

    Args:
        ann_file (str, optional): COCO-WholeBody ground truth; without it
            MMPose takes the ground truth from the data set.
        keypoint_score_thr (float): Keypoints above it count for the instance
            score; defaults to the authors' 0.01 on probabilities in
            GTPTHead's score units (0.01 * 4 * sqrt(2 pi) = 0.1003).
        nms_thr (float): OKS-NMS threshold (0.9).
        **kwargs: Passed to ``CocoWholeBodyMetric``.
    """

    def __init__(self,
                 ann_file: Optional[str] = None,
                 keypoint_score_thr: float = DEFAULT_KEYPOINT_SCORE_THR,
                 nms_thr: float = 0.9,
                 **kwargs) -> None:
        kwargs.setdefault('score_mode', 'bbox_keypoint')
        kwargs.setdefault('nms_mode', 'oks_nms')
        # the file is loaded here, not by MMPose, so that every problem with it
        # names it
        super().__init__(
            ann_file=None,
            keypoint_score_thr=keypoint_score_thr,
            nms_thr=nms_thr,
            **kwargs)
        self.ann_file = ann_file
        if ann_file is not None:
            # an image-info file is enough to format results
            need_annotations = not self.format_only
            with get_local_path(ann_file) as local_path:
                self.coco = load_coco(
                    local_path,
                    name=ann_file,
                    need_annotations=need_annotations)
            check_wholebody_annotations(
                self.coco.dataset.get('annotations', []), ann_file)

    def _do_python_keypoint_eval(self, outfile_prefix: str
                                 ) -> List[Tuple[str, float]]:
        res_file = f'{outfile_prefix}.keypoints.json'
        coco_det = self.coco.loadRes(res_file)
        sigmas = np.array(self.dataset_meta['sigmas'])
        results = {}
        for name, iou_type, part in _PARTS:
            coco_eval = COCOeval(
                self.coco,
                coco_det,
                iou_type,
                sigmas[part],
                use_area=self.use_area)
            coco_eval.params.useSegm = None
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
            results[name] = dict(zip(_STATS, coco_eval.stats))
        results['hand'] = {
            s: (results['lefthand'][s] + results['righthand'][s]) / 2
            for s in _STATS
        }
        info = list(results['wholebody'].items()
                    )  # MMPose's usual keys: coco-wholebody/AP, ...
        for name in ('body', 'foot', 'face', 'hand', 'lefthand', 'righthand'):
            info += [(f'{name}/{s}', v) for s, v in results[name].items()]
        return info
