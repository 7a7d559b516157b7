"""What routes get from the app: the store, settings, run files, the broadcaster."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request

from jobfleet.config import Settings
from jobfleet.runfiles import RunFiles
from jobfleet.server.notify import Broadcaster
from jobfleet.store import Store


@dataclass
class Services:
    store: Store
    settings: Settings
    files: RunFiles
    broadcaster: Broadcaster
    # Wakes workers' long polls (POST /v1/workers/{name}/wait): a lease or kill order was written.
    leases: Broadcaster = field(default_factory=Broadcaster)


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


Svc = Annotated[Services, Depends(services)]
