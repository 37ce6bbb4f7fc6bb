import json
import re
from pathlib import Path
from typing import Any

import pytest

from scalems_like import paths
from scalems_like.errors import ConfigError
from scalems_like.resources import load_all, load_resource


def write_user_config(name: str, text: str) -> Path:
    directory = paths.user_config_dir() / "resources"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def test_local_is_the_zero_config_default() -> None:
    config = load_resource("local")
    assert config.scheduler == "local" and config.launch_method == "fork" and config.python == "client"


def test_user_file_overrides_shipped_keys_by_name() -> None:
    write_user_config("local", "sandbox: /tmp/elsewhere\nheartbeat_timeout: 5\n")
    config = load_resource("local")
    assert config.sandbox == "/tmp/elsewhere" and config.heartbeat_timeout == 5.0
    assert config.scheduler == "local"  # from the shipped file


def test_user_file_adds_a_resource() -> None:
    write_user_config("mine", "scheduler: slurm\nlaunch_method: srun\n.shared: &s {a: 1}\n")
    assert load_resource("mine").scheduler == "slurm"


def test_unknown_key_names_file_and_key() -> None:
    path = write_user_config("bad", "shceduler: slurm\n")
    with pytest.raises(ConfigError, match=rf"{path}: resource 'bad': unknown key 'shceduler'"):
        load_resource("bad")


def test_wrong_type_names_file_key_and_value() -> None:
    path = write_user_config("bad", "heartbeat_timeout: soon\n")
    with pytest.raises(ConfigError, match=rf"{path}: resource 'bad': key 'heartbeat_timeout' = 'soon': expected float"):
        load_resource("bad")


def test_bad_choice_names_the_allowed_values() -> None:
    write_user_config("bad", "scheduler: lsf\n")
    with pytest.raises(ConfigError, match="scheduler = 'lsf': expected one of local, slurm, pbs"):
        load_resource("bad")


def test_unknown_resource_lists_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown resource 'nope'; known resources: .*local"):
        load_resource("nope")


def test_load_all_reports_errors_without_stopping() -> None:
    write_user_config("bad", "- a list\n")
    everything = load_all()
    assert isinstance(everything["bad"], ConfigError)
    assert not isinstance(everything["local"], ConfigError)


def test_shipped_sites_load_and_share_their_anchored_settings() -> None:
    everything = load_all()
    errors = {name: value for name, value in everything.items() if isinstance(value, ConfigError)}
    assert errors == {}
    assert {"local", "slurm", "pbs", "perlmutter-cpu", "perlmutter-gpu", "anvil", "expanse", "polaris"} <= set(
        everything)
    perlmutter = load_resource("perlmutter-gpu")
    assert (perlmutter.scheduler, perlmutter.launch_method, perlmutter.gpus_per_node) == ("slurm", "srun", 4)
    assert perlmutter.status_polling_interval == 10.0  # from the shared anchor
    assert perlmutter.custom_attributes == {"slurm.constraint": "gpu", "slurm.qos": "regular"}
    assert load_resource("polaris").scheduler == "pbs"


def test_user_file_overrides_a_site_from_a_multi_resource_file() -> None:
    write_user_config("anvil", "account: abc123\n")
    anvil = load_resource("anvil")
    assert anvil.account == "abc123" and anvil.queue == "wholenode"


def test_multi_resource_file_with_other_top_level_keys_is_refused() -> None:
    path = write_user_config("mixed", "resources: {a: {scheduler: slurm}}\nqueue: x\n")
    assert isinstance(load_all()["mixed"], ConfigError)
    with pytest.raises(ConfigError, match=rf"{path}: a file with 'resources:' holds only"):
        load_resource("mixed")


def test_results_in_sandbox_above_is_a_size_or_null() -> None:
    assert load_resource("local").results_in_sandbox_above == 1024 * 1024
    write_user_config("local", "results_in_sandbox_above: null\n")
    assert load_resource("local").results_in_sandbox_above is None
    path = write_user_config("local", "results_in_sandbox_above: -1\n")
    with pytest.raises(ConfigError, match=rf"{path}: resource config 'local': results_in_sandbox_above = -1: "
                                          "expected a number of bytes >= 0"):
        load_resource("local")


def agent_json_written(local_config: str) -> dict[str, Any]:
    """The agent.json of a local pilot of a session under the user resource config ``local_config``."""
    import scalems_like as sl

    write_user_config("local", local_config)
    with sl.Session() as session:
        pilot = session.submit_pilot(sl.PilotDescription(cores=1, runtime=60))
        return dict(json.loads((pilot.sandbox / "agent.json").read_text()))


def test_worker_death_keys_are_checked_and_reach_the_agent() -> None:
    write_user_config("bad", "worker_deaths_limit: 0\n")
    with pytest.raises(ConfigError, match=r"worker_deaths_limit = 0: expected a number > 0"):
        load_resource("bad")
    written = agent_json_written("worker_deaths_limit: 2\nworker_deaths_window: 30\n")
    assert (written["worker_deaths_limit"], written["worker_deaths_window"]) == (2, 30.0)


def test_node_join_timeout_is_checked_and_reaches_the_agent() -> None:
    assert load_resource("local").node_join_timeout == 60.0
    write_user_config("bad", "node_join_timeout: 0\n")
    with pytest.raises(ConfigError, match=r"node_join_timeout = 0.0: expected a number > 0"):
        load_resource("bad")
    assert agent_json_written("node_join_timeout: 7\n")["node_join_timeout"] == 7.0


def test_remote_keys_are_checked_and_named() -> None:
    remote = load_resource("perlmutter-cpu-remote")
    assert (remote.login, remote.transfer) == ("perlmutter.nersc.gov", "rsync")
    assert remote.ssh_options == ("IdentityFile=~/.ssh/nersc", "ServerAliveInterval=30")
    assert remote.cores_per_node == 128 and remote.scheduler == "slurm"  # perlmutter-cpu's, through its anchor
    assert load_resource("local").login is None
    for text, expected in (
            ("transfer: scp\n", "transfer = 'scp': expected one of rsync, sftp"),
            ("login: -oProxyCommand=evil\n", "login = '-oProxyCommand=evil': expected an ssh destination"),
            ("login: me at host\n", "login = 'me at host': expected an ssh destination"),
            ("login: me@host\nssh_options: [-p 2222]\n", "ssh_options item '-p 2222': expected Key=Value"),
            ("login: me@host\nssh_options: [ControlPath=/tmp/x]\n", "ssh_options item 'ControlPath=/tmp/x': "
                                                                      "scalems_like sets ControlMaster"),
            ("login: me@host\nssh_options: Port=22\n", "key 'ssh_options' = 'Port=22': expected tuple")):
        path = write_user_config("bad", text)
        with pytest.raises(ConfigError, match=re.escape(f"{path}: ") + ".*" + re.escape(expected)):
            load_resource("bad")
