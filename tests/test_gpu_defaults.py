"""The configs' settings for GPU training (data loader workers, pinned
memory, cuDNN benchmark, TF32, buffers averaged over GPUs), and TF32Hook
setting what it says."""
import glob
import logging
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from conftest import REPO

from gtpt_mmpose.engine import TF32Hook
from gtpt_mmpose.engine.tf32 import set_tf32_flags, tf32_flags

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'gtpt-*.py')))


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_every_config_sets_the_gpu_defaults_and_builds_its_hooks(path):
    from mmengine.config import Config
    from mmpose.registry import HOOKS
    cfg = Config.fromfile(path)
    assert cfg.env_cfg.cudnn_benchmark is True
    assert cfg.env_cfg.allow_tf32 is True
    hooks = [h['type'] for h in cfg.custom_hooks]
    for hook in ('SyncBuffersHook', 'TF32Hook', 'NonFiniteCheckHook',
                 'GTPTEMAHook'):
        assert hook in hooks, hook
    for hook in cfg.custom_hooks:
        HOOKS.build({k: v for k, v in hook.items() if k != 'priority'})
    # the demo's mini configs run on 2 CPU cores without worker processes
    mini = path.endswith('_mini.py')
    for loader in (cfg.train_dataloader, cfg.val_dataloader):
        assert loader.num_workers == (0 if mini else 10)
        assert loader.pin_memory is (not mini)
        assert loader.persistent_workers is (not mini)


@pytest.fixture
def restore_tf32():
    before = tf32_flags()
    yield
    set_tf32_flags(*before)


def runner_with(env_cfg: dict):
    from mmengine.config import Config
    return SimpleNamespace(
        cfg=Config(dict(env_cfg=env_cfg)), logger=logging.getLogger('test'))


@pytest.mark.parametrize('before', [(False, True), (True, False)])
@pytest.mark.parametrize('allow', [True, False])
def test_the_tf32_hook_sets_the_flags_for_the_run_only(restore_tf32, before,
                                                       allow):
    set_tf32_flags(*before)
    runner, hook = runner_with(dict(allow_tf32=allow)), TF32Hook()
    hook.before_run(runner)
    assert tf32_flags() == (allow, allow)
    assert torch.backends.cuda.matmul.allow_tf32 is allow
    assert torch.backends.cudnn.allow_tf32 is allow
    hook.after_run(runner)
    assert tf32_flags() == before


def test_without_allow_tf32_the_hook_leaves_pytorchs_settings(restore_tf32):
    set_tf32_flags(False, True)  # PyTorch's defaults
    hook = TF32Hook()
    hook.before_run(runner_with(dict(cudnn_benchmark=True)))
    assert tf32_flags() == (False, True)
    hook.after_run(runner_with({}))
    assert tf32_flags() == (False, True)


@pytest.mark.skipif(
    not hasattr(torch.backends.mkldnn.matmul, 'fp32_precision'),
    reason='PyTorch < 2.9 has no oneDNN precision setting')
def test_tf32_leaves_the_cpus_float32_matrix_products_alone(restore_tf32):
    """oneDNN's precision, which ``torch.set_float32_matmul_precision``
    would lower too."""
    before = torch.backends.mkldnn.matmul.fp32_precision
    TF32Hook().before_run(runner_with(dict(allow_tf32=True)))
    assert torch.backends.mkldnn.matmul.fp32_precision == before
