"""The store: the only code that speaks SQL. SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from jobfleet.store.admin import AdminOps, Principal
from jobfleet.store.control import ControlOps
from jobfleet.store.fleet_views import FleetViewOps
from jobfleet.store.intake import IntakeOps
from jobfleet.store.queries import EventFilter, JobFilter, QueryOps
from jobfleet.store.scheduling import SchedulingOps
from jobfleet.store.workers import WorkerOps


class Store(FleetViewOps, IntakeOps, QueryOps, ControlOps, SchedulingOps, WorkerOps, AdminOps):
    """All store operations over one database. Thread-safe; share one per process."""


__all__ = ["EventFilter", "JobFilter", "Principal", "Store"]
