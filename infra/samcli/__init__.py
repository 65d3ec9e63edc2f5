"""The real SAM CLI, locally: the functions ``sam build`` wrote run in Lambda-shaped containers.

The default path of this repository needs no Docker (``infra.runtime`` runs handlers in-process). This
package is the second, verified path, for machines with a Docker engine:

- ``engine``: start ``dockerd --ip-masq=false`` and drop every packet a container sends to the uplink;
- ``images``: a Lambda python3.12 base image built from Debian's packages, a local CPython 3.12 and PyPI
  (no registry needed), and the emulator's image on top of it, each cached by its inputs;
- ``emulator``: moto server as the container ``nbaml-moto`` on the network ``nbaml-local``;
- ``environment``: the ``--env-vars`` file from the deployed stack, every function pointed at the emulator
  by container name, and the template SAM runs;
- ``sam``: ``sam build``, ``sam local invoke``, ``start-lambda`` and ``start-api``, with their REPORT lines;
- ``replay``: the season replay with every function and slate through SAM's containers; ``cost``: the
  monthly AWS bill from the measured durations.

Every container, network and image this package creates is named with ``nbaml-`` (SAM names its own
function containers and images; they run on ``nbaml-local`` and are removed when SAM stops).
"""

from __future__ import annotations

from infra import InfraError
from infra.emulator import REPO_ROOT

PREFIX = "nbaml-"
NETWORK = "nbaml-local"
STATE_DIR = REPO_ROOT / ".nbaml" / "sam"


class SamError(InfraError):
    """The SAM tier cannot run here, or one of its steps failed; the message says what to do."""
