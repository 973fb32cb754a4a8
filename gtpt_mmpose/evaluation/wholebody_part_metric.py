"""COCO-WholeBody metric that reports every part, not only the whole body."""
from typing import List, Tuple

import numpy as np
from mmpose.evaluation.metrics import CocoWholeBodyMetric
from mmpose.registry import METRICS
from xtcocotools.cocoeval import COCOeval

_STATS = ('AP', 'AP .5', 'AP .75', 'AP (M)', 'AP (L)', 'AR', 'AR .5', 'AR .75', 'AR (M)', 'AR (L)')
# (name in the logs, xtcocotools iouType, slice of the 133 sigmas)
_PARTS = (('body', 'keypoints_body', slice(0, 17)), ('foot', 'keypoints_foot', slice(17, 23)),
          ('face', 'keypoints_face', slice(23, 91)), ('lefthand', 'keypoints_lefthand', slice(91, 112)),
          ('righthand', 'keypoints_righthand', slice(112, 133)),
          ('wholebody', 'keypoints_wholebody', slice(0, 133)))


@METRICS.register_module()
class WholeBodyPartMetric(CocoWholeBodyMetric):
    """``CocoWholeBodyMetric`` with the authors' evaluation settings that returns body, foot, face,
    left/right hand, hand (mean of the two) and whole-body AP/AR.

    Keys (under the ``coco-wholebody`` prefix): ``AP``, ``AR`` ... for the whole body, as MMPose
    logs them, and ``body/AP``, ``foot/AP``, ``face/AP``, ``hand/AP``, ``lefthand/AP``, ... for
    the parts, so ``save_best`` can use any of them.

    Args:
        keypoint_score_thr (float): Keypoints above it count for the instance score (0.01).
        nms_thr (float): OKS-NMS threshold (0.9).
        **kwargs: Passed to ``CocoWholeBodyMetric``.
    """

    def __init__(self, keypoint_score_thr: float = 0.01, nms_thr: float = 0.9, **kwargs) -> None:
        kwargs.setdefault('score_mode', 'bbox_keypoint')
        kwargs.setdefault('nms_mode', 'oks_nms')
        super().__init__(keypoint_score_thr=keypoint_score_thr, nms_thr=nms_thr, **kwargs)

    def _do_python_keypoint_eval(self, outfile_prefix: str) -> List[Tuple[str, float]]:
        res_file = f'{outfile_prefix}.keypoints.json'
        coco_det = self.coco.loadRes(res_file)
        sigmas = np.array(self.dataset_meta['sigmas'])
        results = {}
        for name, iou_type, part in _PARTS:
            coco_eval = COCOeval(self.coco, coco_det, iou_type, sigmas[part], use_area=self.use_area)
            coco_eval.params.useSegm = None
            coco_eval.evaluate()
            coco_eval.accumulate()
            coco_eval.summarize()
            results[name] = dict(zip(_STATS, coco_eval.stats))
        results['hand'] = {s: (results['lefthand'][s] + results['righthand'][s]) / 2 for s in _STATS}
        info = list(results['wholebody'].items())  # MMPose's usual keys: coco-wholebody/AP, ...
        for name in ('body', 'foot', 'face', 'hand', 'lefthand', 'righthand'):
            info += [(f'{name}/{s}', v) for s, v in results[name].items()]
        return info
