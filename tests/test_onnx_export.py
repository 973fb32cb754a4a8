"""ONNX export (issue 4): ONNX Runtime reproduces torch on a converted checkpoint, and the
torch-free example gives MMPose's keypoints."""
import json
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, config_file, fixture_input, python_env

NAME = 'gtpt-t_coco-wholebody'
IMAGE = osp.join(REPO, 'demo', 'data', 'coco-wholebody-mini', 'train2017',
                 '000000196141.jpg')
IMAGE_SIZE = (640, 429)  # w, h
EXPORT = osp.join(REPO, 'tools', 'deploy', 'export_onnx.py')


@pytest.fixture(scope='module')
def exported(converted, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('onnx') / 'gtpt-t_wb.onnx')
    proc = subprocess.run([
        sys.executable, EXPORT,
        config_file(NAME),
        converted(NAME), out, '--batch', '2'
    ],
                          cwd=REPO,
                          env=python_env(),
                          capture_output=True,
                          text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, proc.stdout


@pytest.fixture(scope='module')
def pose_model(converted):
    from mmpose.apis import init_model
    return init_model(
        config_file(NAME),
        converted(NAME),
        device='cpu',
        cfg_options=dict(model=dict(test_cfg=dict(flip_test=False))))


def test_export_reports_its_check_on_a_real_image(exported):
    out, stdout = exported
    diff = float(stdout.rsplit('max |diff| = ', 1)[1])
    assert osp.isfile(out) and diff < 1e-3


def test_onnx_runtime_matches_torch_on_the_parity_input(exported, pose_model):
    import onnxruntime as ort
    x = fixture_input(NAME)
    with torch.no_grad():
        expected = pose_model.head.forward(pose_model.extract_feat(x))
    got = ort.InferenceSession(
        exported[0],
        providers=['CPUExecutionProvider']).run(None, {'input': x.numpy()})
    for g, e in zip(got, expected):
        assert g.shape == tuple(e.shape)
        assert np.abs(g - e.numpy()).max() < 1e-3


@pytest.mark.parametrize(
    'box', [None, [247.0, 74.0, 170.0, 300.0]], ids=['whole-image', 'box'])
def test_torch_free_example_gives_mmposes_keypoints(exported, pose_model,
                                                    tmp_path, box):
    from mmpose.apis import inference_topdown
    out = str(tmp_path / 'kp.json')
    cmd = [
        sys.executable,
        osp.join(REPO, 'demo', 'onnx_inference.py'), exported[0], IMAGE,
        '--out', out
    ]
    proc = subprocess.run(
        cmd + (['--bbox', *map(str, box)] if box else []),
        env=python_env(),
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.load(open(out))
    keypoints, scores = np.array(result['keypoints']), np.array(
        result['keypoint_scores'])
    assert keypoints.shape == (133, 2) and scores.shape == (133, )
    x, y, w, h = box or (0, 0, *IMAGE_SIZE)
    assert result['bbox'] == [x, y, w, h]
    # the crop is the box padded by 1.25 and widened to 3:4; every keypoint lies inside it (the
    # fixture weights are untrained, so keypoints need not land on the person or in the image)
    half = np.array([max(w, h * 0.75), max(h, w / 0.75)]) * 1.25 / 2
    center = np.array([x + w / 2, y + h / 2])
    assert (np.abs(keypoints - center) <= half + 1e-3).all()
    xyxy = np.array([[x, y, x + w, y + h]], np.float32)
    ref = inference_topdown(
        pose_model, IMAGE, xyxy, bbox_format='xyxy')[0].pred_instances
    assert np.abs(keypoints - ref.keypoints[0]).max() < 0.5  # pixels
    assert np.abs(scores - ref.keypoint_scores[0]).max() < 1e-3


def test_export_refuses_a_missing_checkpoint(tmp_path):
    out = tmp_path / 'x.onnx'
    proc = subprocess.run([
        sys.executable, EXPORT,
        config_file(NAME),
        str(tmp_path / 'missing.pth'),
        str(out)
    ],
                          env=python_env(),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode != 0 and 'missing.pth' in proc.stderr and not out.exists(
    )
    assert not list(tmp_path.iterdir())  # no temporary file left either


def test_example_refuses_a_missing_model(tmp_path):
    proc = subprocess.run([
        sys.executable,
        osp.join(REPO, 'demo', 'onnx_inference.py'),
        str(tmp_path / 'no.onnx'), IMAGE
    ],
                          env=python_env(),
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode != 0 and 'no.onnx' in proc.stderr
