"""A two-stage pipeline with files passed between stages, and a map-reduce, as a workflow script.

    scalems-like run --cores 2 --runtime 300 examples/pipeline.py

Stage 1 writes a file per member; stage 2 reads it (the file is linked into stage 2's sandbox); a function
reduces the results. Each call returns at once; a call waits for the futures among its arguments.
"""

import scalems_like as sl


@sl.executable_app(outputs=["member.txt"])
def simulate(seed: int) -> list[str]:
    return ["/bin/sh", "-c", f"echo $(( {seed} * 7 % 11 )) > member.txt"]


@sl.executable_app(outputs=["energy.txt"])
def analyse(member: str) -> list[str]:
    return ["/bin/sh", "-c", f"echo $(( $(cat {member}) + 100 )) > energy.txt"]


@sl.function_app
def read_energy(path: str) -> int:
    with open(path) as handle:
        return int(handle.read())


@sl.function_app
def lowest(*energies: int) -> int:
    return min(energies)


members = simulate.map(range(1, 21))                                       # one bulk submission
energies = [read_energy(analyse(m.outputs["member.txt"]).outputs["energy.txt"]) for m in members]
print(f"lowest energy of {len(energies)} members: {lowest(*energies).result()}")
