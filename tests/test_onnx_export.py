"""ONNX export (issues 4, 14): ONNX Runtime and OpenVINO reproduce torch on a
converted checkpoint, and the torch-free example gives MMPose's
keypoints."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import REPO, config_file, fixture_input, python_env, run_script

NAME = 'gtpt-t_coco-wholebody'
IMAGE = osp.join(REPO, 'demo', 'data', 'coco-wholebody-mini', 'train2017',
                 '000000196141.jpg')
IMAGE_SIZE = (640, 429)  # w, h
BOX = (247.0, 74.0, 170.0, 300.0)  # the batter, x y w h
# how many times PyTorch's bf16 autocast error OpenVINO's bf16 may be off
# fp32 (measured 1.3-1.9: it also keeps the residual stream in bf16)
BF16_SLACK = 3
EXPORT = osp.join(REPO, 'tools', 'deploy', 'export_onnx.py')


@pytest.fixture(scope='module')
def exported(converted, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('onnx') / 'gtpt-t_wb.onnx')
    proc = run_script(EXPORT, config_file(NAME), converted(NAME), out,
                      '--batch', '2')
    return out, proc.stdout


@pytest.fixture(scope='module')
def pose_model(converted):
    from mmpose.apis import init_model
    return init_model(
        config_file(NAME),
        converted(NAME),
        device='cpu',
        cfg_options=dict(model=dict(test_cfg=dict(flip_test=False))))


def test_export_reports_its_checks_on_a_real_image(exported):
    out, stdout = exported
    assert osp.isfile(out) and 'opset 23' in stdout
    umask = os.umask(0)
    os.umask(umask)  # an ordinary file's mode (not a temporary file's 0600)
    assert os.stat(out).st_mode & 0o777 == 0o666 & ~umask
    for runtime in ('onnxruntime', 'openvino'):  # both check the graph
        diff = float(stdout.split(f'{runtime} max |diff| = ')[1].split(',')[0])
        assert diff < 1e-3, runtime


def test_exported_graph_uses_the_fused_attention_op(exported):
    """Opset 23's standard Attention op, one per layer, in its 3-D form (heads
    in the channels: no Transpose before or after it), q, k and v from three
    products (no Split of one), a stem without channel splits, and what
    decoding needs in the metadata."""
    import onnx
    model = onnx.load(exported[0])
    ops = [n.op_type for n in model.graph.node]
    assert ops.count('Attention') == 12 and 'Softmax' in ops  # scores only
    producer = {out: n.op_type for n in model.graph.node for out in n.output}
    readers = {}
    for n in model.graph.node:
        for name in n.input:
            readers.setdefault(name, []).append(n.op_type)
    for node in (n for n in model.graph.node if n.op_type == 'Attention'):
        heads = {a.name: a.i for a in node.attribute}
        assert heads['q_num_heads'] == heads['kv_num_heads'] == 8
        assert 'Transpose' not in [producer[i] for i in node.input[:3]]
        assert 'Transpose' not in readers[node.output[0]]
    assert ops.count('Transpose') <= 14  # 36 with 4-D attention
    # no Split: the stem's units read pieces of convolutions, not halves
    assert 'Split' not in ops
    coarse = [n for n in model.graph.node if n.op_type == 'Attention'][:6]
    assert all(producer[i] == 'MatMul' for n in coarse for i in n.input[:3])
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta['input_size'] == '192 256' and meta['num_keypoints'] == '133'
    assert float(meta['score_scale']) == pytest.approx(4 * (2 * np.pi)**0.5)


@pytest.mark.parametrize('runtime', ['onnxruntime', 'openvino'])
def test_runtimes_match_torch_on_the_parity_input(exported, pose_model,
                                                  runtime):
    from gtpt_mmpose.deploy import open_session
    x = fixture_input(NAME)  # the authors' outputs are known for it
    with torch.no_grad():
        expected = pose_model.head.forward(pose_model.extract_feat(x))
    got = open_session(exported[0], runtime)(x.numpy())
    for g, e in zip(got, expected):
        assert g.shape == tuple(e.shape)
        assert np.abs(g - e.numpy()).max() < 1e-3


@pytest.mark.parametrize(
    'box, runtime', [(None, 'onnxruntime'),
                     ([247.0, 74.0, 170.0, 300.0], 'onnxruntime'),
                     ([247.0, 74.0, 170.0, 300.0], 'openvino')],
    ids=['whole-image', 'box', 'openvino'])
def test_torch_free_example_gives_mmposes_keypoints(exported, pose_model,
                                                    tmp_path, box, runtime):
    from mmpose.apis import inference_topdown
    out = str(tmp_path / 'kp.json')
    cmd = [
        sys.executable,
        osp.join(REPO, 'demo', 'onnx_inference.py'), exported[0], IMAGE,
        '--out', out, '--runtime', runtime
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
    # the crop is the box padded by 1.25 and widened to 3:4; every keypoint
    # lies inside it (the fixture weights are untrained, so keypoints need
    # not land on the person or in the image)
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
    assert proc.returncode != 0 and 'missing.pth' in proc.stderr
    assert not out.exists()
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


@pytest.fixture(scope='module')
def crops(pose_model):
    """The whole image and the batter's box as MMPose's test pipeline crops
    them: (2, 3, 256, 192) inputs (the exported batch) and their samples."""
    from mmcv.transforms import Compose
    from mmengine.dataset import pseudo_collate
    pipeline = Compose(pose_model.cfg.test_dataloader.dataset.pipeline)
    items = []
    for x, y, w, h in ((0, 0, *IMAGE_SIZE), BOX):
        info = dict(
            img_path=IMAGE,
            bbox=np.array([[x, y, x + w, y + h]], np.float32),
            bbox_score=np.ones(1, np.float32))
        info.update(pose_model.dataset_meta)
        items.append(pipeline(info))
    data = pose_model.data_preprocessor(pseudo_collate(items), False)
    return data['inputs'], data['data_samples']


def torch_logits(pose_model, x: torch.Tensor, bf16: bool) -> list:
    """PyTorch's SimCC logits (x, y), in float32 or under bf16 autocast."""
    with torch.no_grad(), torch.autocast('cpu', torch.bfloat16, enabled=bf16):
        return [
            t.float().numpy()
            for t in pose_model.head.forward(pose_model.extract_feat(x))
        ]


def test_openvino_bf16_logits_are_as_close_as_torch_bf16_autocast(
        exported, pose_model, crops):
    """On real crops, OpenVINO's bf16 logits are off the fp32 ones by at most
    BF16_SLACK times as much as PyTorch's own bf16 autocast of the same model
    (root mean square and largest error), and bf16 did run (the error is far
    above fp32's 1e-6)."""
    import openvino as ov

    from gtpt_mmpose.deploy import open_session
    run = open_session(exported[0], 'openvino-bf16')
    precision = run.request.get_compiled_model().get_property(
        'INFERENCE_PRECISION_HINT')
    if precision != ov.Type.bf16:
        pytest.skip(f'OpenVINO runs the bf16 hint in {precision} on this CPU')
    x = crops[0]
    fp32 = torch_logits(pose_model, x, bf16=False)
    autocast = torch_logits(pose_model, x, bf16=True)
    for axis, (f, a, g) in enumerate(zip(fp32, autocast, run(x.numpy()))):
        rms = {
            k: np.sqrt(np.mean((v - f)**2))
            for k, v in (('ov', g), ('torch', a))
        }
        worst = {k: np.abs(v - f).max() for k, v in (('ov', g), ('torch', a))}
        print('xy'[axis], 'rms', rms, 'max', worst)
        assert 1e-3 < rms['ov'] <= BF16_SLACK * rms['torch']
        assert worst['ov'] <= BF16_SLACK * worst['torch']


def test_example_runs_openvino_in_bf16(exported, pose_model, crops, tmp_path):
    """The example's bf16 keypoints and scores are what bf16 rounding of the
    logits explains. With every logit off by at most D (BF16_SLACK times
    autocast's largest error), a keypoint can only move to a bin whose fp32
    logit is within 2 D of its fp32 peak, and a score can change by a factor
    of at most exp(2 D); in fp32 each keypoint is on its fp32 peak. What bf16
    does to a trained model's AP: ``tools/analysis/benchmark.py
    --bf16-accuracy`` (docs/design.md §6)."""
    outs = {}
    for precision in ('fp32', 'bf16'):
        out = str(tmp_path / f'{precision}.json')
        proc = subprocess.run([
            sys.executable,
            osp.join(REPO, 'demo', 'onnx_inference.py'), exported[0], IMAGE,
            '--out', out, '--runtime', 'openvino', '--precision', precision
        ],
                              env=python_env(),
                              capture_output=True,
                              text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        outs[precision] = json.load(open(out))
    x, samples = crops
    fp32 = torch_logits(pose_model, x[:1], bf16=False)
    autocast = torch_logits(pose_model, x[:1], bf16=True)
    # the example's whole-image crop is MMPose's (test above): its keypoints
    # in image pixels go back to SimCC bins through the same crop
    decoder = pose_model.head.decoder
    (w, h), split = decoder.input_size, decoder.simcc_split_ratio
    center, scale = samples[0].input_center, samples[0].input_scale
    reach = BF16_SLACK * max(
        np.abs(a - f).max() for f, a in zip(fp32, autocast))
    for precision, result in outs.items():
        keypoints = np.array(result['keypoints'])
        assert keypoints.shape == (133, 2) and np.isfinite(keypoints).all()
        bins = np.rint(((keypoints - center) * (w / scale[0]) +
                        (w / 2, h / 2)) * split).astype(int)
        for axis, logits in enumerate(fp32):
            peak = logits[0].max(-1)
            chosen = logits[0][np.arange(133), bins[:, axis]]
            if precision == 'fp32':
                assert (chosen == peak).all()
            else:
                print(
                    'xy'[axis], f'{(chosen < peak).sum()} of 133 moved; '
                    f'largest gap {(peak - chosen).max():.3f}, '
                    f'allowed {2 * reach:.3f}')
                assert (peak - chosen <= 2 * reach).all()
    ratio = np.log(outs['bf16']['keypoint_scores']) - np.log(
        outs['fp32']['keypoint_scores'])
    assert np.abs(ratio).max() <= 2 * reach
