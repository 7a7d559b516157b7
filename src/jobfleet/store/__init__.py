"""The store: the only code that speaks SQL. SQLite (embedded default) and PostgreSQL."""

from __future__ import annotations

from jobfleet.access import Principal
from jobfleet.store.admin import AdminOps
from jobfleet.store.arrays import ArrayOps
from jobfleet.store.charts import ChartOps
from jobfleet.store.control import ControlOps
from jobfleet.store.cordons import CordonOps
from jobfleet.store.cycle import CycleOps
from jobfleet.store.fleet import FleetOps
from jobfleet.store.fleet_views import FleetViewOps
from jobfleet.store.intake import IntakeOps
from jobfleet.store.logs import LogOps
from jobfleet.store.outbox import OutboxOps
from jobfleet.store.principals import IssuedToken, PrincipalOps
from jobfleet.store.queries import EventFilter, JobFilter, QueryOps
from jobfleet.store.queues import QueueOps
from jobfleet.store.retention import RetentionOps
from jobfleet.store.schedules import ScheduleOps
from jobfleet.store.scheduling import SchedulingOps
from jobfleet.store.stats import StatsOps
from jobfleet.store.usage import UsageOps, UsageQuery
from jobfleet.store.workers import WorkerOps


class Store(
    ArrayOps,
    CordonOps,
    UsageOps,
    ScheduleOps,
    FleetViewOps,
    IntakeOps,
    QueryOps,
    ControlOps,
    SchedulingOps,
    FleetOps,
    CycleOps,
    QueueOps,
    WorkerOps,
    AdminOps,
    OutboxOps,
    RetentionOps,
    StatsOps,
    PrincipalOps,
    LogOps,
    ChartOps,
):
    """All store operations over one database. Thread-safe; share one per process."""


__all__ = ["EventFilter", "IssuedToken", "JobFilter", "Principal", "Store", "UsageQuery"]
