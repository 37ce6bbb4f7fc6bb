"""The rendered job's description of itself, as errors show it."""

from __future__ import annotations

from pathlib import Path

from scalems_like.adapters import PilotJob


def job(**fields: object) -> PilotJob:
    base: dict[str, object] = dict(name="scalems-pilot.0000", executable="/bin/sh", arguments=(), directory=Path("/"),
                                   stdout=Path("/out"), stderr=Path("/err"), environment={}, nodes=2,
                                   cores_per_node=4, gpus_per_node=0, runtime=3600.0)
    return PilotJob(**{**base, **fields})  # type: ignore[arg-type]


def test_request_names_every_field_asked_for() -> None:
    assert job().request() == "nodes=2, cores per node=4, runtime=3600 s, queue=(the default)"
    assert job(cores_per_node=None, gpus_per_node=1, runtime=90.5, queue="debug", account="chem",
               custom_attributes={"slurm.constraint": "haswell"}).request() == (
        "nodes=2, cores per node=all (whole nodes), GPUs per node=1, runtime=90.5 s, queue=debug, account=chem, "
        "slurm.constraint=haswell")
    assert job().role == "the pilot job"
