"""Find this package's configs in a source checkout or in an installed package
(``.mim``)."""
import os.path as osp

_PKG = osp.dirname(osp.dirname(osp.abspath(__file__)))


def config_dir() -> str:
    """The ``configs`` folder: ``gtpt_mmpose/.mim/configs`` when installed,
    else the repo's."""
    for path in (osp.join(_PKG, '.mim',
                          'configs'), osp.join(osp.dirname(_PKG), 'configs')):
        if osp.isdir(path):
            return path
    raise FileNotFoundError('cannot find the gtpt_mmpose configs folder')


def config_path(name: str) -> str:
    """Path of a config given as a path, a file name or a name without ``.py``.
    """
    if osp.isfile(name):
        return name
    base = name if name.endswith('.py') else name + '.py'
    path = osp.join(config_dir(), osp.basename(base))
    if not osp.isfile(path):
        raise FileNotFoundError(
            f'no config {name!r} (looked in {config_dir()})')
    return path
