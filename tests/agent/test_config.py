"""The agent's configuration: the heartbeat interval between the master and its node managers by pilot size."""

from __future__ import annotations

from scalems_like.agent.config import NODE_BEATS_PER_SECOND, AgentConfig, node_heartbeat_interval


def config(**fields: float) -> AgentConfig:
    return AgentConfig(pilot_uid="pilot.0000", session_uid="session", client_address="tcp://127.0.0.1:1",
                       pilot_sandbox="/nonexistent", runtime=60.0, **fields)  # type: ignore[arg-type]


def test_node_heartbeats_slow_down_above_a_thousand_nodes_within_a_third_of_the_timeout() -> None:
    assert NODE_BEATS_PER_SECOND == 1024
    assert node_heartbeat_interval(config(), 1) == 1.0  # the configured interval
    assert node_heartbeat_interval(config(), 1024) == 1.0
    assert node_heartbeat_interval(config(), 2048) == 2.0  # 1 024 a second each way
    assert node_heartbeat_interval(config(), 4096) == 10.0 / 3  # a lost manager is still found after 10 s
    assert node_heartbeat_interval(config(), 10_000) == 10.0 / 3
    assert node_heartbeat_interval(config(heartbeat_interval=5.0), 16) == 5.0  # never below the configured
    assert node_heartbeat_interval(config(heartbeat_timeout=60.0), 10_000) == 10_000 / 1024
