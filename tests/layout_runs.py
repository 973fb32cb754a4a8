"""Short in-process runs of the data-set configs on MMPose's own test data
(``tests/data/<data set>/``, laid out as the configs expect), for tests."""
import contextlib
import glob
import os
import os.path as osp
from typing import Dict, Iterator, Optional, Tuple

from conftest import REPO, config_file

DATA = osp.join(REPO, 'tests', 'data')

#: data set -> its keypoint count and the metric keys its MMPose metric
#: reports (all of them must come out finite)
DATASETS: Dict[str, Tuple[int, Tuple[str, ...]]] = {
    'crowdpose': (14, ('crowdpose/AP', 'crowdpose/AR', 'crowdpose/AP(E)',
                       'crowdpose/AP(M)', 'crowdpose/AP(H)')),
    'mpii': (16, ('PCK', 'PCK@0.1', 'Head PCK', 'Ankle PCK')),
    'aic': (14, ('coco/AP', 'coco/AR')),
    'halpe': (136, ('halpe/AP', 'halpe/AR', 'PCK', 'AUC')),
    'ap10k': (17, ('coco/AP', 'coco/AR')),
    'onehand10k': (21, ('PCK', 'AUC', 'EPE')),
    '300w': (68, ('NME', )),
}
#: every config of these data sets, e.g. ``gtpt-s_mpii``
LAYOUT_CONFIGS = sorted(
    osp.basename(p)[:-3]
    for p in glob.glob(osp.join(REPO, 'configs', 'gtpt-*.py'))
    if p[:-3].rsplit('_', 1)[-1] in DATASETS)


def dataset_of(config: str) -> str:
    """``gtpt-s_mpii`` -> ``mpii``."""
    return config.rsplit('_', 1)[-1]


def data_root(dataset: str) -> str:
    """The test data of ``dataset``, with the slash the configs expect."""
    return osp.join(DATA, dataset) + '/'


@contextlib.contextmanager
def data_root_env(root: str) -> Iterator[None]:
    """``GTPT_DATA_ROOT=root`` while a config is parsed."""
    old = os.environ.get('GTPT_DATA_ROOT')
    os.environ['GTPT_DATA_ROOT'] = root
    try:
        yield
    finally:
        if old is None:
            del os.environ['GTPT_DATA_ROOT']
        else:
            os.environ['GTPT_DATA_ROOT'] = old


def load_config(config: str, dataset: Optional[str] = None):
    """A data-set config with the test data of ``dataset`` (by default its
    own) as data root."""
    from mmengine.config import Config
    with data_root_env(data_root(dataset or dataset_of(config))):
        return Config.fromfile(config_file(config))


def short_run(cfg,
              work_dir,
              iters: int = 2,
              batch_size: int = 2,
              options: Optional[dict] = None):
    """``cfg`` as a short test run: ``iters`` training iterations of
    ``batch_size`` crops in this process, no validation, the test set with
    the config's own metric afterwards, a checkpoint at the end.

    Args:
        cfg (Config): A data-set config (:func:`load_config`).
        work_dir: The work directory.
        iters (int): Training iterations.
        batch_size (int): Crops per iteration, and per test batch.
        options (dict, optional): More ``merge_from_dict`` options.

    Returns:
        Config: The changed config.
    """
    cfg.work_dir = str(work_dir)
    cfg.train_cfg = dict(
        type='IterBasedTrainLoop', max_iters=iters, val_interval=10**9)
    cfg.param_scheduler = []
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        loader.update(
            batch_size=batch_size, num_workers=0, persistent_workers=False)
    cfg.default_hooks.checkpoint.update(save_best=None)
    cfg.default_hooks.logger.interval = 1
    cfg.merge_from_dict(options or {})
    return cfg


def run_log(work_dir) -> str:
    """The text of the log a Runner wrote in ``work_dir``."""
    logs = glob.glob(osp.join(str(work_dir), '*', '*.log'))
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        return f.read()


def last_checkpoint(work_dir) -> str:
    """The checkpoint a Runner saved last in ``work_dir``."""
    with open(osp.join(str(work_dir), 'last_checkpoint')) as f:
        return f.read().strip()
