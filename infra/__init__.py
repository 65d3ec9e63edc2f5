"""The local stack: the template deployed into the moto emulator, handlers run in-process, operator tools.

The local twin of ``sam deploy`` / ``sam local invoke`` / ``sam local start-api`` for machines without
Docker, and (``infra.samcli``) the real SAM CLI in Docker for machines with an engine. Every name comes from
template.yaml, so the local stack cannot drift from what AWS would run.
"""


class InfraError(Exception):
    """Base of the errors the local stack raises on purpose; the CLI prints them as one line, no traceback."""
