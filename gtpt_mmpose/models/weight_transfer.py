"""Start a GTPT model of one keypoint layout from the weights of another.

The body -> whole-body curriculum (docs/spec.md §8) is one case: a COCO
model's weights fill a COCO-WholeBody model, whose part and dense keypoint
tokens start fresh. The same holds between any two layouts: what means the
same thing carries over, the rest keeps its initialisation.

* keypoint-indexed tables (``keypoint_token``, ``part_token``,
  ``dense_keypoint_token``): the rows whose keypoint (or part) name is in
  both layouts;
* every other tensor (stem, encoders, group masks, classifiers): when the
  source has it with the same shape. The classifiers depend on the input
  width and height, the group mask on the number of groups.
"""
from typing import Dict, List, NamedTuple, Optional, Sequence

import torch
import torch.nn as nn

from .backbones.gtpt import GTPT
from .backbones.keypoint_layout import (DEFAULT_METAINFO, _parts_by_name,
                                        load_metainfo)
from .checkpoint_fit import CheckpointMismatchError, gtpt_variant


class TransferReport(NamedTuple):
    """What :func:`transfer_weights` did.

    ``transferred``: tensors copied whole; ``rows``: per keypoint table,
    ``(rows taken from the source, rows)``; ``new``: tensors left as
    initialised.
    """
    transferred: List[str]
    rows: Dict[str, tuple]
    new: List[str]

    def summary(self) -> str:
        """One line for the log."""
        rows = ', '.join(f'{name} {got}/{total} by name'
                         for name, (got, total) in self.rows.items())
        return (f'transferred {len(self.transferred)} tensors whole'
                f'{", " + rows if rows else ""}; new: '
                f'{", ".join(self.new) or "nothing"}')


def source_keypoint_names(meta: Optional[dict],
                          num_keypoints: int) -> Sequence[str]:
    """The keypoint names of a checkpoint's model: its ``dataset_meta``
    (MMEngine saves the training data set's), else COCO's or
    COCO-WholeBody's for 17 or 133 keypoints (converted authors' models).

    Raises:
        ValueError: The checkpoint does not say, and the count is neither.
    """
    names = ((meta or {}).get('dataset_meta') or {}).get('keypoint_id2name')
    if names is not None:
        return [names[k] for k in range(len(names))]
    if num_keypoints not in DEFAULT_METAINFO:
        raise ValueError(
            f'the checkpoint\'s {num_keypoints} keypoints are not named '
            '(no meta.dataset_meta): cannot tell which keypoint tokens '
            'carry over')
    meta = load_metainfo(DEFAULT_METAINFO[num_keypoints])
    return [meta['keypoint_id2name'][k] for k in range(num_keypoints)]


def _rows(names: Sequence[str],
          parts: Sequence[tuple]) -> Dict[str, List[str]]:
    """Row names of the keypoint tables of a layout: its sparse keypoints,
    its parts, its dense keypoints (part order, then id)."""
    dense = {k for _, ids in parts for k in ids}
    return dict(
        keypoint_token=[n for k, n in enumerate(names) if k not in dense],
        part_token=[p for p, _ in parts],
        dense_keypoint_token=[names[k] for _, ids in parts for k in ids])


@torch.no_grad()
def transfer_weights(model: nn.Module, state_dict: Dict[str, torch.Tensor],
                     source_names: Sequence[str]) -> TransferReport:
    """Load what carries over from a GTPT ``state_dict`` of any layout.

    Args:
        model (nn.Module): A pose estimator with a ``GTPT`` backbone at
            ``backbone`` (and its head at ``head``).
        state_dict (dict): The source weights (``backbone.*``, ``head.*``).
        source_names (Sequence[str]): The source's keypoint names, in its
            order (:func:`source_keypoint_names`).

    Returns:
        TransferReport: What was copied and what is new.

    Raises:
        CheckpointMismatchError: The source is another GTPT variant (width
            or stem), or its keypoint tables do not match its names.
    """
    backbone = model.backbone
    if not isinstance(backbone, GTPT):
        raise TypeError('transfer_weights needs a GTPT backbone, got '
                        f'{type(backbone).__name__}')
    source = gtpt_variant(state_dict, 'backbone.')
    own = gtpt_variant(model.state_dict(), 'backbone.')
    if source is None:
        raise CheckpointMismatchError('the checkpoint holds no GTPT '
                                      'backbone weights ("backbone.*")')
    if (source.embed_dims, source.ushaped_stem) != (own.embed_dims,
                                                    own.ushaped_stem):
        raise CheckpointMismatchError(
            f'the checkpoint is GTPT-{str(source.arch).upper()}, the model '
            f'GTPT-{str(own.arch).upper()}: weights carry over between '
            'layouts of one variant only')
    target_rows = _rows(backbone.keypoints.names, backbone.keypoints.parts)
    # the source's parts by the layout rule (what its configs use)
    source_rows = _rows(source_names, _parts_by_name(tuple(source_names)))
    report = TransferReport([], {}, [])
    for key, value in model.state_dict().items():
        table = key[len('backbone.'):] if key.startswith('backbone.') else ''
        if table in target_rows:
            src = state_dict.get(key)
            if src is None:
                report.new.append(key)
                continue
            if src.shape[1] != len(source_rows[table]):
                raise CheckpointMismatchError(
                    f'{key} has {src.shape[1]} rows, but the checkpoint\'s '
                    f'keypoint names give {len(source_rows[table])}')
            where = {n: i for i, n in enumerate(source_rows[table])}
            hits = [(i, where[n]) for i, n in enumerate(target_rows[table])
                    if n in where]
            for i, j in hits:
                value[:, i] = src[:, j]
            report.rows[table] = (len(hits), value.shape[1])
            if len(hits) < value.shape[1]:
                report.new.append(f'{key} ({value.shape[1] - len(hits)} rows)')
        elif key in state_dict and state_dict[key].shape == value.shape:
            value.copy_(state_dict[key])
            report.transferred.append(key)
        else:
            report.new.append(key)
    return report
