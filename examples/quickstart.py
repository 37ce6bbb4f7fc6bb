"""The main example: 100 executables and 1 000 Python functions on a 2-core pilot on this machine.

Run it with:  python examples/quickstart.py
"""

import sys

import scalems_like as sl


def square(x: int) -> int:
    return x * x


def main() -> int:
    with sl.Session() as session:  # resource "local" is the default
        pilot = session.submit_pilot(sl.PilotDescription(resource="local", cores=2, runtime=600))
        tasks = session.submit_tasks(
            [sl.TaskDescription(executable="/bin/echo", arguments=["hello", str(i)]) for i in range(100)]
            + [sl.TaskDescription(function=square, args=(i,)) for i in range(1000)])
        session.wait_tasks(tasks)
        print(tasks[0].state, tasks[0].exit_code, repr(tasks[0].stdout))  # DONE 0 'hello 0\n'
        print(tasks[100].return_value)  # 0
        print(sum(task.return_value for task in tasks[100:]))  # 332833500
        failed = [task for task in tasks if task.state is not sl.TaskState.DONE]
        print(f"{len(tasks) - len(failed)} of {len(tasks)} tasks DONE on {pilot.uid} ({pilot.sandbox})")
    print(f"pilot {pilot.uid} ended {pilot.state}")
    return 1 if failed else 0  # (a non-zero exit code: CI runs this command too)


if __name__ == "__main__":
    sys.exit(main())
