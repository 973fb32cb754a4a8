"""The GPU check on a machine without CUDA: it runs, reports every CUDA
figure as skipped, still runs the CPU half of the parity check, and exits
0 (docs/gpu.md)."""
import json
import os.path as osp
import sys

import pytest
from conftest import REPO, run_script

CHECK = osp.join('tools', 'gpu_check', 'check.py')


def cuda_figures() -> set:
    """Every CUDA figure the check's sections name, at its default sizes."""
    sys.path.insert(0, osp.join(REPO, 'tools', 'gpu_check'))
    import check
    import correctness
    args = check.parse_args([])
    names = set(correctness.FIGURES['parity'])
    for section, (_, figures, _) in check.SECTIONS.items():
        if figures is not None:
            assert figures(args), f'section {section} names no figure'
            names.update(figures(args))
    return names


@pytest.mark.slow
def test_the_gpu_check_skips_its_cuda_figures_without_cuda(tmp_path):
    out = tmp_path / 'gpu_check.json'
    # conftest's environment hides CUDA; the smallest authors' fixture
    proc = run_script(CHECK, '--fixture', 'gtpt-t_coco', '--out', out)
    lines = proc.stdout.splitlines()
    rows = json.loads(out.read_text())['figures']
    by_name = {r['name']: r for r in rows}
    assert lines[0].split()[:2] == ['env.device', 'cpu']
    assert by_name['env.torch']['value'] in lines[1]
    assert not [r for r in rows if 'failed' in r]
    # the CPU half of the parity check ran and holds
    assert by_name['parity.cpu_vs_authors']['value'] < 1e-4
    expected = cuda_figures()
    skipped = {r['name'] for r in rows if r.get('skipped') == 'no CUDA'}
    assert skipped == expected
    for name in expected:  # one printed line each
        assert f'{name} skipped: no CUDA' in {
            ' '.join(line.split())
            for line in lines
        }, name
