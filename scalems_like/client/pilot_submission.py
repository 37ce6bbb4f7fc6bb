"""How ``Session.submit_pilot`` submits a pilot whose description it checked: the pilot job rendered into its
sandbox, its input staging run, the pilot handed to the session's engine (which follows it from then on), the
batch job submitted and its id handed to the engine too."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from scalems_like import paths
from scalems_like.adapters import PilotJob
from scalems_like.client.pilot import Pilot
from scalems_like.client.pilot_job import render_pilot
from scalems_like.client.pilot_lifecycle import PilotRecord
from scalems_like.descriptions import PilotDescription
from scalems_like.errors import ScalemsError, StagingError, SubmitError
from scalems_like.resources import ResourceConfig
from scalems_like.staging.runner import run_directives, sandbox_roots

if TYPE_CHECKING:
    from scalems_like.client.engine import Engine
    from scalems_like.client.session import Session

log = logging.getLogger("scalems_like.client")


def submit_pilot(session: Session, engine: Engine, description: PilotDescription, resource: ResourceConfig,
                 number: Callable[[], str]) -> Pilot:
    """Submit a pilot of ``description`` on ``resource`` (the session open); ``number()`` gives its uid. Raises
    StagingError if its input staging fails (nothing submitted), SubmitError if the batch system refuses it (the
    pilot then ends FAILED with the batch system's message)."""
    if resource.login:
        uid, job, sandbox = render_remote(session, engine, description, resource, number)
    else:
        address = engine.endpoint_for(resource.client_address)
        uid = number()
        session_sandbox = paths.make_private_directory(paths.expand(resource.sandbox) / session.uid)
        job, sandbox = render_pilot(session_uid=session.uid, pilot_uid=uid, description=description,
                                    resource=resource, client_address=address, session_sandbox=session_sandbox,
                                    keys=engine.agent_keys())
        staged = run_directives(description.input_staging, {**sandbox_roots(sandbox), "client": Path.cwd()},
                                "input")
        if staged is not None:
            raise StagingError(f"pilot {uid} was not submitted: {staged}")
    pilot = Pilot(uid, description, resource, sandbox, session)
    record = PilotRecord(pilot, engine.adapter(resource, sandbox.parent))
    engine.register_pilot(record)
    try:
        native_id = record.adapter.submit(job, engine.job_events(record))
    except SubmitError as error:
        engine.pilot_refused(record, str(error))
        raise
    engine.pilot_submitted(record, native_id)
    log.info("pilot %s submitted to %s as job %s", uid, resource.name, native_id)
    return pilot


def render_remote(session: Session, engine: Engine, description: PilotDescription, resource: ResourceConfig,
                  number: Callable[[], str]) -> tuple[str, PilotJob, Path]:
    """A pilot on a remote resource: rendered into a local staging copy with the cluster's paths, sent there in
    one transfer with the client's wheel, its input staging from client:// carried out over the same connection.
    Returns its uid, its job and its sandbox's local mirror (see :mod:`scalems_like.client.gateway_link`)."""
    try:
        link = engine.gateway(resource)
    except ScalemsError as error:  # (SshError, a gateway that did not start: nothing was submitted)
        raise SubmitError(str(error)) from None
    uid = number()
    staging = paths.make_private_directory(link.staging / session.uid)
    job, _ = render_pilot(session_uid=session.uid, pilot_uid=uid, description=description, resource=resource,
                          client_address=link.agent_address, session_sandbox=staging, keys=engine.agent_keys(),
                          remote_session_sandbox=Path(link.remote_session))
    link.send_pilot(uid)
    if description.input_staging:
        try:
            link.stage(description.input_staging, Path.cwd(), uid)
        except ScalemsError as error:
            raise StagingError(f"pilot {uid} was not submitted: input staging: {error}") from None
    return uid, job, paths.make_private_directory(link.mirror(uid))
