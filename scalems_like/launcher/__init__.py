"""Whole sessions submitted as one batch job: the project bundle, the launch record, parameters, submission.

``scalems-like submit`` bundles the project directory into a session sandbox and submits one batch job whose
bootstrap runs ``scalems-like run`` inside the allocation, with the session's agent on the same nodes. The
client side of such a session is the launch record (``SESSION_DIR/launch.json``) beside the session journal.
"""
