"""Limits: a task's output captured into the client is bounded; the full file stays in the sandbox."""

from __future__ import annotations

import resource

import scalems_like as sl
from scalems_like.client.task import MAX_OUTPUT_BYTES
from scalems_like.overlay.execution import MAX_CAPTURED_OUTPUT, BoundedOutput

GIB = 1024 ** 3


def test_a_1_gib_stdout_stays_in_the_sandbox_and_the_client_reads_a_bounded_part(
        session: sl.Session, local_pilot: sl.Pilot) -> None:
    (task,) = session.submit_tasks([sl.TaskDescription(executable="/bin/sh", arguments=[
        "-c", f"head -c {GIB} /dev/zero | tr '\\0' x"])])
    assert task.wait(timeout=300) is sl.TaskState.DONE, task.reason
    path = task.sandbox / "stdout"
    try:
        assert path.stat().st_size == GIB
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        text = task.stdout
        grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        assert text is not None and text.startswith("x" * 1000)
        assert text.endswith(f"\n[... {GIB - MAX_OUTPUT_BYTES} more bytes: the whole output is {path}]\n")
        assert len(text) < MAX_OUTPUT_BYTES + 200
        assert grown_kib < 64 * 1024, f"reading the output grew the client by {grown_kib} KiB"
    finally:
        path.unlink()


def test_a_function_printing_a_lot_sends_back_a_bounded_part(session: sl.Session, local_pilot: sl.Pilot) -> None:
    def chatty() -> int:
        for _ in range(64):
            print("y" * (256 * 1024))  # 16 MiB in all
        return 7

    (task,) = session.submit_tasks([sl.TaskDescription(function=chatty)])
    assert task.result(timeout=120) == 7
    assert task.stdout is not None and task.stdout.startswith("y" * 1000)
    dropped = 64 * (256 * 1024 + 1) - MAX_CAPTURED_OUTPUT
    assert task.stdout.endswith(f"\n[... {dropped} more characters printed, not kept]\n")


def test_bounded_output_keeps_the_head_and_counts_the_rest() -> None:
    output = BoundedOutput(limit=5)
    for piece in ("abc", "defg", "", "hij"):
        assert output.write(piece) == len(piece)
    assert output.getvalue() == "abcde\n[... 5 more characters printed, not kept]\n"
    assert BoundedOutput(limit=5).getvalue() == ""
