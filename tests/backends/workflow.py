"""The workflow that tests/backends/test_radical.py runs on both backends (apps, futures, an output file read by
a function, a bulk map, an executable consumer of an output file); what it prints must be the same on both."""

import scalems_like as sl


@sl.executable_app(outputs=["count.txt"])
def count(n: int) -> list[str]:
    return ["/bin/sh", "-c", f"seq {n} | wc -l > count.txt"]


@sl.executable_app(outputs=["doubled.txt"])
def double(name: str) -> list[str]:
    return ["/bin/sh", "-c", f"echo $(( $(cat {name}) * 2 )) > doubled.txt"]


@sl.function_app
def read_number(path: str) -> int:
    with open(path) as handle:
        return int(handle.read())


@sl.function_app
def square(x: int) -> int:
    return x * x


@sl.function_app
def total(*values: int) -> int:
    return sum(values)


squares = square.map(range(6))
counted = count(7)
doubled = read_number(double(counted.outputs["count.txt"]).outputs["doubled.txt"])
print("squares", [future.result() for future in squares])
print("total", total(*squares, read_number(counted.outputs["count.txt"]), doubled).result())
