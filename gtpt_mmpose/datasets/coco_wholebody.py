"""COCO-WholeBody data set that refuses an annotation file of another kind,
naming the file."""
import json
from typing import List, Optional, Sequence, Tuple

from mmengine.fileio import exists
from mmpose.datasets import CocoWholeBodyDataset
from mmpose.registry import DATASETS
from xtcocotools.coco import COCO

from .bad_samples import SkipBadSamplesMixin
from .wholebody_layout import WHOLEBODY_PARTS

# keypoint lists of a COCO-WholeBody annotation and their lengths (x, y, v
# per keypoint)
WHOLEBODY_KEYPOINT_KEYS = {
    key: 3 * len(ids)
    for _, key, ids in WHOLEBODY_PARTS
}


def not_coco_style(ann_file: str, why: str) -> ValueError:
    return ValueError(
        f'annotation file {ann_file} is not a COCO-style annotation file: '
        f'{why}')


def check_coco_style(dataset: dict,
                     ann_file: str,
                     need_annotations: bool = True) -> None:
    """Raise ValueError naming ``ann_file`` when its loaded content ``dataset``
    has no ``images`` list, or (with ``need_annotations``) no ``annotations``
    list.

    Args:
        dataset (dict): The loaded file (``COCO.dataset``).
        ann_file (str): The file, for the message.
        need_annotations (bool): Whether ground-truth annotations are required;
            an image-info file (COCO test-dev) has none.
    """
    keys = ('images', 'annotations') if need_annotations else ('images', )
    missing = [k for k in keys if not isinstance(dataset.get(k), list)]
    if missing:
        raise not_coco_style(
            ann_file,
            f'it has no {" and no ".join(repr(k) for k in missing)} list')


def load_coco(ann_file: str,
              name: Optional[str] = None,
              need_annotations: bool = True) -> COCO:
    """``xtcocotools.coco.COCO(ann_file)``, or a ValueError naming the file
    when it is not a COCO-style annotation file (a JSON object with ``images``
    and ``annotations`` lists).

    Args:
        ann_file (str): Local path of the annotation file.
        name (str, optional): The name to use in messages (e.g. the remote
            path); ``ann_file`` when not given.
        need_annotations (bool): See :func:`check_coco_style`.

    Returns:
        COCO: The loaded annotations.
    """
    name = name or ann_file
    try:
        coco = COCO(ann_file)
    except json.JSONDecodeError as e:
        raise not_coco_style(name, f'it is not valid JSON ({e})') from None
    # xtcocotools asserts that the top level is a JSON object
    except AssertionError:
        raise not_coco_style(name,
                             'its top level is not a JSON object') from None
    check_coco_style(coco.dataset, name, need_annotations)
    return coco


def check_wholebody_annotation(ann: dict, ann_file: str) -> None:
    """Raise ValueError naming ``ann_file`` when ``ann`` lacks a COCO-WholeBody
    keypoint list or has one of the wrong length.

    Args:
        ann (dict): One entry of the file's ``annotations``.
        ann_file (str): The annotation file, for the message.
    """
    missing = [k for k in WHOLEBODY_KEYPOINT_KEYS if k not in ann]
    if missing:
        hint = (' Is it a COCO body file? Train and test body models with the '
                'gtpt-*_coco.py configs.' if 'keypoints' in ann else '')
        raise ValueError(
            f'annotation file {ann_file} is not a COCO-WholeBody file: '
            'annotation id '
            f'{ann.get("id")} has no '
            f'{", ".join(repr(k) for k in missing)}.{hint}')
    wrong = [
        f'{k!r} has {len(ann[k])} values, not {n}'
        for k, n in WHOLEBODY_KEYPOINT_KEYS.items() if len(ann[k]) != n
    ]
    if wrong:
        raise ValueError(
            f'annotation file {ann_file} is not a COCO-WholeBody file: '
            'annotation id '
            f'{ann.get("id")}: {"; ".join(wrong)}')


def check_wholebody_annotations(anns: Sequence[dict], ann_file: str) -> None:
    """:func:`check_wholebody_annotation` for every annotation of ``ann_file``.
    """
    for ann in anns:
        check_wholebody_annotation(ann, ann_file)


@DATASETS.register_module()
class CheckedCocoWholeBodyDataset(SkipBadSamplesMixin, CocoWholeBodyDataset):
    """``CocoWholeBodyDataset`` that refuses an annotation file that is not
    COCO-WholeBody.

    MMPose's class fails with ``KeyError: 'foot_kpts'`` on a COCO body file,
    with an ``AssertionError`` from xtcocotools on a JSON list, and with "need
    at least one array to concatenate" on a JSON object without annotations;
    none of them names the file. Here each raises ValueError naming the file
    (and, for an annotation without the five COCO-WholeBody keypoint lists or
    with one of the wrong length, its id). Each annotation is checked as MMPose
    parses it, so the (1+ GB) training file is read once.

    With ``bbox_file`` (testing on detected boxes) the annotation file only
    gives the image list and is left to MMPose; ``WholeBodyPartMetric`` checks
    it.

    Args:
        Same as :class:`mmpose.datasets.CocoWholeBodyDataset`.
    """

    def _load_annotations(self) -> Tuple[List[dict], List[dict]]:
        """MMPose's loading, with a ValueError naming a file that is not
        COCO-style."""
        try:
            instances, images = super()._load_annotations()
        except json.JSONDecodeError as e:
            raise not_coco_style(self.ann_file,
                                 f'it is not valid JSON ({e})') from None
        except AssertionError:
            if not exists(self.ann_file):
                raise  # MMPose's own "Annotation file ... does not exist"
            # the other assertion on the way: xtcocotools' "the top level is a
            # JSON object"
            raise not_coco_style(
                self.ann_file, 'its top level is not a JSON object') from None
        # without these lists MMPose goes on with no instances and fails later,
        # not naming the file
        check_coco_style(self.coco.dataset, self.ann_file)
        return instances, images

    def parse_data_info(self, raw_data_info: dict) -> Optional[dict]:
        """Check that the annotation is COCO-WholeBody, then parse it as MMPose
        does.

        Args:
            raw_data_info (dict): ``raw_ann_info`` and ``raw_img_info`` of one
                instance.

        Returns:
            dict: The parsed instance.
        """
        check_wholebody_annotation(raw_data_info['raw_ann_info'],
                                   self.ann_file)
        return super().parse_data_info(raw_data_info)
