"""The ControlMaster against a real sshd: open, check, commands through it, close; the failures a user meets."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scalems_like import SshError, paths
from scalems_like.cli.main import main
from scalems_like.remote.connection import ControlMaster, login_master, session_master
from scalems_like.resources import load_resource
from tests.processes import alive
from tests.remote.conftest import BARE_PORT, BASE, NO_PYTHON_PORT, PORT, RESOURCE, SCRATCH, options


def test_open_check_run_close(tmp_path: Path, known_hosts: Path) -> None:
    directory = tmp_path / ("a-session-directory-whose-path-is-longer-than-a-unix-socket-may-be-" * 2) / "ssh"
    master = ControlMaster(RESOURCE, "root@127.0.0.1", directory, options(known_hosts))
    assert not directory.exists() and not master.check()  # the constructor did nothing
    assert master.open() is True
    assert len(str(master.socket)) < 60 and master.check()
    assert stat.S_ISSOCK((directory / "m").lstat().st_mode)  # the socket itself is in the session's directory
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    pid = master.master_pid()
    assert pid is not None and alive(pid)
    assert ControlMaster(RESOURCE, "root@127.0.0.1", directory, options(known_hosts)).open() is False  # reused
    result = master.run(["sh", "-c", 'cat; printf "[%s]" "$1"', "sh", "it's $HOME; `x` \"y\""], stdin=b"in\n")
    assert (result.exit_code, result.stdout) == (0, b"in\n[it's $HOME; `x` \"y\"]")
    assert master.run(["sh", "-c", "exit 7"]).exit_code == 7
    assert master.require_python().startswith("3.")
    link = master.socket.parent
    master.close()
    assert not master.check() and not alive(pid)
    assert not link.is_symlink() and directory.is_dir()  # the short link goes, the session's directory stays
    with pytest.raises(SshError) as raised:
        master.run(["true"])  # never a connection of its own when the master is gone
    assert raised.value.kind == "not-connected"
    assert f"scalems-like login {RESOURCE}" in str(raised.value)


def test_unknown_host_key_is_refused_and_the_error_says_how_to_add_it(tmp_path: Path, sshd: int) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    master = ControlMaster(RESOURCE, "root@127.0.0.1", tmp_path / "ssh", options(empty))
    with pytest.raises(SshError) as raised:
        master.open()
    message = str(raised.value)
    assert raised.value.kind == "host-key-unknown" and "\n" not in message
    assert message.startswith(f"resource '{RESOURCE}' (root@127.0.0.1): the host key of [127.0.0.1]:{PORT} is not")
    assert "Host key verification failed" in message  # ssh's own words
    assert f"`ssh-keyscan -p {PORT} 127.0.0.1 >> {empty}`" in message
    assert empty.read_text() == "" and not master.check()  # nothing accepted


def test_a_key_the_server_refuses_is_an_authentication_failure(tmp_path: Path, known_hosts: Path) -> None:
    stranger = tmp_path / "stranger"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)], check=True)
    master = ControlMaster(RESOURCE, "root@127.0.0.1", tmp_path / "ssh", options(known_hosts, identity=stranger))
    with pytest.raises(SshError) as raised:
        master.open()
    assert raised.value.kind == "authentication" and "\n" not in str(raised.value)
    assert str(raised.value).startswith(f"resource '{RESOURCE}' (root@127.0.0.1): authentication failed while ")
    assert "(ssh: root@127.0.0.1: Permission denied (publickey).)" in str(raised.value)
    assert f"scalems-like login {RESOURCE}" in str(raised.value)


PROMPTING = """
import sys
from pathlib import Path
from scalems_like.remote.connection import ControlMaster
master = ControlMaster("remote-test", "root@127.0.0.1", Path(sys.argv[1]), sys.argv[2:])
try:
    master.open(timeout=20)
except Exception as error:
    print("RAISED", getattr(error, "kind", error), "END", flush=True)
"""


def on_a_terminal(argv: list[str], until: bytes, answers: dict[bytes, bytes] | None = None) -> bytes:
    """Run ``argv`` in a new session on a pseudo-terminal; what it wrote, up to ``until`` (or its end).
    ``answers``: a prompt seen → what is typed (once each)."""
    answers = dict(answers or {})
    controller, terminal = os.openpty()
    # opening the terminal makes it the new session's controlling terminal: /dev/tty, where ssh prompts
    acquire = "import os, sys; os.open(os.ttyname(0), os.O_RDWR); os.execvp(sys.argv[1], sys.argv[1:])"
    process = subprocess.Popen([sys.executable, "-c", acquire, *argv], stdin=terminal, stdout=terminal,
                               stderr=terminal, start_new_session=True)
    os.close(terminal)
    seen = b""
    deadline = time.monotonic() + 30
    while until not in seen and time.monotonic() < deadline:
        try:
            chunk = os.read(controller, 4096)  # blocks until output, EOF (EIO) when every writer is gone
        except OSError:
            break
        seen += chunk
        for prompt in [prompt for prompt in answers if prompt in seen]:
            os.write(controller, answers.pop(prompt))
    process.kill()
    process.wait()
    os.close(controller)
    return seen


def locked_key(directory: Path) -> Path:
    """The sshd's own client key, locked with the passphrase "secret"."""
    locked = directory / "locked"
    shutil.copyfile(BASE / "client_key", locked)
    locked.chmod(0o600)
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", "secret", "-P", "", "-f", str(locked)], check=True,
                   capture_output=True)
    return locked


def test_no_prompt_is_ever_waited_on(tmp_path: Path, known_hosts: Path) -> None:
    """A key locked with a passphrase: ssh on a terminal asks for it (shown first, with plain ssh); the master,
    on the same terminal, never does: it fails at once."""
    locked = locked_key(tmp_path)
    plain = ["ssh", *[part for option in options(known_hosts, identity=locked) for part in ("-o", option)],
             "root@127.0.0.1", "true"]
    assert b"Enter passphrase" in on_a_terminal(plain, until=b"Enter passphrase")
    started = time.monotonic()
    seen = on_a_terminal([sys.executable, "-c", PROMPTING, str(tmp_path / "ssh"),
                          *options(known_hosts, identity=locked)], until=b"END")
    assert b"RAISED authentication" in seen and b"passphrase" not in seen
    assert time.monotonic() - started < 30  # had it asked, on_a_terminal would have waited its 30 s


def test_login_on_a_terminal_asks_once_and_later_commands_go_through_it(tmp_path: Path, known_hosts: Path) -> None:
    """``scalems-like login`` is where ssh may ask (here for the key's passphrase, typed on the terminal); every
    later command goes through the connection it opened, without asking (its key is still locked)."""
    directory = paths.user_config_dir() / "resources"
    directory.mkdir(parents=True)
    listed = "".join(f"\n  - {option}" for option in options(known_hosts, identity=locked_key(tmp_path)))
    (directory / f"{RESOURCE}.yaml").write_text(f"login: root@127.0.0.1\nssh_options:{listed}\n")
    login = login_master(load_resource(RESOURCE))
    try:
        seen = on_a_terminal([sys.executable, "-m", "scalems_like", "login", RESOURCE], until=b"until",
                             answers={b"Enter passphrase": b"secret\n"})
        assert b"Enter passphrase" in seen and b" open; sessions and commands use it" in seen
        assert login.check()
        assert login.run(["echo", "through it"]).stdout == b"through it\n"
        assert session_master(load_resource(RESOURCE), tmp_path / "session")[1] is False
    finally:
        login.close()


def test_a_missing_remote_python_is_named(master: ControlMaster) -> None:
    with pytest.raises(SshError) as raised:
        master.require_python("python3.missing")
    assert raised.value.kind == "no-python"
    assert "python3.missing: command not found" in str(raised.value)


def test_a_cluster_without_python3_on_its_path_is_named_in_one_line(tmp_path: Path, known_hosts: Path) -> None:
    """Sessions on the sshd's no-python port have a PATH without any python (every other tool is there)."""
    master = ControlMaster(RESOURCE, "root@127.0.0.1", tmp_path / "ssh", options(known_hosts, port=NO_PYTHON_PORT))
    master.open()
    try:
        assert master.run(["sh", "-c", "command -v sh rsync"]).exit_code == 0
        with pytest.raises(SshError) as raised:
            master.require_python()
        message = str(raised.value)
        assert raised.value.kind == "no-python" and "\n" not in message
        assert message.startswith(f"resource '{RESOURCE}' (root@127.0.0.1): no usable Python on the remote host "
                                  "(ssh: ")
        assert "python3: command not found" in message  # the remote shell's own words
        assert "`module load python`" in message and master.check()  # what to do; the connection stays
    finally:
        master.close()


def test_login_opens_the_connection_later_sessions_use(resource: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    config = load_resource(resource)
    assert main(["login", resource, "--check"]) == 1
    assert main(["login", resource]) == 0
    login = login_master(config)
    try:
        assert "connection to root@127.0.0.1 open" in capsys.readouterr().out
        assert login.directory == paths.user_data_dir() / "ssh" / resource and login.check()
        used, owned = session_master(config, tmp_path / "session")
        assert (used.socket, owned) == (login.socket, False)
        assert used.run(["test", "-d", str(SCRATCH)]).exit_code == 0  # the cluster's scratch, seen over ssh
        assert not SCRATCH.exists() or not any(SCRATCH.iterdir())  # ... and not from here
        assert main(["login", resource, "--check"]) == 0
        assert main(["login", resource, "--close"]) == 0
        assert not login.check()
    finally:  # (a failed assertion must not leave the master running after the test)
        login.close()
    own, owned = session_master(config, tmp_path / "session")
    assert owned and own.directory == tmp_path / "session" / "ssh"


def test_login_with_an_unknown_resource_or_none_remote_says_so(resource: str,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["login", "no-such-resource"]) == 1
    assert "unknown resource 'no-such-resource'" in capsys.readouterr().err
    assert main(["login", "local"]) == 1
    assert "resource config 'local': login is not set" in capsys.readouterr().err


def test_the_bare_port_has_no_rsync(tmp_path: Path, known_hosts: Path) -> None:
    """The premise of the sftp fallback tests."""
    master = ControlMaster(RESOURCE, "root@127.0.0.1", tmp_path / "ssh", options(known_hosts, port=BARE_PORT))
    master.open()
    try:
        assert master.run(["sh", "-c", "command -v rsync"]).exit_code != 0
    finally:
        master.close()


def test_the_users_own_host_key_policy_is_kept(tmp_path: Path, sshd: int) -> None:
    """ssh's default (ask) becomes yes; a StrictHostKeyChecking the user chose (here accept-new) is theirs."""
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    default = ControlMaster(RESOURCE, "root@127.0.0.1", tmp_path / "a", options(empty))
    assert "StrictHostKeyChecking=yes" in default.master_command(interactive=False)
    chosen = ControlMaster(RESOURCE, "root@127.0.0.1", tmp_path / "b", [*options(empty),
                                                                         "StrictHostKeyChecking=accept-new"])
    assert "StrictHostKeyChecking=yes" not in chosen.master_command(interactive=False)
    try:
        assert chosen.open() and " ssh-ed25519 " in empty.read_text()  # added by ssh, as the user asked
    finally:
        chosen.close()


def test_a_command_that_does_not_end_in_time_is_a_timeout(master: ControlMaster) -> None:
    started = time.monotonic()
    with pytest.raises(SshError) as raised:
        master.run(["sleep", "30"], timeout=0.5)
    assert raised.value.kind == "timeout" and "no answer while running 'sleep 30' (no end in 0.5 s)" in str(
        raised.value)
    assert time.monotonic() - started < 10 and master.check()  # the connection stays
