"""The README's "Your own data set" config, copied
as it stands next to the shipped configs, trains and tests on a data set no
config was written for: AI Challenger's test images re-annotated in COCO
format, with keypoints of their own names and order and their own metainfo
file."""
import json
import math
import os.path as osp
import re
import shutil

import pytest
from conftest import REPO
from layout_runs import DATA, short_run

pytestmark = pytest.mark.usefixtures('one_torch_thread')

README = osp.join(REPO, 'README.md')
CONFIG = 'configs/gtpt-s_my-keypoints.py'
METAINFO = 'configs/_base_/datasets/my_keypoints.py'
# the new layout: name -> the AI Challenger keypoint it re-annotates
KEYPOINTS = {
    'head': 'head_top',
    'neck': 'neck',
    'l_shoulder': 'left_shoulder',
    'r_shoulder': 'right_shoulder',
    'l_elbow': 'left_elbow',
    'r_elbow': 'right_elbow',
    'l_wrist': 'left_wrist',
    'r_wrist': 'right_wrist',
    'l_hip': 'left_hip',
    'r_hip': 'right_hip',
    'l_knee': 'left_knee',
    'r_knee': 'right_knee',
    'l_ankle': 'left_ankle',
    'r_ankle': 'right_ankle',
}
LINKS = [('head', 'neck'), ('neck', 'l_shoulder'), ('neck', 'r_shoulder'),
         ('l_shoulder', 'l_elbow'), ('l_elbow', 'l_wrist'),
         ('r_shoulder', 'r_elbow'), ('r_elbow', 'r_wrist'),
         ('l_hip', 'l_knee'), ('l_knee', 'l_ankle'), ('r_hip', 'r_knee'),
         ('r_knee', 'r_ankle')]


def config_block() -> str:
    """The fenced Python block of the README that is a config (has a
    ``_base_``)."""
    with open(README) as f:
        blocks = re.findall(r'```python\n(.*?)```', f.read(), re.S)
    configs = [
        b for b in blocks
        if b.lstrip().startswith(('#', '_base_')) and '_base_ =' in b
    ]
    assert len(configs) == 1, blocks
    return configs[0]


def metainfo_file(aic: dict) -> str:
    """The new layout's metainfo, in MMPose's format."""
    ids = {name: k for k, name in enumerate(KEYPOINTS)}
    lower = ('hip', 'knee', 'ankle')
    info = {
        k:
        dict(
            name=name,
            id=k,
            color=[0, 255, 0] if name.startswith('l_') else [255, 128, 0],
            type='lower' if name.endswith(lower) else 'upper',
            swap={
                'l': 'r_',
                'r': 'l_'
            }.get(name[0], '') + name[2:] if name[1] == '_' else '')
        for name, k in ids.items()
    }
    links = {
        i: dict(link=link, id=i, color=[51, 153, 255])
        for i, link in enumerate(LINKS)
    }
    aic_ids = {n: k for k, n in aic['keypoint_id2name'].items()}
    sigmas = [float(aic['sigmas'][aic_ids[a]]) for a in KEYPOINTS.values()]
    return (f'dataset_info = dict(dataset_name=\'my_keypoints\', '
            f'keypoint_info={info!r}, skeleton_info={links!r}, '
            f'joint_weights={[1.0] * len(ids)!r}, sigmas={sigmas!r})\n')


def reannotate(aic_file: str, aic: dict, out: str) -> None:
    """AIC's COCO-style annotations in the new keypoint order."""
    with open(aic_file) as f:
        coco = json.load(f)
    aic_ids = {n: k for k, n in aic['keypoint_id2name'].items()}
    order = [aic_ids[a] for a in KEYPOINTS.values()]
    for ann in coco['annotations']:
        triples = [ann['keypoints'][3 * k:3 * k + 3] for k in order]
        ann['keypoints'] = [v for t in triples for v in t]
        ann['area'] = ann['bbox'][2] * ann['bbox'][3]  # AIC's have none
    coco['categories'] = [
        dict(
            id=1,
            name='person',
            supercategory='person',
            keypoints=list(KEYPOINTS),
            skeleton=[[
                list(KEYPOINTS).index(a) + 1,
                list(KEYPOINTS).index(b) + 1
            ] for a, b in LINKS])
    ]
    with open(out, 'w') as f:
        json.dump(coco, f)


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder with the shipped configs, the doc's config, its metainfo
    and the data where the config looks for them; the current folder."""
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    shutil.copytree(osp.join(REPO, 'configs'), tmp_path / 'configs')
    (tmp_path / CONFIG).write_text(config_block())
    aic = parse_pose_metainfo(dict(from_file='configs/_base_/datasets/aic.py'))
    (tmp_path / METAINFO).parent.mkdir()
    (tmp_path / METAINFO).write_text(metainfo_file(aic))
    root = tmp_path / 'data' / 'my_keypoints'
    (root / 'annotations').mkdir(parents=True)
    shutil.copytree(
        osp.join(DATA, 'aic', 'ai_challenger_keypoint_train_20170902',
                 'keypoint_train_images_20170902'), root / 'images')
    for split in ('train', 'val'):
        reannotate(
            osp.join(DATA, 'aic', 'annotations', 'aic_train.json'), aic,
            str(root / 'annotations' / f'{split}.json'))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_docs_custom_config_trains_and_tests_on_a_new_data_set(
        project, tmp_path):
    from mmengine.config import Config
    from mmengine.runner import Runner
    from mmpose.registry import MODELS
    cfg = Config.fromfile(CONFIG)
    # the layout by the rule, from the new metainfo
    keypoints = MODELS.build(cfg.model).backbone.keypoints
    assert keypoints.names == tuple(KEYPOINTS)
    assert [[keypoints.names[k] for k in g] for g in keypoints.groups] == [
        ['head', 'neck'],
        [
            'l_shoulder', 'r_shoulder', 'l_elbow', 'r_elbow', 'l_wrist',
            'r_wrist'
        ],
        ['l_hip', 'r_hip', 'l_knee', 'r_knee', 'l_ankle', 'r_ankle'],
    ]
    runner = Runner.from_cfg(
        short_run(
            cfg, tmp_path / 'work', options=dict(experiment_name='custom')))
    runner.train()
    # the data set read the new annotations with the new metainfo
    dataset = runner.train_dataloader.dataset
    assert dataset.metainfo['dataset_name'] == 'my_keypoints'
    assert len(dataset) == 9
    metrics = runner.test()
    for key in ('coco/AP', 'coco/AR'):
        assert math.isfinite(metrics[key]), metrics
