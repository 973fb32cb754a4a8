"""In-process training runs of the mini configs, for tests."""
from typing import Optional

from conftest import MINI_DATA, config_file
from mmengine.hooks import Hook


class LossRecorder(Hook):
    """Keeps every loss term of every training iteration."""

    def __init__(self) -> None:
        self.losses = []

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None) -> None:
        self.losses.append({
            k: float(v.detach())
            for k, v in outputs.items() if 'loss' in k
        })


def train_set(cfg) -> dict:
    """The training data set config."""
    return cfg.train_dataloader.dataset


def mini_config(work_dir,
                name: str = 'run',
                config: str = 'gtpt-t_coco_mini',
                seed: int = 42,
                epochs: int = 3,
                augment: bool = False,
                options: Optional[dict] = None):
    """The stage-1 mini config as a test runs it: one iteration per epoch,
    no validation, a checkpoint every epoch.

    Args:
        work_dir: The work directory.
        name (str): The experiment name.
        config (str): The config's name.
        seed (int): The random seed.
        epochs (int): Epochs to train.
        augment (bool): Use the full recipe's random train pipeline, in two
            data-loader worker processes, with batches of 4 (3 iterations per
            epoch).
        options (dict, optional): More ``merge_from_dict`` options.

    Returns:
        Config: The config.
    """
    from mmengine.config import Config
    cfg = Config.fromfile(config_file(config))
    if augment:
        full = Config.fromfile(config_file('gtpt-t_coco'))
        train_set(cfg).pipeline = full.train_pipeline
        cfg.train_dataloader.update(batch_size=4, num_workers=2)
    cfg.merge_from_dict({
        'work_dir': str(work_dir),
        'experiment_name': name,
        'randomness.seed': seed,
        'train_cfg.max_epochs': epochs,
        'train_cfg.val_interval': 1000,
        'default_hooks.checkpoint.interval': 1,
        'default_hooks.checkpoint.max_keep_ckpts': 10,
        'default_hooks.checkpoint.save_best': None,
        'default_hooks.logger.interval': 1,
        **(options or {})
    })
    train_set(cfg).data_root = MINI_DATA + '/'
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    return cfg


def make_runner(work_dir, name: str = 'run', **kwargs):
    """A Runner of :func:`mini_config` with a :class:`LossRecorder`.

    Returns:
        tuple: ``(runner, recorder)``.
    """
    from mmengine.runner import Runner
    runner = Runner.from_cfg(mini_config(work_dir, name, **kwargs))
    recorder = LossRecorder()
    runner.register_hook(recorder, priority='LOWEST')
    return runner, recorder
