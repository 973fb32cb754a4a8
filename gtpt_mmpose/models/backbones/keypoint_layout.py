"""Which keypoints of a data set GTPT treats as sparse tokens, which as dense
ones, and how it groups them for MHGA (docs/layouts.md).

GTPT's coarse encoder turns the human token into *sparse* tokens: one per
sparse keypoint and one per *dense part*; the coarse-to-fine module seeds
every keypoint of a dense part from its part token (spec §2.2, §3.5). MHGA
then attends within *groups* of keypoints (spec §3.1, §4.2). The paper
does this for COCO-WholeBody: the 17 body keypoints are sparse, face, hands
and feet are dense parts, and the groups are head, upper body and lower
body. :func:`resolve_layout` derives the same from any data set's MMPose
metainfo by one rule, unless the config names the parts or the groups:

* **dense parts** are found by MMPose's whole-body keypoint names (as in
  ``coco_wholebody.py``, ``halpe.py``): ``face-*`` the face;
  ``left_hand_root`` and ``left_{thumb, forefinger, middle_finger,
  ring_finger, pinky_finger}*`` the left hand, likewise the right; ``left_
  {big_toe, small_toe, heel}`` the left foot, likewise the right. Every
  other keypoint is sparse.
* **groups**: the sparse keypoints of MMPose's ``upper`` type whose name
  has a head word (nose, eye, ear, head, neck, mouth, chin) form the head
  group, the other ``upper`` ones the upper body, the ``lower`` ones the
  lower body; the face joins the head, the hands the upper body, the feet
  the lower body. Empty groups are left out. A sparse keypoint without a
  type (hands, faces, most custom sets) cannot be grouped by this rule:
  the config must set ``keypoint_groups`` (the error shows an example).
"""
import re
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

KeypointRef = Union[int, str]

HEAD_WORDS = frozenset(
    {'nose', 'eye', 'eyes', 'ear', 'ears', 'head', 'neck', 'mouth', 'chin'})
_FINGERS = r'(hand_root|thumb\d*|forefinger\d*|middle_finger\d*|' \
           r'ring_finger\d*|pinky_finger\d*)'
#: dense parts by keypoint name, in the order of the authors' part tokens
#: (``extra_token``: face, left hand, right hand, left foot, right foot)
PART_PATTERNS: Tuple[Tuple[str, str], ...] = (
    ('face', r'face-\d+'),
    ('left_hand', r'left_' + _FINGERS),
    ('right_hand', r'right_' + _FINGERS),
    ('left_foot', r'left_(big_toe|small_toe|heel)'),
    ('right_foot', r'right_(big_toe|small_toe|heel)'),
)
#: the group a dense part joins, by the rule
PART_GROUP = {
    'face': 'head',
    'left_hand': 'upper',
    'right_hand': 'upper',
    'left_foot': 'lower',
    'right_foot': 'lower'
}
GROUP_NAMES = ('head', 'upper', 'lower')
#: the layouts a GTPT of 17 or 133 keypoints has without a metainfo
DEFAULT_METAINFO = {
    17: 'configs/_base_/datasets/coco.py',
    133: 'configs/_base_/datasets/coco_wholebody.py'
}


class KeypointLayout(NamedTuple):
    """A data set's keypoints as GTPT uses them.

    ``names``: the K keypoint names in the data set's order. ``parts``:
    the dense parts, ``(part name, keypoint ids)`` in part-token order, ids
    ascending. ``groups``: the keypoint ids of each MHGA group, every
    keypoint in exactly one, each part within one.
    """
    names: Tuple[str, ...]
    parts: Tuple[Tuple[str, Tuple[int, ...]], ...]
    groups: Tuple[Tuple[int, ...], ...]

    @property
    def sparse(self) -> Tuple[int, ...]:
        """Ids of the sparse keypoints, ascending."""
        dense = {k for _, ids in self.parts for k in ids}
        return tuple(k for k in range(len(self.names)) if k not in dense)


def load_metainfo(metainfo: Union[dict, str]) -> dict:
    """A data set's metainfo parsed as MMPose's data sets do.

    Args:
        metainfo (dict | str): ``dict(from_file=...)`` (a path, or one of
            MMPose's ``configs/_base_/datasets/*.py``), a whole
            ``dataset_info`` dict, or a parsed one (with
            ``keypoint_id2name``).

    Returns:
        dict: With ``num_keypoints``, ``keypoint_id2name``,
        ``upper_body_ids`` and ``lower_body_ids``.
    """
    import os.path as osp

    import mmpose
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    if isinstance(metainfo, str):
        metainfo = dict(from_file=metainfo)
    if 'keypoint_id2name' in metainfo:
        return metainfo
    metainfo = dict(metainfo)
    path = metainfo.get('from_file')
    if path and not osp.isfile(path):  # one of MMPose's, found quietly
        packaged = osp.join(
            osp.dirname(mmpose.__file__), '.mim', 'configs', '_base_',
            'datasets', osp.basename(path))
        if osp.isfile(packaged):
            metainfo['from_file'] = packaged
    return parse_pose_metainfo(metainfo)


def resolve_layout(
    num_keypoints: int,
    metainfo: Optional[Union[dict, str]] = None,
    keypoint_groups: Optional[Sequence[Sequence[KeypointRef]]] = None,
    dense_parts: Optional[Dict[str, Sequence[KeypointRef]]] = None
) -> KeypointLayout:
    """The layout of a data set, by the module's rule or the config's
    choice.

    Args:
        num_keypoints (int): The model's keypoint count; must be the
            metainfo's.
        metainfo (dict | str, optional): The data set's metainfo (see
            :func:`load_metainfo`). Defaults to COCO's for 17 keypoints and
            COCO-WholeBody's for 133.
        keypoint_groups (Sequence[Sequence[int | str]], optional): The MHGA
            groups, as keypoint ids or names.
        dense_parts (Dict[str, Sequence[int | str]], optional): The dense
            parts, part name -> keypoint ids or names, in part-token order;
            ``{}`` makes every keypoint sparse.

    Returns:
        KeypointLayout: The layout.

    Raises:
        ValueError: The metainfo disagrees with ``num_keypoints``, a name
            is unknown, groups miss or repeat a keypoint, or the rule cannot
            group the keypoints (the message shows a ``keypoint_groups`` to
            set).
    """
    if metainfo is None:
        if num_keypoints not in DEFAULT_METAINFO:
            raise ValueError(
                f'a GTPT with {num_keypoints} keypoints needs its data '
                'set\'s metainfo: set model.backbone.metainfo, e.g. '
                "metainfo=dict(from_file='configs/_base_/datasets/"
                "crowdpose.py') (what the data set config uses)")
        metainfo = DEFAULT_METAINFO[num_keypoints]
    meta = load_metainfo(metainfo)
    if meta['num_keypoints'] != num_keypoints:
        raise ValueError(
            f'model.backbone.num_keypoints is {num_keypoints}, but its '
            f'metainfo {_source(metainfo)} has {meta["num_keypoints"]} '
            'keypoints: set num_keypoints to the data set\'s count')
    names = tuple(meta['keypoint_id2name'][k] for k in range(num_keypoints))
    ids = {n: k for k, n in enumerate(names)}
    if dense_parts is None:
        parts = _parts_by_name(names)
    else:
        parts = tuple(
            (str(p),
             tuple(sorted(_ids(refs, ids, names, f'dense_parts[{p!r}]'))))
            for p, refs in dense_parts.items())
    if keypoint_groups is None:
        groups = _groups_by_rule(names, parts, meta)
    else:
        groups = tuple(
            tuple(_ids(g, ids, names, f'keypoint_groups[{i}]'))
            for i, g in enumerate(keypoint_groups))
    layout = KeypointLayout(names, parts, groups)
    check_layout(layout)
    return layout


def _source(metainfo: Union[dict, str]) -> str:
    if isinstance(metainfo, dict) and 'from_file' in metainfo:
        return repr(metainfo['from_file'])
    return repr(metainfo) if isinstance(metainfo, str) else '(a dict)'


def _ids(refs: Sequence[KeypointRef], ids: Dict[str, int],
         names: Tuple[str, ...], where: str) -> List[int]:
    """Keypoint ids of ids or names."""
    out = []
    for ref in refs:
        if isinstance(ref, str):
            if ref not in ids:
                raise ValueError(f'{where}: no keypoint is named {ref!r} '
                                 f'(names: {", ".join(names[:6])}, ...)')
            out.append(ids[ref])
        else:
            if not 0 <= int(ref) < len(names):
                raise ValueError(f'{where}: keypoint id {ref} is outside '
                                 f'0..{len(names) - 1}')
            out.append(int(ref))
    return out


def _parts_by_name(names: Tuple[str, ...]
                   ) -> Tuple[Tuple[str, Tuple[int, ...]], ...]:
    """The dense parts MMPose's whole-body names mark (module docstring)."""
    parts = []
    for part, pattern in PART_PATTERNS:
        ids = tuple(k for k, n in enumerate(names)
                    if re.fullmatch(pattern, n.lower()))
        if ids:
            parts.append((part, ids))
    return tuple(parts)


def _groups_by_rule(names: Tuple[str, ...],
                    parts: Tuple[Tuple[str, Tuple[int, ...]], ...],
                    meta: dict) -> Tuple[Tuple[int, ...], ...]:
    """Head, upper and lower body by MMPose's keypoint types and names."""
    upper, lower = set(meta['upper_body_ids']), set(meta['lower_body_ids'])
    dense = {k for _, ids in parts for k in ids}
    groups: Dict[str, List[int]] = {g: [] for g in GROUP_NAMES}
    untyped = []
    for k, name in enumerate(names):
        if k in dense:
            continue
        words = set(re.split(r'[^a-z]+', name.lower()))
        if k in upper:
            groups['head' if words & HEAD_WORDS else 'upper'].append(k)
        elif k in lower:
            groups['lower'].append(k)
        else:
            untyped.append(k)
    for part, ids in parts:
        if part not in PART_GROUP:
            raise ValueError(
                f'dense part {part!r} has no group by the rule (only '
                f'{sorted(PART_GROUP)} do): set model.backbone.'
                'keypoint_groups')
        groups[PART_GROUP[part]].extend(ids)
    if untyped:
        raise ValueError(
            'cannot group these keypoints into head / upper body / lower '
            f'body: {_some_names(names, untyped)} have no \'upper\'/'
            '\'lower\' type in the data set\'s metainfo. Set '
            'model.backbone.keypoint_groups to the groups you want (ids or '
            'names, each keypoint in exactly one group), e.g. '
            f'keypoint_groups={_example_groups(len(names))}')
    return tuple(tuple(sorted(g)) for g in groups.values() if g)


def _some_names(names: Tuple[str, ...], ids: List[int]) -> str:
    shown = ', '.join(repr(names[k]) for k in ids[:4])
    return shown + (f' and {len(ids) - 4} more' if len(ids) > 4 else '')


def _example_groups(k: int) -> str:
    """Three groups of consecutive ids, as a config would write them."""
    cuts = [0, k // 3, 2 * k // 3, k] if k >= 3 else [0, k]
    return '[' + ', '.join(f'list(range({a}, {b}))'
                           for a, b in zip(cuts, cuts[1:]) if b > a) + ']'


def check_layout(layout: KeypointLayout) -> None:
    """Every keypoint in exactly one group, each part within one group,
    parts disjoint, and a sparse keypoint in every group (its slots).

    Raises:
        ValueError: Naming the offending keypoints.
    """
    names, k = layout.names, len(layout.names)
    flat = [i for g in layout.groups for i in g]
    repeated = sorted({i for i in flat if flat.count(i) > 1})
    if repeated:
        raise ValueError('keypoint_groups: keypoints '
                         f'{_some_names(names, repeated)} appear more than '
                         'once')
    missing = sorted(set(range(k)) - set(flat))
    if missing:
        raise ValueError('keypoint_groups: keypoints '
                         f'{_some_names(names, missing)} are in no group')
    in_parts = [i for _, ids in layout.parts for i in ids]
    if len(in_parts) != len(set(in_parts)):
        raise ValueError('dense_parts: a keypoint is in more than one part')
    sparse = set(layout.sparse)
    owner = {i: gi for gi, g in enumerate(layout.groups) for i in g}
    for gi, g in enumerate(layout.groups):
        if not sparse & set(g):
            raise ValueError(
                f'keypoint_groups[{gi}] has only dense keypoints; each '
                'group needs a sparse one to hold its slots')
    for part, ids in layout.parts:
        if len({owner[i] for i in ids}) > 1:
            raise ValueError(f'the {part!r} keypoints must all be in one '
                             'group (one part token seeds them)')
