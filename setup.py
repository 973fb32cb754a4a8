"""gtpt-mmpose: GTPT (ECCV 2024) as an MMPose plugin.

The configs and tools ship as package data under ``gtpt_mmpose/.mim/`` so
that ``mim train gtpt_mmpose <config>`` and ``mim test`` work from the
installed package.
"""
import os
import os.path as osp
import shutil
import sys
from setuptools import find_packages, setup

HERE = osp.dirname(osp.abspath(__file__))
MIM_DIRS = ('configs', 'tools', 'model-index.yml')


def add_mim_extension() -> None:
    """Place configs, tools and the model index under gtpt_mmpose/.mim.

    Links for editable installs, copies otherwise.
    """
    editable = any(cmd in sys.argv for cmd in ('develop', 'editable_wheel'))
    mim_root = osp.join(HERE, 'gtpt_mmpose', '.mim')
    os.makedirs(mim_root, exist_ok=True)
    for name in MIM_DIRS:
        src, dst = osp.join(HERE, name), osp.join(mim_root, name)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if editable:
            os.symlink(osp.relpath(src, mim_root), dst)
        elif osp.isfile(src):
            shutil.copy(src, dst)
        else:
            shutil.copytree(
                src,
                dst,
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))


def read_version() -> str:
    ns: dict = {}
    with open(osp.join(HERE, 'gtpt_mmpose', 'version.py')) as f:
        exec(f.read(), ns)
    return ns['__version__']


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='gtpt_mmpose',
        version=read_version(),
        description=('GTPT: Group-based Token Pruning Transformer for '
                     'whole-body pose, as an MMPose plugin'),
        long_description=open(osp.join(HERE, 'README.md'),
                              encoding='utf-8').read(),
        long_description_content_type='text/markdown',
        license='Apache-2.0',
        python_requires='>=3.9',
        packages=find_packages(include=['gtpt_mmpose', 'gtpt_mmpose.*']),
        include_package_data=False,
        package_data={'gtpt_mmpose': ['.mim/**/*']},
        # The OpenMMLab packages are installed by `make setup` with
        # --no-deps (their metadata asks for unbuildable packages); listing
        # them here would make pip try to resolve that metadata.
        install_requires=[],
        zip_safe=False,
    )
