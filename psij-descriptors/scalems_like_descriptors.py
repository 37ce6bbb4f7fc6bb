"""psij's registration of the scalems-like executor (this directory is a namespace package: no __init__.py).

psij imports every module of every ``psij-descriptors`` directory on ``sys.path`` and loads the class named by
``cls`` from the same ``sys.path`` entry: the installed wheel's site-packages, or the project directory of an
editable install (whose ``.pth`` file puts it on ``sys.path``).
"""

from importlib.metadata import version

from packaging.version import Version
from psij.descriptor import Descriptor

__PSI_J_EXECUTORS__ = [
    Descriptor(name="scalems-like", nice_name="scalems_like pilot", version=Version(version("scalems_like")),
               cls="scalems_like.psij_executor.executor.ScalemsLikeJobExecutor"),
]
