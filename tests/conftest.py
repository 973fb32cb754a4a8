"""Shared fixtures: paths of the bundled data and converted authors'
checkpoints."""
import os
import os.path as osp
import subprocess
import sys
import warnings

import pytest

warnings.filterwarnings('ignore', message='pkg_resources is deprecated')

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
FIXTURES = osp.join(REPO, 'tests', 'data', 'official-gtpt')
MINI_DATA = osp.join(REPO, 'demo', 'data', 'coco-wholebody-mini')
PARITY_FIXTURES = ('gtpt-t_coco', 'gtpt-t_coco-wholebody', 'gtpt-b_coco',
                   'gtpt-b_coco-wholebody')

sys.path.insert(0, FIXTURES)  # make_checkpoint.py, the fixtures' own generator


@pytest.fixture(scope='session', autouse=True)
def _registries():
    from mmpose.utils import register_all_modules

    import gtpt_mmpose  # noqa: F401
    register_all_modules()


@pytest.fixture(autouse=True)
def _runners_on_the_cpu(monkeypatch):
    """In-process MMEngine Runners put the model on the CPU, also on a GPU
    host, where MMEngine would move it to CUDA: their tests compare with
    values computed on the CPU. tests/test_devices.py covers the GPU."""
    import mmengine.runner.runner as runner_module
    monkeypatch.setattr(runner_module, 'get_device', lambda: 'cpu')


@pytest.fixture(scope='module')
def one_torch_thread():
    """One torch thread for a module's tests, restored after: the tests share
    2 cores with other work, and OpenMP's second thread then mostly spins
    (test_demo and test_kept_tokens: 28 s instead of 60 s; FLOP counting 30x
    slower). Use with ``pytestmark = pytest.mark.usefixtures(...)``."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope='session')
def repo_root() -> str:
    return REPO


@pytest.fixture(scope='session')
def mini_data_root() -> str:
    return MINI_DATA


def config_file(name: str) -> str:
    return osp.join(REPO, 'configs', name + '.py')


@pytest.fixture(scope='session')
def converted(tmp_path_factory):
    """converted(name) -> path of the fixture's authors' checkpoint
    converted by our tool (cached)."""
    import make_checkpoint

    cache = {}
    root = tmp_path_factory.mktemp('converted')

    def get(name: str) -> str:
        if name not in cache:
            src, dst = str(root / f'{name}_authors.pth'), str(root /
                                                              f'{name}.pth')
            make_checkpoint.save_checkpoint(osp.join(FIXTURES, name), src)
            subprocess.run([
                sys.executable,
                osp.join(REPO, 'tools', 'convert_official_checkpoint.py'), src,
                dst
            ],
                           check=True,
                           cwd=REPO,
                           capture_output=True)
            cache[name] = dst
        return cache[name]

    return get


def fixture_input(name: str):
    import make_checkpoint
    import torch
    return torch.from_numpy(
        make_checkpoint.make_input(osp.join(FIXTURES, name)))


def python_env() -> dict:
    """Environment for subprocesses: deterministic, quiet, CPU only."""
    env = dict(
        os.environ,
        PYTHONWARNINGS='ignore',
        CUDA_VISIBLE_DEVICES='',
        OMP_NUM_THREADS='2')
    return env


def run_script(script: str, *args, env: dict = None, timeout: int = 600):
    """Run a repository script with this Python from the repository root;
    fail the test with its error output unless it succeeds."""
    proc = subprocess.run([sys.executable, script, *map(str, args)],
                          cwd=REPO,
                          env=env or python_env(),
                          capture_output=True,
                          text=True,
                          timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc
