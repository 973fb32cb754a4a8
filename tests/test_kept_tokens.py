"""The kept-token picture (issue 4): the spec's counts, nested steps,
unchanged outputs, the PNG."""
import os.path as osp

import pytest
import torch
from conftest import (MINI_DATA, REPO, config_file, fixture_input, python_env,
                      run_script)

pytestmark = pytest.mark.usefixtures('one_torch_thread')

# visual tokens kept by prune #1; by the transition and by prune #2 per
# group; dense tokens per group (spec §0, pruned path; the same for T, S
# and B)
SPEC = {
    'gtpt-t_coco': (179, (76, 76, 76), (25, 25, 25), (0, 0, 0)),
    'gtpt-t_coco-wholebody': (179, (60, 86, 122), (8, 34, 70), (68, 42, 6)),
}


def one_thread_env() -> dict:
    return dict(python_env(), OMP_NUM_THREADS='1')


@pytest.mark.parametrize('name', sorted(SPEC))
def test_kept_token_indices_follow_the_spec_and_leave_the_logits_alone(
        name, converted):
    from mmpose.apis import init_model
    coarse, transition, late, dense = SPEC[name]
    model = init_model(config_file(name), converted(name), device='cpu').eval()
    x = fixture_input(name)
    with torch.no_grad():
        before = model.backbone(x)
        kept = model.backbone.kept_tokens(x)
        after = model.backbone(x)
        logits = [
            model.head(feats) for feats in (before, (kept['tokens'], ), after)
        ]
    assert torch.equal(kept['tokens'],
                       before[0])  # the same pass: identical keypoint tokens
    assert torch.equal(after[0], before[0])  # and asking left no state behind
    for pred_x, pred_y in logits[1:]:
        assert torch.equal(pred_x, logits[0][0]) and torch.equal(
            pred_y, logits[0][1])
    assert sorted(kept) == [
        'coarse_layer3', 'group_layer3', 'tokens', 'transition'
    ]
    for b in range(x.shape[0]):
        first = kept['coarse_layer3'][b].tolist()
        assert len(first) == len(set(first)) == coarse and all(0 <= t < 256
                                                               for t in first)
        for g in range(3):
            mid = kept['transition'][b, g].tolist()
            end = kept['group_layer3'][b, g].tolist()
            assert mid.count(-1) == end.count(-1) == dense[
                g]  # dense keypoint tokens always stay
            mid = [t for t in mid if t >= 0]
            end = [t for t in end if t >= 0]
            assert (len(mid), len(end)) == (transition[g], late[g])
            assert len(set(mid)) == len(mid) and len(set(end)) == len(end)
            assert set(end) <= set(mid) <= set(
                first)  # each step keeps a subset of the last


def test_vis_tool_writes_a_picture(converted, tmp_path):
    import cv2
    out = tmp_path / 'kept.png'
    run_script(
        osp.join(REPO, 'tools', 'analysis', 'vis_kept_tokens.py'),
        config_file('gtpt-t_coco-wholebody'),
        converted('gtpt-t_coco-wholebody'),
        osp.join(MINI_DATA, 'train2017', '000000196141.jpg'),
        '--bbox',
        '247',
        '74',
        '170',
        '300',
        '--out',
        out,
        env=one_thread_env(),
        timeout=300)
    image = cv2.imread(str(out))
    # a 3 x 3 grid of 256 x 192 crops, upscaled: taller than wide, not blank
    assert image is not None and 1000 < image.shape[
        0] < 2000 and 700 < image.shape[1] < 1200
    assert image.std() > 20
