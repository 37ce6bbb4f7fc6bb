"""A function task's code keeps its file name and source lines through the pickle, with every cloudpickle.

cloudpickle 3.1.3 and later name the file of code pickled by value ``<dynamic-code>``; earlier releases keep it.
Each test pickles a function of a user's script in one process and calls it in another where that script does not
exist (as on a cluster node without the user's files); it runs with the locked cloudpickle and with the oldest one
the package admits (tests/run.sh installs it beside the venv, from requirements/cloudpickle-oldest.lock).
"""

from __future__ import annotations

import linecache
import os
import subprocess
import sys
from pathlib import Path

import cloudpickle
import pytest

from scalems_like.protocol import code_pickle

OLDEST = Path(sys.prefix) / "cloudpickle-oldest"

SCRIPT = '''\
import math


def helper(x):
    return math.sqrt(x)


@staticmethod  # a decorator: its line belongs to the code's span too
def unused():
    pass


def explode(value):
    nested = lambda: helper(value)  # noqa: E731
    return nested()
'''

SEND = '''\
import sys
sys.path.insert(0, sys.argv[1])
import cloudpickle, userscript
cloudpickle.register_pickle_by_value(userscript)
from scalems_like.protocol import code_pickle
sys.stdout.buffer.write(code_pickle.dumps(userscript.explode))
print(cloudpickle.__version__, file=sys.stderr)
'''

RUN = '''\
import sys, traceback, cloudpickle
function = cloudpickle.loads(sys.stdin.buffer.read())
try:
    function(-1)
except ValueError:
    print(traceback.format_exc())
'''


def _python(code: str, pythonpath: list[str], *args: str, stdin: bytes = b"",
            cwd: Path) -> subprocess.CompletedProcess[bytes]:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}
    return subprocess.run([sys.executable, "-c", code, *args], env=environment, input=stdin, cwd=cwd,
                          capture_output=True, check=True, timeout=60)


def _cloudpickle_paths(which: str) -> list[str]:
    package_root = str(Path(code_pickle.__file__).resolve().parents[2])
    if which == "locked":
        return [package_root]
    if not (OLDEST / "cloudpickle").is_dir():
        pytest.skip(f"no oldest cloudpickle at {OLDEST}: `sh tests/run.sh` installs it")
    return [str(OLDEST), package_root]


@pytest.mark.parametrize("which", ["locked", "oldest"])
def test_a_traceback_shows_the_users_file_line_and_source_where_the_file_is_missing(
        which: str, tmp_path: Path) -> None:
    client, node = tmp_path / "laptop", tmp_path / "node"
    client.mkdir()
    node.mkdir()
    (client / "userscript.py").write_text(SCRIPT)
    paths = _cloudpickle_paths(which)
    sent = _python(SEND, paths, str(client), cwd=client)
    version = sent.stderr.decode().strip()
    assert (version == cloudpickle.__version__) is (which == "locked"), version
    (client / "userscript.py").unlink()  # the node has no copy of the user's script
    ran = _python(RUN, paths, stdin=sent.stdout, cwd=node).stdout.decode()
    script = client / "userscript.py"
    assert f'File "{script}", line 15, in explode\n    return nested()\n' in ran, ran
    assert f'File "{script}", line 14, in <lambda>\n    nested = lambda: helper(value)' in ran, ran
    assert f'File "{script}", line 5, in helper\n    return math.sqrt(x)\n' in ran, ran
    assert "<dynamic-code>" not in ran


def test_lines_of_a_file_that_reads_the_same_here_are_left_to_linecache(tmp_path: Path) -> None:
    """A client that unpickles its own functions (a reattach) keeps reading its files as they are."""
    script = tmp_path / "same.py"
    script.write_text("def f():\n    return 1\n")
    code = compile(script.read_text(), str(script), "exec").co_consts[0]
    linecache.checkcache(str(script))
    rebuilt = cloudpickle.loads(code_pickle.dumps(code))
    assert rebuilt.co_filename == str(script)
    assert linecache.cache.get(str(script), (0, 1.0))[1] is not None  # not one of code_pickle's pinned entries


def test_lines_sent_win_over_a_file_that_changed_since(tmp_path: Path) -> None:
    script = tmp_path / "edited.py"
    script.write_text("def f():\n    raise KeyError('as sent')\n")
    payload = code_pickle.dumps(compile(script.read_text(), str(script), "exec").co_consts[0])
    script.write_text("def f():\n    return 'edited afterwards'\n\nextra = 1\n")
    linecache.checkcache(str(script))
    cloudpickle.loads(payload)
    assert linecache.getline(str(script), 2) == "    raise KeyError('as sent')\n"
    assert linecache.getline(str(script), 4) == "extra = 1\n"  # the rest of the file reads as it is here
    linecache.cache.pop(str(script), None)
