"""Build a store the way the settings configure it. Every process that applies reports, expires
leases or resolves dependencies (so classifies failures and decides retries) must use this, so
that all of them classify with the same categories and retry with the same default policy."""

from __future__ import annotations

from jobfleet.config import Settings
from jobfleet.store import Store


def store_from_settings(url: str, settings: Settings) -> Store:
    return Store(url, retry_default=settings.retry, classifier=settings.classifier())
