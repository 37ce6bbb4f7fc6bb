"""Sandboxes and staging directives (resource, session, pilot and task scopes).

This version places sandboxes (see :mod:`scalems_like.client.pilot_job`); staging directives come with the
staging capability.
"""
