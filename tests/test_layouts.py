"""GTPT on MMPose's other data sets: each config builds with its data set's
keypoint layout, trains through MMPose's data set class on MMPose's own test
data, tests with that data set's MMPose metric, draws with its skeleton,
exports to ONNX and counts its FLOPs in both conventions."""
import importlib.util
import math
import os
import os.path as osp
import re
from typing import NamedTuple

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO, config_file, run_script
from layout_runs import (DATA, DATASETS, LAYOUT_CONFIGS, data_root, dataset_of,
                         last_checkpoint, load_config, run_log, short_run)

pytestmark = pytest.mark.usefixtures('one_torch_thread')

# each data set's layout (docs/layouts.md): MHGA group sizes, dense parts,
# rows x columns of visual tokens
LAYOUTS = {
    'crowdpose': ((2, 6, 6), (), (16, 16)),
    'mpii': ((2, 7, 7), (), (16, 22)),
    'aic': ((2, 6, 6), (), (16, 16)),
    'halpe':
    ((75, 48, 13), (('face', 68), ('left_hand', 21), ('right_hand', 21),
                    ('left_foot', 3), ('right_foot', 3)), (16, 16)),
    'ap10k': ((4, 6, 7), (), (16, 22)),
    'onehand10k': ((5, 8, 8), (), (16, 22)),
    '300w': ((17, 22, 29), (), (16, 22)),
}
# half-body augmentation only where the metainfo has body halves
HALF_BODY = {'crowdpose', 'mpii', 'aic', 'halpe', 'ap10k'}
# the short runs of these start from a converted authors' checkpoint
FINETUNE_FROM = {
    'crowdpose': 'gtpt-t_coco',
    'mpii': 'gtpt-t_coco',
    'halpe': 'gtpt-t_coco-wholebody'
}
# one image of each test set
IMAGES = {
    'crowdpose': 'images/106848.jpg',
    'mpii': 'images/005808361.jpg',
    'aic': 'ai_challenger_keypoint_train_20170902/keypoint_train_images_'
    '20170902/054d9ce9201beffc76e5ff2169d2af2f027002ca.jpg',
    'halpe': 'val2017/000000196141.jpg',
    'ap10k': 'data/000000037516.jpg',
    'onehand10k': '9.jpg',
    '300w': 'images/indoor_029.png',
}
# exported in the fast suite: a padded 256x256 body layout, and one with
# dense parts; the others are slow
FAST_EXPORTS = ('mpii', 'halpe')


def image(dataset: str) -> str:
    return osp.join(DATA, dataset, IMAGES[dataset])


class Run(NamedTuple):
    checkpoint: str
    metrics: dict
    log: str


@pytest.fixture(scope='module')
def trained(tmp_path_factory, converted):
    """trained(data set) -> Run: GTPT-T of that data set trained two
    iterations on its test data through MMPose's data set class, then tested
    with the config's metric (cached)."""
    from mmengine.runner import Runner
    runs = {}

    def get(dataset: str) -> Run:
        if dataset not in runs:
            work = tmp_path_factory.mktemp(f'run_{dataset}')
            cfg = short_run(
                load_config(f'gtpt-t_{dataset}'),
                work,
                options=dict(experiment_name=f'gtpt-t_{dataset}'))
            if dataset in FINETUNE_FROM:
                cfg.stage1_checkpoint = converted(FINETUNE_FROM[dataset])
            runner = Runner.from_cfg(cfg)
            runner.train()
            metrics = runner.test()
            runs[dataset] = Run(last_checkpoint(work), metrics, run_log(work))
        return runs[dataset]

    return get


def dataset_metainfo(config: str) -> dict:
    """The metainfo of the config's MMPose data set, built on its test
    data."""
    from mmpose.registry import DATASETS as MMPOSE_DATASETS
    cfg = load_config(config)
    return MMPOSE_DATASETS.build(cfg.train_dataloader.dataset).metainfo


@pytest.mark.parametrize('config', LAYOUT_CONFIGS)
def test_config_builds_with_its_data_sets_layout(config):
    from mmpose.registry import MODELS
    dataset = dataset_of(config)
    cfg = load_config(config)
    model = MODELS.build(cfg.model).eval()
    backbone = model.backbone
    count, _ = DATASETS[dataset]
    names = dataset_metainfo(config)['keypoint_id2name']
    assert backbone.keypoints.names == tuple(names[k] for k in range(count))
    groups, parts, grid = LAYOUTS[dataset]
    assert tuple(len(g) for g in backbone.keypoints.groups) == groups
    assert tuple((p, len(ids)) for p, ids in backbone.keypoints.parts) == parts
    assert backbone.grid == grid
    w, h = cfg.codec.input_size
    assert (w, h) == ((192, 256) if grid == (16, 16) else (256, 256))
    assert tuple(backbone.input_size) == tuple(model.head.input_size) == (w, h)
    for loader in (cfg.train_dataloader, cfg.test_dataloader):
        steps = {t['type']: t for t in loader.dataset.pipeline}
        assert tuple(steps['TopdownAffine']['input_size']) == (w, h)
    train_steps = [t['type'] for t in cfg.train_dataloader.dataset.pipeline]
    assert ('RandomHalfBody' in train_steps) == (dataset in HALF_BODY)
    assert 'RandomFlip' in train_steps and cfg.model.test_cfg.flip_test
    with torch.no_grad():
        simcc_x, simcc_y = model(torch.zeros(1, 3, h, w), None, 'tensor')
    assert simcc_x.shape == (1, count, 2 * w)
    assert simcc_y.shape == (1, count, 2 * h)


def docs_table() -> dict:
    """docs/layouts.md's rows: config -> its cells."""
    rows = {}
    with open(osp.join(REPO, 'docs', 'layouts.md')) as f:
        for line in f:
            cells = [c.strip() for c in line.strip().strip('|').split('|')]
            if cells[0].startswith('gtpt-'):
                rows[cells[0]] = cells
    return rows


@pytest.mark.parametrize('config', LAYOUT_CONFIGS)
def test_flops_in_both_conventions_as_docs_and_model_index_say(config):
    """count_flops at the config's input size; GTPT-S's figures are those
    of docs/layouts.md, every config's those of the model index (what `mim
    search` lists)."""
    from mmpose.registry import MODELS

    from gtpt_mmpose.analysis.flops import count_flops
    cfg = load_config(config)
    model = MODELS.build(cfg.model).eval()
    w, h = cfg.codec.input_size
    result = count_flops(model, (torch.zeros(1, 3, h, w), None, 'tensor'))
    assert 0 < result['authors'] < result['full']
    assert result['params'] == sum(p.numel() for p in model.parameters())
    with open(osp.join(REPO, 'configs', 'gtpt_metafile.yml')) as f:
        index = {m['Name']: m for m in yaml.safe_load(f)['Models']}
    meta = index[config]['Metadata']
    assert meta['Parameters'] == result['params']
    assert meta['FLOPs'] == round(result['authors'] / 1e6) * 10**6
    if config.startswith('gtpt-s_'):
        row = docs_table()[config]
        assert row[-3:] == [
            f'{result["params"] / 1e6:.3f}', f'{result["authors"] / 1e9:.3f}',
            f'{result["full"] / 1e9:.3f}'
        ], row


def test_get_flops_measures_each_config_at_its_own_input_size():
    proc = run_script(
        osp.join(REPO, 'tools', 'analysis', 'get_flops.py'), 'gtpt-s_mpii',
        'gtpt-s_halpe', 'gtpt-s_coco')
    rows = {
        cells[0]: cells[1:]
        for cells in ([c.strip() for c in line.strip('|').split('|')]
                      for line in proc.stdout.splitlines()
                      if line.startswith('| gtpt-'))
    }
    docs = docs_table()
    assert rows['gtpt-s_mpii'][0] == '256x256'
    assert rows['gtpt-s_halpe'][0] == rows['gtpt-s_coco'][0] == '256x192'
    for name in rows:
        assert rows[name][1:] == docs[name][-3:]


@pytest.mark.parametrize('dataset', sorted(DATASETS))
def test_trains_two_iterations_and_tests_with_the_data_sets_metric(
        dataset, trained):
    run = trained(dataset)
    losses = re.findall(r'\(train\).* loss: (\S+)', run.log)
    assert len(losses) == 2 and all(math.isfinite(float(v)) for v in losses)
    _, keys = DATASETS[dataset]
    for key in keys:
        assert math.isfinite(run.metrics[key]), (key, run.metrics)


@pytest.mark.parametrize('dataset, summary', [
    ('crowdpose', 'transferred 257 tensors whole, keypoint_token 12/14 by '
     'name; new: backbone.keypoint_token (2 rows)'),
    ('mpii', 'transferred 255 tensors whole, keypoint_token 12/16 by name; '
     'new: backbone.keypoint_token (4 rows), head.x_fc.weight, '
     'head.x_fc.bias'),
    ('halpe', 'transferred 257 tensors whole, keypoint_token 17/20 by name, '
     'part_token 5/5 by name, dense_keypoint_token 116/116 by name; new: '
     'backbone.keypoint_token (3 rows)'),
])
def test_a_run_from_a_coco_model_logs_what_was_transferred(
        dataset, summary, trained, converted):
    """Of GTPT-T's 258 tensors (260 with parts), all but the keypoint
    tables (and MPII's x classifier: 256 pixels wide, not 192) whole; the
    keypoints COCO has by name (CrowdPose and MPII lack COCO's face
    keypoints and add their head and neck ones, Halpe adds head, neck and
    hip to COCO-WholeBody's)."""
    line = re.search(r'CurriculumInitHook: stage-1 weights from (\S+): (.*)',
                     trained(dataset).log)
    assert line, trained(dataset).log[-3000:]
    assert line.group(1) == converted(FINETUNE_FROM[dataset])
    assert line.group(2) == summary


@pytest.mark.parametrize('dataset', sorted(DATASETS))
def test_mmposes_inferencer_draws_with_the_data_sets_skeleton(
        dataset, trained, tmp_path):
    import mmcv
    from mmpose.apis import MMPoseInferencer
    count, _ = DATASETS[dataset]
    inferencer = MMPoseInferencer(
        pose2d=config_file(f'gtpt-t_{dataset}'),
        pose2d_weights=trained(dataset).checkpoint,
        det_model='whole_image',
        device='cpu')
    result = next(
        inferencer(
            image(dataset),
            return_vis=True,
            kpt_thr=-1.0,  # draw every keypoint of the untrained model
            vis_out_dir=str(tmp_path)))
    person, = result['predictions'][0]
    assert len(person['keypoints']) == len(person['keypoint_scores']) == count
    meta = dataset_metainfo(f'gtpt-t_{dataset}')
    visualizer = inferencer.inferencer.visualizer
    assert [tuple(link) for link in visualizer.skeleton
            ] == [tuple(link) for link in meta['skeleton_links']]
    assert np.array_equal(visualizer.kpt_color, meta['keypoint_colors'])
    # the picture changes where a keypoint lies in the image (the model has
    # trained 2 iterations: its keypoints may all lie outside)
    drawn = result['visualization'][0]
    original = mmcv.imread(image(dataset), channel_order='rgb')
    h, w = original.shape[:2]
    keypoints = np.array(person['keypoints'])
    inside = ((keypoints >= 0) & (keypoints < [w, h])).all(1).any()
    assert drawn.shape == original.shape
    assert (drawn != original).any() == inside
    assert osp.isfile(tmp_path / osp.basename(IMAGES[dataset]))


def exporter():
    """tools/deploy/export_onnx.py as a module."""
    path = osp.join(REPO, 'tools', 'deploy', 'export_onnx.py')
    spec = importlib.util.spec_from_file_location('export_onnx', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('dataset', [
    d if d in FAST_EXPORTS else pytest.param(d, marks=pytest.mark.slow)
    for d in sorted(DATASETS)
])
def test_onnx_export_matches_torch_in_both_runtimes(dataset, trained,
                                                    tmp_path):
    """The export tool checks the graph in ONNX Runtime and OpenVINO on a
    crop of the data set's image and writes it only within 1e-3."""
    import onnx
    out = str(tmp_path / f'{dataset}.onnx')
    diffs = exporter().export(
        config_file(f'gtpt-t_{dataset}'),
        trained(dataset).checkpoint,
        out,
        image=image(dataset))
    assert set(diffs) == {'onnxruntime', 'openvino'}
    assert all(d < 1e-3 for d in diffs.values()), diffs
    meta = {p.key: p.value for p in onnx.load(out).metadata_props}
    count, _ = DATASETS[dataset]
    w, h = load_config(f'gtpt-t_{dataset}').codec.input_size
    assert meta['num_keypoints'] == str(count)
    assert meta['input_size'] == f'{w} {h}'


def test_kept_token_picture_covers_the_padded_crop(trained, tmp_path,
                                                   monkeypatch):
    """MPII's 256x256 crop is drawn with the 4 columns of padding on each
    side the model adds: 16 x 22 cells of 16 x 12 pixels."""
    import cv2
    path = osp.join(REPO, 'tools', 'analysis', 'vis_kept_tokens.py')
    spec = importlib.util.spec_from_file_location('vis_kept_tokens', path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    drawn = {}
    draw = tool.draw

    def recording_draw(result, groups, grid, *args):
        drawn.update(crop=result['crop'], grid=grid, groups=groups)
        draw(result, groups, grid, *args)

    monkeypatch.setattr(tool, 'draw', recording_draw)
    out = tmp_path / 'kept.png'
    assert tool.main([
        config_file('gtpt-t_mpii'),
        trained('mpii').checkpoint,
        image('mpii'), '--out',
        str(out)
    ]) == 0
    crop = drawn['crop']
    assert drawn['grid'] == (16, 22) and crop.shape == (256, 264, 3)
    assert not crop[:, :4].any() and not crop[:, -4:].any()
    assert crop[:, 4:-4].std() > 10  # the image itself
    picture = cv2.imread(str(out))
    assert picture is not None and picture.std() > 20


def test_gtpt_b_stem_gives_a_quarter_of_a_padded_input():
    """GTPT-B's U-shaped stem halves a 264-pixel width three times (66, 33,
    17 columns) and doubles it back: its skips must meet (66 columns out)."""
    from gtpt_mmpose.models.backbones import shufflenet_stem
    stem = shufflenet_stem.UShapedShuffleStem().eval()
    with torch.no_grad():
        assert stem(torch.zeros(1, 3, 256, 264)).shape == (1, 256, 64, 66)
        assert stem(torch.zeros(1, 3, 256, 192)).shape == (1, 256, 64, 48)


@pytest.mark.parametrize('config', ['gtpt-t_mpii', 'gtpt-b_mpii'])
@pytest.mark.parametrize('backend', ['eager', 'export'])
def test_prepared_for_inference_padded_layouts_give_the_same_logits(
        config, backend):
    """What the benchmark and the deploy path run: BatchNorms folded, the
    stem's last stage shuffle-free (GTPT-B: its U-shaped stem on a width
    that is no multiple of 16)."""
    from mmpose.registry import MODELS

    from gtpt_mmpose.analysis.flops import count_flops
    from gtpt_mmpose.deploy import prepare_for_inference
    torch.manual_seed(0)
    model = MODELS.build(load_config(config).model).eval()
    for m in model.modules():  # non-trivial BatchNorm statistics to fold
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    x = torch.randn(2, 3, 256, 256, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = model(x, None, 'tensor')
        prepared = prepare_for_inference(model, backend)
        got = prepared(x, None, 'tensor')
    for g, e in zip(got, expected):
        assert torch.allclose(g, e, atol=1e-4), (g - e).abs().max()
    counts = count_flops(prepared, (x[:1], None, 'tensor'))
    assert 0 < counts['authors'] < counts['full']


def test_the_test_data_is_the_repositorys_own():
    """Every data root the tests use lies inside the repository."""
    for dataset in DATASETS:
        root = osp.realpath(data_root(dataset))
        assert root.startswith(osp.realpath(REPO) + osp.sep), root
        for dirpath, _, files in os.walk(root, followlinks=True):
            for name in files:
                real = osp.realpath(osp.join(dirpath, name))
                assert real.startswith(osp.realpath(REPO) + osp.sep), real


def test_a_checkpoint_of_a_data_set_without_sigmas_loads_weights_only(
        tmp_path):
    """MMEngine saves the data set's metainfo in a checkpoint; 300W's has
    empty sigmas and skeleton colour arrays, which pickle as ``bytes()``."""
    from mmpose.datasets.datasets.utils import parse_pose_metainfo

    from gtpt_mmpose.utils.safe_checkpoint import load_checkpoint_file
    meta = parse_pose_metainfo(
        dict(from_file='configs/_base_/datasets/300w.py'))
    assert meta['sigmas'].size == meta['skeleton_link_colors'].size == 0
    path = str(tmp_path / 'face.pth')
    torch.save(dict(meta=dict(dataset_meta=meta)), path)
    loaded = load_checkpoint_file(path)['meta']['dataset_meta']
    assert loaded['num_keypoints'] == 68 and loaded['sigmas'].size == 0
