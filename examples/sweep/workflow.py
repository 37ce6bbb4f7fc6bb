"""A parameter sweep submitted as batch jobs: one session per set of sweep.yaml.

    cd examples/sweep
    scalems-like submit --resource local --runtime 600 --params sweep.yaml workflow.py
    scalems-like ls --sweep SWEEP_ID          # the id submit printed
    scalems-like logs SESSION -f; scalems-like status SESSION; scalems-like get SESSION

Each session runs this script inside its own allocation; ``sl.load_parameters`` gives it its set (and the
defaults below for keys the set leaves out). The set is recorded with the session (``ls --json``, ``status``).
"""

import scalems_like as sl

parameters = sl.load_parameters({"temperature": 300, "replicas": 4})


@sl.function_app
def energy(temperature: float, replica: int) -> float:
    """A stand-in for a simulation: a deterministic "energy" of one replica."""
    return round(-1.0 * temperature / (replica + 1), 3)


replicas = range(parameters["replicas"])
energies = energy.map([parameters["temperature"]] * len(replicas), replicas)
values = [future.result() for future in energies]
print(f"T={parameters['temperature']} replicas={parameters['replicas']} mean energy={sum(values) / len(values):.3f}")
