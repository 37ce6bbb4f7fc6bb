"""psij's job model onto tasks, and task states back onto psij's (pure functions, no pilot)."""

from datetime import timedelta
from types import SimpleNamespace

import pytest
from psij import InvalidJobException, JobAttributes, JobSpec, JobState, ResourceSpecV1

from scalems_like.psij_executor import mapping, states
from scalems_like.states import TaskState

SCRIPT = "/sandbox/psij-launch.sh"


def describe(**spec: object):  # type: ignore[no-untyped-def]
    return mapping.task_description(JobSpec(**spec), SCRIPT, "/client/cwd")  # type: ignore[arg-type]


def test_the_launch_script_gets_what_psijs_launchers_get() -> None:
    task = describe(executable="/bin/cat", arguments=["-n", 3], stdin_path="in.txt", stdout_path="/abs/out",
                    pre_launch="pre.sh")
    assert task.executable == "/bin/cat" and task.arguments == ("-n", "3")
    assert task.wrapper == ("/bin/bash", SCRIPT, "single", "1", "pre.sh", "/dev/null", "in.txt", "/abs/out",
                            "/dev/null", "/bin/cat")
    assert task.working_directory == "/client/cwd"  # psij local: the client's cwd when no directory is given
    assert (task.ranks, task.cores, task.gpus) == (1, 1, 0)
    assert task.timeout == 600  # psij's default duration: 10 minutes


def test_directory_environment_and_duration() -> None:
    task = describe(executable="x", directory="run", environment={"A": 1}, inherit_environment=False,
                    attributes=JobAttributes(duration=timedelta(seconds=5)))
    assert task.working_directory == "/client/cwd/run"
    assert describe(executable="x", directory="/abs/dir").working_directory == "/abs/dir"
    assert dict(task.environment) == {"A": "1"} and task.inherit_environment is False
    assert task.timeout == 5


@pytest.mark.parametrize(("launcher", "ranks", "cores", "gpus", "mode"), [
    (None, 1, 2, 1, "single"), ("single", 1, 2, 1, "single"), ("multiple", 1, 8, 4, "multiple"),
    ("mpirun", 4, 2, 1, "mpi"), ("srun", 4, 2, 1, "mpi"),
])
def test_launchers_choose_ranks_or_copies(launcher: str | None, ranks: int, cores: int, gpus: int, mode: str) -> None:
    task = describe(executable="x", launcher=launcher,
                    resources=ResourceSpecV1(process_count=4, cpu_cores_per_process=2, gpu_cores_per_process=1))
    assert (task.ranks, task.cores, task.gpus, task.wrapper[2], task.wrapper[3]) == (ranks, cores, gpus, mode, "4")


def test_custom_attributes_of_ours_set_task_fields_and_others_are_ignored() -> None:
    attributes = JobAttributes(custom_attributes={"scalems_like.retries": 2, "scalems_like.tags": {"k": "v"},
                                                  "slurm.constraint": "cpu"})
    task = describe(executable="x", attributes=attributes)
    assert task.retries == 2 and dict(task.tags) == {"k": "v"}


@pytest.mark.parametrize(("spec", "says"), [
    ({}, "no executable"),
    ({"executable": "x", "launcher": "ibrun"}, "launcher 'ibrun' is not supported"),
    ({"executable": "x", "attributes": JobAttributes(custom_attributes={"scalems_like.cores": 2})},
     "custom attribute 'scalems_like.cores': unknown"),
    ({"executable": "x", "attributes": JobAttributes(custom_attributes={"scalems_like.retries": -1})},
     "TaskDescription.retries = -1"),
])
def test_a_job_that_cannot_map_is_invalid(spec: dict[str, object], says: str) -> None:
    with pytest.raises(InvalidJobException, match=says):
        describe(**spec)


def test_native_ids_carry_the_session() -> None:
    assert mapping.native_id("session.1", "task.000003") == "session.1/task.000003"
    assert mapping.parse_native_id("session.1/task.000003") == ("session.1", "task.000003")
    for bad in ("task.000003", "a/b/c", "/task.1", "s/"):
        with pytest.raises(InvalidJobException, match="expected SESSION_UID/TASK_UID"):
            mapping.parse_native_id(bad)


def task(state: TaskState, **fields: object) -> SimpleNamespace:
    defaults = {"uid": "task.000001", "reason": None, "exit_code": None, "stdout": None, "stderr": None}
    return SimpleNamespace(state=state, history=[(state, 12.5, "node")], **{**defaults, **fields})


def test_task_states_map_onto_psij_states() -> None:
    for state, expected in [(TaskState.NEW, JobState.QUEUED), (TaskState.SUBMITTED, JobState.QUEUED),
                            (TaskState.QUEUED, JobState.QUEUED), (TaskState.RUNNING, JobState.ACTIVE),
                            (TaskState.DONE, JobState.COMPLETED), (TaskState.FAILED, JobState.FAILED),
                            (TaskState.CANCELED, JobState.CANCELED)]:
        status = states.job_status(task(state), "s/task.000001")  # type: ignore[arg-type]
        assert status.state == expected and status.time == 12.5
    queued = states.job_status(task(TaskState.QUEUED), "s/task.000001")  # type: ignore[arg-type]
    assert queued.metadata == {"nativeId": "s/task.000001"}
    done = states.job_status(task(TaskState.DONE, exit_code=0), "s/t")  # type: ignore[arg-type]
    assert (done.exit_code, done.message) == (0, None)


def test_the_message_of_a_failed_job() -> None:
    done = states.LAUNCHER_DONE + "\n"
    # the launch itself failed (a pre-launch script): its output, as psij's launchers report it
    assert states.failure_message("exited with code 5", "bad-pre\n", "") == "bad-pre\n"
    # the executable could not start
    assert states.failure_message("exited with code 127", done,
                                  "cannot start '/no/such': No such file or directory\n") \
        == "cannot start '/no/such': No such file or directory"
    # otherwise the task's reason
    assert states.failure_message("exited with code 3", done, "") == "exited with code 3"
    assert states.failure_message("timed out after 5 s (process group killed)", "", "") \
        == "timed out after 5 s (process group killed)"
