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
IMAGE = osp.join(REPO, 'demo', 'data', 'coco-wholebody-mini', 'train2017', '000000196141.jpg')


@pytest.fixture(scope='module')
def exported(converted, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('onnx') / 'gtpt-t_wb.onnx')
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'deploy', 'export_onnx.py'), config_file(NAME),
                           converted(NAME), out, '--batch', '2'],
                          cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_onnx_runtime_matches_torch_on_the_parity_input(exported, converted):
    import onnxruntime as ort
    from mmpose.apis import init_model
    x = fixture_input(NAME)
    model = init_model(config_file(NAME), converted(NAME), device='cpu')
    with torch.no_grad():
        expected = model.head.forward(model.extract_feat(x))
    got = ort.InferenceSession(exported, providers=['CPUExecutionProvider']).run(None, {'input': x.numpy()})
    for g, e in zip(got, expected):
        assert g.shape == tuple(e.shape)
        assert np.abs(g - e.numpy()).max() < 1e-3


def test_torch_free_example_gives_mmposes_keypoints(exported, converted, tmp_path):
    from mmpose.apis import inference_topdown, init_model
    box = [247.0, 74.0, 170.0, 300.0]
    out = str(tmp_path / 'kp.json')
    proc = subprocess.run([sys.executable, osp.join(REPO, 'demo', 'onnx_inference.py'), exported, IMAGE,
                           '--bbox', *map(str, box), '--out', out], env=python_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.load(open(out))
    assert len(result['keypoints']) == 133
    model = init_model(config_file(NAME), converted(NAME), device='cpu',
                       cfg_options=dict(model=dict(test_cfg=dict(flip_test=False))))
    xyxy = np.array([[box[0], box[1], box[0] + box[2], box[1] + box[3]]], np.float32)
    ref = inference_topdown(model, IMAGE, xyxy, bbox_format='xyxy')[0].pred_instances
    assert np.abs(np.array(result['keypoints']) - ref.keypoints[0]).max() < 0.5  # pixels
    assert np.abs(np.array(result['keypoint_scores']) - ref.keypoint_scores[0]).max() < 1e-3


def test_export_refuses_a_missing_checkpoint(tmp_path):
    out = tmp_path / 'x.onnx'
    proc = subprocess.run([sys.executable, osp.join(REPO, 'tools', 'deploy', 'export_onnx.py'), config_file(NAME),
                           str(tmp_path / 'missing.pth'), str(out)], env=python_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0 and 'missing.pth' in proc.stderr and not out.exists()
