"""``scalems-like init NAME``: a template project that runs as it is with ``scalems-like run`` and ``submit``.

    NAME/workflow.py            an ensemble and a reduction written with apps; reads parameters.yaml
    NAME/parameters.yaml        the workflow's default parameters (sl.load_parameters)
    NAME/sweep.yaml             three parameter sets: scalems-like submit --params sweep.yaml workflow.py
    NAME/.scalemsignore         what submit leaves out of the project bundle
    NAME/resources/cluster.yaml a resource config to adapt for a cluster (copy it to the user's resource configs)
    NAME/README.md              how to run it
"""

from __future__ import annotations

import argparse
from pathlib import Path

from scalems_like import paths
from scalems_like.errors import ConfigError, UsageError

WORKFLOW = '''"""{name}: an ensemble of simulations and their reduction.

    scalems-like run --cores 2 --runtime 600 workflow.py
    scalems-like submit --resource local --runtime 600 workflow.py    # the whole session as a batch job
    scalems-like submit --params sweep.yaml workflow.py               # one session per parameter set
"""

from pathlib import Path

import yaml

import scalems_like as sl

# parameters.yaml holds the defaults; --params FILE / --param KEY=VALUE (run, submit) override them
parameters = sl.load_parameters(yaml.safe_load((Path(__file__).parent / "parameters.yaml").read_text()))


@sl.executable_app(outputs=["result.txt"])
def simulate(seed: int, steps: int) -> list[str]:
    return ["/bin/sh", "-c", f"echo $(( ({{seed}} * 7919 + {{steps}}) % 1000 )) > result.txt"]


@sl.function_app
def read_result(path: str) -> int:
    with open(path) as handle:
        return int(handle.read())


@sl.function_app
def summarize(*values: int) -> dict[str, float]:
    return {{"members": len(values), "mean": sum(values) / len(values), "best": min(values)}}


members = [simulate(seed, parameters["steps"]) for seed in range(parameters["members"])]
summary = summarize(*[read_result(member.outputs["result.txt"]) for member in members]).result()
print(f"{name}: {{summary}}")
'''

PARAMETERS = """# Parameters of workflow.py: its defaults (--params FILE / --param KEY=VALUE override them)
members: 10     # how many simulations
steps: 1000     # passed to each simulation
"""

SWEEP = """# A parameter sweep: `scalems-like submit --params sweep.yaml workflow.py` submits one session per set
- {members: 4, steps: 100}
- {members: 4, steps: 200}
- {members: 8, steps: 100}
"""

RESOURCE = """# A resource config for a SLURM cluster. Adapt it, then copy it to your own resource configs:
#   cp resources/cluster.yaml {config_dir}/resources/
# and run with:  scalems-like run --resource cluster --nodes 2 --runtime 3600 workflow.py
# `scalems-like resources` checks it (an unknown key or a bad value is named with its file).
description: My cluster (adapt the queue, account and sandbox)
scheduler: slurm
launch_method: srun
mpi_launcher: srun
queue: debug                    # your partition
# account: my-allocation        # your project/account, if the site needs one
sandbox: "{{data_dir}}/sandbox"   # a file system shared by login and compute nodes, e.g. $SCRATCH/scalems_like
# results_in_sandbox_above: 1048576   # bytes: larger function return values stay as files in the task sandbox
python: client
client_address: hostname
agent_address: hostname
status_polling_interval: 10
"""

IGNORE = """# left out of the bundle that `scalems-like submit` stages (one pattern per line, as .gitignore)
.scalems-like-cache/
session.*.tar.gz
"""

README = """# {name}

A scalems_like workflow project.

```sh
scalems-like run --cores 2 --runtime 600 workflow.py        # on this machine
scalems-like run --resource cluster --nodes 2 --runtime 3600 workflow.py   # see resources/cluster.yaml
scalems-like submit --resource local --runtime 600 workflow.py  # the whole session as one batch job
scalems-like submit --resource cluster --nodes 2 --params sweep.yaml workflow.py   # a sweep: a session per set
scalems-like ls; scalems-like logs SESSION -f; scalems-like get SESSION
```

- `workflow.py` — an ensemble of `members` simulations (an executable app writing `result.txt`) and a reduction
  (function apps reading those files). Results are cached in `.scalems-like-cache/`: a second run re-runs nothing
  (`--no-cache` to force, `scalems-like cache clear` to forget).
- `parameters.yaml` — the workflow's default parameters (`sl.load_parameters`); `sweep.yaml` — three sets.
- `.scalemsignore` — what `submit` leaves out of the bundle (the cache, archives of earlier sessions).
- `resources/cluster.yaml` — a resource config to adapt and copy into your resource configs.
"""


def run(arguments: argparse.Namespace) -> int:
    if not arguments.name.strip():
        raise UsageError(f"init {arguments.name!r}: expected the new project's directory name")
    target = Path(arguments.name)
    if target.exists() and any(target.iterdir()):
        raise ConfigError(f"init {arguments.name!r}: {target} exists and is not empty; choose another name")
    (target / "resources").mkdir(parents=True, exist_ok=True)
    name = target.name
    (target / "workflow.py").write_text(WORKFLOW.format(name=name))
    (target / "parameters.yaml").write_text(PARAMETERS)
    (target / "sweep.yaml").write_text(SWEEP)
    (target / ".scalemsignore").write_text(IGNORE)
    (target / "resources" / "cluster.yaml").write_text(RESOURCE.format(config_dir=paths.user_config_dir()))
    (target / "README.md").write_text(README.format(name=name))
    print(f"created {target}/: workflow.py, parameters.yaml, sweep.yaml, resources/cluster.yaml, README.md\n"
          f"run it:  cd {target} && scalems-like run --cores 2 --runtime 600 workflow.py\n"
          f"or as a batch job:  cd {target} && scalems-like submit --resource local --runtime 600 workflow.py")
    return 0
