"""The kept-token picture (issue 4): the spec's counts, nested steps, unchanged outputs."""
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import MINI_DATA, REPO, config_file, fixture_input, python_env

SPEC = {  # visual tokens kept: prune #1, transition per group, prune #2 per group; dense per group
    'gtpt-t_coco': (179, (76, 76, 76), (25, 25, 25), (0, 0, 0)),
    'gtpt-t_coco-wholebody': (179, (60, 86, 122), (8, 34, 70), (68, 42, 6)),
}


@pytest.mark.parametrize('name', sorted(SPEC))
def test_kept_token_indices_follow_the_spec_and_leave_the_logits_alone(name, converted):
    from mmpose.apis import init_model
    coarse, transition, late, dense = SPEC[name]
    model = init_model(config_file(name), converted(name), device='cpu').eval()
    x = fixture_input(name)
    with torch.no_grad():
        kept = model.backbone.kept_tokens(x)
        tokens = model.backbone(x)[0]
    assert torch.equal(kept['tokens'], tokens)
    for b in range(x.shape[0]):
        first = kept['coarse_layer3'][b].tolist()
        assert len(first) == len(set(first)) == coarse and all(0 <= t < 256 for t in first)
        for g in range(3):
            mid = kept['transition'][b, g].tolist()
            end = kept['group_layer3'][b, g].tolist()
            assert mid.count(-1) == end.count(-1) == dense[g]  # dense keypoint tokens always stay
            mid = [t for t in mid if t >= 0]
            end = [t for t in end if t >= 0]
            assert (len(mid), len(end)) == (transition[g], late[g])
            assert len(set(mid)) == len(mid) and len(set(end)) == len(end)
            assert set(end) <= set(mid) <= set(first)  # each step keeps a subset of the last


def test_vis_tool_writes_a_picture(converted, tmp_path):
    out = tmp_path / 'kept.png'
    proc = subprocess.run(
        [sys.executable, osp.join(REPO, 'tools', 'analysis', 'vis_kept_tokens.py'), config_file('gtpt-t_coco-wholebody'),
         converted('gtpt-t_coco-wholebody'), osp.join(MINI_DATA, 'train2017', '000000196141.jpg'),
         '--bbox', '247', '74', '170', '300', '--out', str(out)],
        cwd=REPO, env=python_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    import cv2
    image = cv2.imread(str(out))
    assert image.shape[0] > 500 and image.shape[1] > 800 and image.std() > 10
