"""The installable plugin (issue 2): registries, configs, mim discovery,
wheels, runner checkpoints."""
import glob
import os
import os.path as osp
import re
import subprocess
import sys
import zipfile

import pytest
import torch
from conftest import REPO, python_env

CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', 'gtpt-*.py')))
# the keypoints of each data set with configs
KEYPOINTS = {
    'coco': 17,
    'coco-wholebody': 133,
    'crowdpose': 14,
    'mpii': 16,
    'aic': 14,
    'halpe': 136,
    'ap10k': 17,
    'onehand10k': 21,
    '300w': 68
}


def keypoints_of(path: str) -> int:
    """``configs/gtpt-s_mpii.py`` -> 16 (mini configs as their data set)."""
    name = osp.basename(path)[:-3].removesuffix('_mini')
    return KEYPOINTS[name.split('_', 1)[1]]


def test_importing_the_plugin_registers_its_modules():
    from mmengine.registry import MODELS as ENGINE_MODELS
    from mmpose.registry import HOOKS, METRICS, MODELS
    for name in ('GTPT', 'GTPTHead', 'GlobalPerceivedLoss',
                 'GTPTPoseEstimator'):
        assert MODELS.get(name) is not None, name
    for name in ('GTPTEMAHook', 'CurriculumInitHook'):
        assert HOOKS.get(name) is not None, name
    assert METRICS.get('WholeBodyPartMetric') is not None
    assert ENGINE_MODELS.get('CosineMomentumEMA') is not None


def test_the_config_glob_finds_every_config():
    """T, S and B for every data set, and the two mini configs."""
    names = [osp.basename(p) for p in CONFIGS]
    expected = [
        f'gtpt-{arch}_{data}.py' for arch in 'bst' for data in KEYPOINTS
    ] + ['gtpt-t_coco-wholebody_mini.py', 'gtpt-t_coco_mini.py']
    assert names == sorted(expected)


def test_mmpose_reads_each_configs_dataset_meta():
    """What init_model and MMPoseInferencer use for a checkpoint without
    dataset_meta (e.g. a converted authors' one)."""
    from mmengine.config import Config
    from mmpose.apis.inference import dataset_meta_from_config
    for path in CONFIGS:
        meta = dataset_meta_from_config(Config.fromfile(path))
        assert meta['num_keypoints'] == keypoints_of(path), path


def test_every_config_carries_the_safety_hooks():
    """The EMA, the curriculum (fine-tuning), the keypoint-count and NaN/Inf
    checks, the bad-sample report and atomic checkpoints, in every config;
    the whole-body ones require a stage-1 model."""
    from mmengine.config import Config
    for path in CONFIGS:
        cfg = Config.fromfile(path)
        hooks = [h['type'] for h in cfg.custom_hooks]
        for hook in ('GTPTEMAHook', 'CurriculumInitHook',
                     'KeypointCountCheckHook', 'NonFiniteCheckHook',
                     'BadSampleReportHook'):
            assert hook in hooks, (path, hook)
        assert bool(cfg.get('stage1_work_dir')) == ('wholebody' in path), path
        assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_every_config_loads_and_builds_its_model(path):
    from mmengine.config import Config
    from mmpose.registry import MODELS
    cfg = Config.fromfile(path)
    assert cfg.custom_imports['imports'] == ['gtpt_mmpose']
    model = MODELS.build(cfg.model)
    assert model.backbone.num_keypoints == keypoints_of(path)


def test_config_names_are_unique():
    names = [
        osp.basename(p) for p in glob.glob(
            osp.join(REPO, 'configs', '**', '*.py'), recursive=True)
    ]
    assert len(names) == len(set(names))


def test_mim_finds_the_installed_package_configs_and_tools():
    from mim.utils import get_installed_path
    root = get_installed_path('gtpt_mmpose')
    assert osp.isfile(osp.join(root, '.mim', 'configs', 'gtpt-t_coco.py'))
    assert osp.isfile(osp.join(root, '.mim', 'tools', 'train.py'))
    out = subprocess.run([
        sys.executable,
        osp.join(root, '.mim', 'tools', 'train.py'), '--help'
    ],
                         cwd='/',
                         env=python_env(),
                         capture_output=True,
                         text=True,
                         timeout=300)
    # MMPose's train.py, through our wrapper
    assert out.returncode == 0 and '--resume' in out.stdout


@pytest.mark.slow
def test_a_regular_wheel_ships_configs_and_tools(tmp_path):
    subprocess.run([
        sys.executable, '-m', 'pip', 'wheel', '-q', '--no-deps',
        '--no-build-isolation', '-w',
        str(tmp_path), REPO
    ],
                   check=True,
                   env=python_env(),
                   capture_output=True,
                   timeout=300)
    wheel = glob.glob(str(tmp_path / 'gtpt_mmpose-*.whl'))[0]
    names = zipfile.ZipFile(wheel).namelist()
    assert 'gtpt_mmpose/.mim/configs/gtpt-s_coco-wholebody.py' in names
    assert 'gtpt_mmpose/.mim/configs/_base_/gtpt_runtime.py' in names
    assert 'gtpt_mmpose/.mim/tools/train.py' in names
    assert 'gtpt_mmpose/.mim/model-index.yml' in names


def test_mim_search_lists_every_model():
    """`mim search gtpt_mmpose` reads the installed model index, as it does
    MMPose's: the paper's figures for COCO and COCO-WholeBody, parameters
    and FLOPs for every data set."""
    proc = subprocess.run(
        [sys.executable, '-m', 'mim', 'search', 'gtpt_mmpose'],
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = {
        osp.basename(p)[:-3]
        for p in CONFIGS if not p.endswith('_mini.py')
    }
    listed = set(re.findall(r'^config id: (\S+)$', proc.stdout, re.M))
    assert listed == names, proc.stdout[-2000:]
    assert 'coco-wholebody/whole_ap  0.617' in proc.stdout  # GTPT-B's
    assert re.search(r'config id: gtpt-s_mpii\n(.*\n)*?parameters +5454368',
                     proc.stdout)


@pytest.fixture(scope='session')
def runner_checkpoint(tmp_path_factory, mini_data_root):
    """A checkpoint written by a one-iteration training run (MMEngine runner,
    EMA hook on), started as a user would from anywhere: `mim train gtpt_mmpose
    <config name>` with the data root from GTPT_DATA_ROOT, so mim must find the
    config inside the installed package."""
    work = tmp_path_factory.mktemp('one_iter')
    env = dict(python_env(), GTPT_DATA_ROOT=mini_data_root + '/')
    proc = subprocess.run([
        sys.executable, '-m', 'mim', 'train', 'gtpt_mmpose',
        'gtpt-t_coco_mini.py', '--work-dir',
        str(work), '--cfg-options', 'train_cfg.max_epochs=1',
        'train_cfg.val_interval=10'
    ],
                          cwd=str(work),
                          env=env,
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return str(work / 'epoch_1.pth')


@pytest.mark.slow
def test_runner_checkpoint_loads_with_init_model_under_weights_only(
        runner_checkpoint):
    from mmpose.apis import init_model
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in os.environ
    ckpt = torch.load(
        runner_checkpoint, map_location='cpu',
        weights_only=True)  # the strict way
    assert {'state_dict', 'ema_state_dict', 'message_hub',
            'optimizer'} <= set(ckpt)
    model = init_model(
        osp.join(REPO, 'configs', 'gtpt-t_coco_mini.py'),
        runner_checkpoint,
        device='cpu')
    for key, value in model.state_dict().items():
        if key in ckpt['state_dict']:
            assert torch.equal(value, ckpt['state_dict'][key]), key
