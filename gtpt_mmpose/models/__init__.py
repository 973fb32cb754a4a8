from .backbones import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .pose_estimator import GTPTPoseEstimator  # noqa: F401
