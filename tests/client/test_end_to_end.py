"""End to end on the local resource: a real psij local job, a real agent, real workers, real sockets."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

import scalems_like as sl
from scalems_like import PilotState, TaskState
from tests.processes import alive, processes, wait_until


def square(x: int) -> int:
    return x * x


def shout(text: str) -> str:
    print(f"printing {text}")
    return text.upper()


def explode(message: str) -> None:
    raise ValueError(message)


def sleep_forever() -> None:
    time.sleep(3600)


def stubborn() -> None:
    """Swallows every Exception, as careless user code does."""
    while True:
        try:
            time.sleep(3600)
        except Exception:  # written the way careless code is
            continue


def test_readme_example(session: sl.Session) -> None:
    pilot = session.submit_pilot(sl.PilotDescription(resource="local", cores=2, runtime=600))
    tasks = session.submit_tasks(
        [sl.TaskDescription(executable="/bin/echo", arguments=["hello", str(i)]) for i in range(100)]
        + [sl.TaskDescription(function=square, args=(i,)) for i in range(1000)])
    session.wait_tasks(tasks, timeout=120)
    assert (tasks[0].state, tasks[0].exit_code, tasks[0].stdout) == (TaskState.DONE, 0, "hello 0\n")
    assert [t.return_value for t in tasks[100:]] == [i * i for i in range(1000)]
    assert all(t.state is TaskState.DONE for t in tasks)
    assert pilot.state is PilotState.ACTIVE and pilot.nodes[0][1] == 2
    assert tasks[5].sandbox == pilot.sandbox / "tasks" / tasks[5].uid
    assert (tasks[5].sandbox / "stdout").read_text() == "hello 5\n"
    for private in (tasks[5].sandbox, pilot.sandbox, pilot.sandbox.parent):  # task, pilot and session sandboxes
        assert private.stat().st_mode & 0o077 == 0, f"{private} is readable by others"
    states = [state for state, _, _ in tasks[0].history]
    assert states == [TaskState.NEW, TaskState.SUBMITTED, TaskState.QUEUED, TaskState.RUNNING, TaskState.DONE]
    times = [when for _, when, _ in tasks[0].history[1:]]
    assert times == sorted(times) and all(when > 0 for when in times)
    session.close()
    assert pilot.state is PilotState.DONE
    assert [state for state, _, _ in pilot.history] == [
        PilotState.SUBMITTED, PilotState.BOOTSTRAPPING, PilotState.ACTIVE, PilotState.DONE]


def test_failing_executable_reports_exit_code_and_stderr(session: sl.Session, local_pilot: sl.Pilot) -> None:
    (task,) = session.submit_tasks([sl.TaskDescription(
        executable="/bin/sh", arguments=["-c", "echo broken >&2; exit 3"])])
    assert task.wait(timeout=60) is TaskState.FAILED
    assert task.exit_code == 3 and task.stderr == "broken\n" and task.reason == "exited with code 3"
    with pytest.raises(sl.TaskFailed, match="exited with code 3"):
        task.result()


def test_missing_executable_fails_with_a_reason(session: sl.Session, local_pilot: sl.Pilot) -> None:
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/no/such/program")])
    assert task.wait(timeout=60) is TaskState.FAILED
    assert task.reason == "cannot start '/no/such/program': No such file or directory"
    assert task.exit_code == 127 and "No such file" in (task.stderr or "")


def test_raising_function_carries_the_remote_traceback(session: sl.Session, local_pilot: sl.Pilot) -> None:
    (task,) = session.submit_tasks([sl.TaskDescription(function=explode, args=("bad input",))])
    assert task.wait(timeout=60) is TaskState.FAILED
    assert task.reason == "raised ValueError: bad input"
    assert isinstance(task.exception(), ValueError) and str(task.exception()) == "bad input"
    line = explode.__code__.co_firstlineno + 1
    expected = f'File "{__file__}", line {line}, in explode\n    raise ValueError(message)\n'
    assert expected in task.traceback and task.exception().remote_traceback == task.traceback
    assert "execution.py" not in task.traceback  # the worker's own frames are left out
    with pytest.raises(ValueError, match="bad input"):
        task.result()


def test_function_output_and_kwargs(session: sl.Session, local_pilot: sl.Pilot) -> None:
    (task,) = session.submit_tasks([sl.TaskDescription(function=shout, kwargs={"text": "hi"})])
    assert task.result(timeout=60) == "HI" and task.stdout == "printing hi\n"


def test_executable_environment_stdin_and_working_directory(
        session: sl.Session, local_pilot: sl.Pilot, tmp_path: Path) -> None:
    (tmp_path / "input.txt").write_text("from stdin\n")
    tasks = session.submit_tasks([
        sl.TaskDescription(executable="/bin/sh", arguments=["-c", "echo $GREETING"], environment={"GREETING": "hej"}),
        sl.TaskDescription(executable="/bin/cat", stdin="input.txt", stdout="out.txt",
                           input_staging=[f"file://{tmp_path}/input.txt > input.txt"]),
        sl.TaskDescription(executable="/bin/pwd", working_directory=str(tmp_path)),
    ])
    session.wait_tasks(tasks, timeout=60)
    assert [t.stdout for t in tasks] == ["hej\n", "from stdin\n", f"{tmp_path}\n"]
    assert (tasks[1].sandbox / "out.txt").exists()
    for field, value in (("stdin", str(tmp_path / "input.txt")), ("stdout", "../out"), ("stderr", "a/../../b")):
        with pytest.raises(sl.ConfigError, match=rf"TaskDescription.{field} = '{re.escape(value)}': expected a path "
                                                 "relative to the task sandbox, inside it"):
            sl.TaskDescription(executable="/bin/true", **{field: value})


def test_task_timeout_kills_the_process_group(session: sl.Session, local_pilot: sl.Pilot, tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    executable, function = session.submit_tasks([
        sl.TaskDescription(executable="/bin/sh", arguments=["-c", f"sleep 300 & echo $! > {marker}; wait"],
                           timeout=1),
        sl.TaskDescription(function=sleep_forever, timeout=1),
    ])
    session.wait_tasks([executable, function], timeout=60)
    assert executable.state is TaskState.FAILED and executable.reason.startswith("timed out after 1 s")
    assert function.state is TaskState.FAILED and function.reason == "timed out after 1 s"
    child = int(marker.read_text())
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the task's background child survived the timeout"



def test_cancel_running_and_queued_tasks(session: sl.Session, local_pilot: sl.Pilot) -> None:
    running = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["300"]),
                                    sl.TaskDescription(function=sleep_forever)])
    queued = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["300"])])
    wait_until(lambda: all(t.state is TaskState.RUNNING for t in running))
    session.cancel_tasks([*running, *queued])
    session.wait_tasks([*running, *queued], timeout=60)
    assert [t.state for t in [*running, *queued]] == [TaskState.CANCELED] * 3
    assert queued[0].reason == "canceled before it started"
    assert TaskState.RUNNING not in [state for state, _, _ in queued[0].history]
    (after,) = session.submit_tasks([sl.TaskDescription(function=square, args=(7,))])
    assert after.result(timeout=60) == 49  # the workers are free again



def test_ten_thousand_function_tasks(session: sl.Session, local_pilot: sl.Pilot) -> None:
    tasks = session.submit_tasks([sl.TaskDescription(function=square, args=(i,)) for i in range(10_000)])
    session.wait_tasks(tasks, timeout=240)
    assert sum(t.return_value for t in tasks) == sum(i * i for i in range(10_000))
    hosts = {t.history[-1][2] for t in tasks}
    assert hosts == {local_pilot.nodes[0][0]}


def test_retries_rerun_a_failed_task(session: sl.Session, local_pilot: sl.Pilot, tmp_path: Path) -> None:
    counter = tmp_path / "attempts"
    script = f"echo x >> {counter}; test $(wc -l < {counter}) -ge 3"
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sh", arguments=["-c", script], retries=2)])
    assert task.wait(timeout=60) is TaskState.DONE
    assert counter.read_text().count("x") == 3 and task.attempt == 2
    assert [s for s, _, _ in task.history].count(TaskState.QUEUED) == 3


def test_multi_core_task_and_impossible_task(session: sl.Session, local_pilot: sl.Pilot) -> None:
    both, impossible = session.submit_tasks([
        sl.TaskDescription(executable="/bin/true", cores=2),
        sl.TaskDescription(executable="/bin/true", cores=3),
    ])
    session.wait_tasks([both, impossible], timeout=60)
    assert both.state is TaskState.DONE
    assert impossible.state is TaskState.FAILED
    assert impossible.reason == ("needs 3 cores and 0 GPUs on one node; the largest node of this pilot "
                                 "offers 2 cores and 0 GPUs")


def test_state_callbacks_see_every_change(session: sl.Session) -> None:
    """Tasks submitted before any pilot: the callback is in place before the first change (SUBMITTED)."""
    seen: list[TaskState] = []
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["0.2"])])
    task.add_callback(lambda _task, state: seen.append(state))
    session.submit_pilot(sl.PilotDescription(cores=1, runtime=300))
    task.wait(timeout=60)
    wait_until(lambda: TaskState.DONE in seen)
    assert seen[0] is TaskState.SUBMITTED and seen[-1] is TaskState.DONE and TaskState.RUNNING in seen
    assert seen == [state for state, _when, _host in task.history[1:]]


def test_tasks_submitted_before_the_pilot_wait_for_it(session: sl.Session) -> None:
    tasks = session.submit_tasks([sl.TaskDescription(function=square, args=(i,)) for i in range(10)])
    session.submit_pilot(sl.PilotDescription(cores=1, runtime=300))
    session.wait_tasks(tasks, timeout=60)
    assert [t.return_value for t in tasks] == [i * i for i in range(10)]


def test_pilot_runtime_end_fails_running_tasks(session: sl.Session) -> None:
    pilot = session.submit_pilot(sl.PilotDescription(cores=1, runtime=3))
    running, waiting = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["60"]),
                                             sl.TaskDescription(executable="/bin/sleep", arguments=["60"])])
    assert pilot.wait(timeout=60) is PilotState.DONE
    session.wait_tasks([running, waiting], timeout=30)
    assert running.state is TaskState.FAILED and running.reason == "pilot runtime of 3 s ended while the task ran"
    assert waiting.state is TaskState.FAILED
    assert waiting.reason == "pilot runtime of 3 s ended before the task started"
    (late,) = session.submit_tasks([sl.TaskDescription(executable="/bin/true")])
    assert late.wait(timeout=10) is TaskState.FAILED and late.reason.startswith("no live pilot to run it")


def test_failing_pre_bootstrap_hook_names_step_exit_code_and_output(session: sl.Session) -> None:
    started = time.monotonic()
    pilot = session.submit_pilot(sl.PilotDescription(
        cores=1, pre_bootstrap=["echo loading modules", "echo 'module: gromacs not found' >&2; false"]))
    with pytest.raises(sl.PilotFailed) as raised:
        pilot.wait("ACTIVE", timeout=60)
    assert pilot.state is PilotState.FAILED
    assert pilot.failure.startswith("bootstrap step 'hooks' failed with exit code 1; its output ends with:")
    assert "module: gromacs not found" in pilot.failure and "loading modules" in pilot.failure
    assert "pre-bootstrap line 2 failed with exit code 1" in pilot.failure
    assert "bootstrap step 'hooks'" in str(raised.value)
    assert [e.step for e in pilot.bootstrap_events] == ["sandbox", "sandbox", "hooks", "hooks"]
    assert time.monotonic() - started < 60
    exiting = session.submit_pilot(sl.PilotDescription(cores=1, pre_bootstrap=["true", "exit 7", "echo never"]))
    assert exiting.wait(timeout=60) is PilotState.FAILED
    assert exiting.failure.startswith("bootstrap step 'hooks' failed with exit code 7; its output ends with:")
    assert "pre-bootstrap line 2 ended the bootstrap with exit code 7: exit 7" in exiting.failure


def test_missing_python_fails_the_environment_step(session: sl.Session) -> None:
    pilot = session.submit_pilot(sl.PilotDescription(cores=1, environment={"python": "/no/python3.99"}))
    assert pilot.wait(timeout=60) is PilotState.FAILED
    assert pilot.failure.startswith("bootstrap step 'environment' failed with exit code 127")
    assert "interpreter /no/python3.99 not found" in pilot.failure


def test_killed_agent_fails_pilot_and_its_tasks(session: sl.Session, local_pilot: sl.Pilot) -> None:
    token = str(1000 + os.getpid() % 1000)  # a sleep no other test runs
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=[token])])
    wait_until(lambda: task.state is TaskState.RUNNING)
    assert local_pilot.agent_pid is not None
    ((task_pid, _),) = processes(f"/bin/sleep {token}")
    os.kill(local_pilot.agent_pid, signal.SIGKILL)
    assert local_pilot.wait(timeout=30) is PilotState.FAILED
    # the batch job's end says it (exit code 137); if psij's local reaper is late (its one thread reads each ended
    # job's launcher output to EOF), the missing heartbeats say it first — either way, while the agent ran
    assert ("exit code 137 while the agent ran" in local_pilot.failure
            or local_pilot.failure.startswith("agent silent for 10 s (no heartbeat)")), local_pilot.failure
    assert task.wait(timeout=10) is TaskState.FAILED
    assert task.reason.startswith(f"pilot {local_pilot.uid} ended FAILED")
    wait_until(lambda: not alive(task_pid))  # workers die with their agent, and take their tasks along



def test_cancel_pilot(session: sl.Session, local_pilot: sl.Pilot) -> None:
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["300"])])
    wait_until(lambda: task.state is TaskState.RUNNING)
    local_pilot.cancel()
    assert local_pilot.wait(timeout=30) is PilotState.CANCELED
    assert task.wait(timeout=10) is TaskState.CANCELED


def test_close_cancels_unfinished_tasks() -> None:
    with sl.Session() as session:
        pilot = session.submit_pilot(sl.PilotDescription(cores=1, runtime=300))
        tasks = session.submit_tasks([sl.TaskDescription(executable="/bin/sleep", arguments=["300"])] * 3)
        pilot.wait("ACTIVE", timeout=60)
        wait_until(lambda: tasks[0].state is TaskState.RUNNING)
    assert pilot.state is PilotState.DONE
    assert [t.state for t in tasks] == [TaskState.CANCELED] * 3
    assert tasks[0].reason == "shut down by the client: session closed while the task ran"


def test_function_that_swallows_exceptions_still_times_out(session: sl.Session, local_pilot: sl.Pilot) -> None:
    (task,) = session.submit_tasks([sl.TaskDescription(function=stubborn, timeout=1)])
    assert task.wait(timeout=60) is TaskState.FAILED and task.reason == "timed out after 1 s"
