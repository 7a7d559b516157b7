"""jobfleet: a distributed batch-job orchestrator. The SDK: `from jobfleet import Client`."""

from __future__ import annotations

__version__ = "0.1.0"

from jobfleet.client import Client
from jobfleet.errors import JobfleetError

__all__ = ["Client", "JobfleetError", "__version__"]
