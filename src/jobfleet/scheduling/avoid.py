"""Worker avoidance for retries (retry rule `avoid_worker: true`). Pure.

A job whose run failed on a worker may ask that its next run go elsewhere. It is a preference,
not a ban: when no other worker of the shard could ever hold the job, the avoided ones are
used rather than leaving the job unplaceable forever. When another worker could hold it but is
busy now, the job waits for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from jobfleet.scheduling.placement import Demand, Room


def usable(d: Demand, rooms: Sequence[Room], totals: Sequence[Room]) -> Sequence[Room]:
    """The rooms `d` may be placed in: all of them, less the ones it avoids if it can."""
    if not d.avoid:
        return rooms
    if not any(t.worker not in d.avoid and t.fits(d) for t in totals):
        return rooms
    return [r for r in rooms if r.worker not in d.avoid]
