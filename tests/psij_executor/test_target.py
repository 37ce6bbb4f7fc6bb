"""The executor's URL forms and config, and psij finding the executor."""

import re

import psij
import pytest

import scalems_like as sl
from scalems_like.psij_executor.target import ScalemsLikeExecutorConfig, Target, parse_url, target_of


def test_psij_finds_the_executor_through_its_descriptor() -> None:
    executor = psij.JobExecutor.get_instance("scalems-like", url="scalems-like://local?cores=2")
    assert type(executor).__name__ == "ScalemsLikeJobExecutor"
    assert executor.name == "scalems-like"
    assert executor.target.pilot == sl.PilotDescription(resource="local", cores=2)


def test_a_resource_url_describes_the_pilot_to_start() -> None:
    target = parse_url("scalems-like://slurm?nodes=2&runtime=90.5&queue=debug&account=m1&gpus=1")
    assert target == Target(pilot=sl.PilotDescription(resource="slurm", nodes=2, runtime=90.5, queue="debug",
                                                      account="m1", gpus=1))
    assert parse_url("local?cores=3") == Target(pilot=sl.PilotDescription(resource="local", cores=3))
    assert parse_url(None) == Target(pilot=sl.PilotDescription(resource="local"))


def test_a_session_url_names_a_live_session() -> None:
    assert parse_url("scalems-like://session/session.20261123.1.2.ab") == Target(session_uid="session.20261123.1.2.ab")


@pytest.mark.parametrize(("url", "says"), [
    ("http://local", "expected the scheme scalems-like://"),
    ("scalems-like://local?cores=two", "cores='two' is not a number"),
    ("scalems-like://local?walltime=5", "unknown key 'walltime'"),
    ("scalems-like://local?cores", "is not KEY=VALUE"),
    ("scalems-like://session/", "expected scalems-like://session/SESSION_UID"),
    ("scalems-like://local/x", "a resource URL has no path"),
    ("scalems-like://local?cores=0", "PilotDescription.cores = 0"),
])
def test_a_bad_url_is_refused_naming_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        psij.JobExecutor.get_instance("scalems-like", url=url)


def test_the_config_takes_precedence_over_the_url() -> None:
    pilot = sl.PilotDescription(resource="local", cores=1)
    assert target_of("local?cores=4", ScalemsLikeExecutorConfig(pilot=pilot)) == Target(pilot=pilot)
    assert target_of("local", ScalemsLikeExecutorConfig(session="session.x")) == Target(session_uid="session.x")
    assert target_of("local?cores=4", psij.JobExecutorConfig()).pilot == sl.PilotDescription(cores=4)
    with pytest.raises(sl.ConfigError, match="not both"):
        ScalemsLikeExecutorConfig(pilot=pilot, session="session.x")
