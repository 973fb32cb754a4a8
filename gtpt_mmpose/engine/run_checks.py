"""Checks that a run can start, made before the Runner is built.

``tools/train.py`` and ``tools/test.py`` (what ``mim train gtpt_mmpose`` and
``mim test gtpt_mmpose`` run) make them before MMEngine prints its
environment, so that a missing data set or stage-1 model is one line naming
the path, not a traceback after a page of log.
"""
import os.path as osp
from typing import Iterator, Optional, Sequence, Tuple

from mmengine.config import Config

DATA_LAYOUT = ('the README\'s data layout ("Training on COCO-WholeBody"), or '
               'set GTPT_DATA_ROOT=/path/to/coco')


class RunSetupError(RuntimeError):
    """A run cannot start as configured; the message says what to do."""


def _is_local(path: str) -> bool:
    return '://' not in path


def _dataset_cfgs(dataset: Optional[dict]) -> Iterator[dict]:
    """The data set configs inside ``dataset`` and its wrappers."""
    if not isinstance(dataset, dict):
        return
    if 'dataset' in dataset:  # MMEngine-style wrapper
        yield from _dataset_cfgs(dataset['dataset'])
    elif 'datasets' in dataset:
        for inner in dataset['datasets']:
            yield from _dataset_cfgs(inner)
    else:
        yield dataset


def data_paths(cfg: Config,
               stages: Sequence[str]) -> Iterator[Tuple[str, str, str]]:
    """Every local file and folder the data sets and metrics of ``stages``
    read.

    Args:
        cfg (Config): The config.
        stages (Sequence[str]): ``'train'``, ``'val'`` and/or ``'test'``.

    Yields:
        tuple: ``(what, path, where)``, e.g. ``('annotation file',
        'data/coco/annotations/x.json', 'train_dataloader')``.
    """
    for stage in stages:
        loader = f'{stage}_dataloader'
        for dataset in _dataset_cfgs((cfg.get(loader) or {}).get('dataset')):
            root = dataset.get('data_root') or ''
            if root:
                yield 'data root', root, loader
            # MMEngine joins ann_file and data_prefix to data_root
            ann_file = dataset.get('ann_file')
            if ann_file:
                yield 'annotation file', osp.join(root, ann_file), loader
            for folder in (dataset.get('data_prefix') or {}).values():
                if folder:
                    yield ('image folder',
                           osp.normpath(osp.join(root, folder)), loader)
            if dataset.get('bbox_file'):
                yield 'detection file', dataset['bbox_file'], loader
        evaluators = cfg.get(f'{stage}_evaluator') or []
        for metric in (evaluators
                       if isinstance(evaluators, list) else [evaluators]):
            if isinstance(metric, dict) and metric.get('ann_file'):
                yield ('annotation file', metric['ann_file'],
                       f'{stage}_evaluator')


def check_data_paths(cfg: Config, stages: Sequence[str]) -> None:
    """Raise one error naming the first missing data path.

    Args:
        cfg (Config): The config.
        stages (Sequence[str]): ``'train'``, ``'val'`` and/or ``'test'``.

    Raises:
        RunSetupError: A data root, annotation file, image folder or
            detection file does not exist.
    """
    for what, path, where in data_paths(cfg, stages):
        exists = osp.isdir(path) if what in (
            'data root', 'image folder') else osp.isfile(path)
        if _is_local(path) and not exists:
            raise RunSetupError(
                f'{what} {path} does not exist ({where}); put the data there '
                f'as in {DATA_LAYOUT}')
