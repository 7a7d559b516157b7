"""A worker index for best-fit placement without scanning every worker for every job.

Workers are kept in buckets by free GPUs; each bucket is a list sorted by (free CPU, free
memory, name). A job takes the worker with the fewest free GPUs that fit, then the least free
CPU that fits, then memory: CPU-only jobs fill machines without GPUs first, and a large worker
stays whole for a large job (best fit). Finding a worker is a bisection plus a short scan, so a
cycle costs about O(placements * log workers) instead of O(jobs * workers).

A request that fitted nowhere is remembered: a later request at least as large in every
resource fails at once, until capacity is given back.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Iterable, Mapping, Sequence

from jobfleet.scheduling.placement import Demand, Room

Entry = tuple[int, int, str]  # (free cpu_milli, free memory, worker)
MAX_FAILED = 32


class Fitter:
    def __init__(
        self,
        rooms: Iterable[Room],
        *,
        closed: Iterable[str] = (),
        totals: Sequence[Room] = (),
        reserved: Mapping[str, int] | None = None,
    ) -> None:
        shut = set(closed)
        self.reserved = dict(reserved or {})  # worker -> class priority its room is kept for
        self.totals = totals  # whole capacities: may an avoided worker be skipped?
        self.labels: dict[str, dict[str, str]] = {}
        self.free: dict[str, list[int]] = {}
        self._buckets: dict[int, list[Entry]] = {}
        self._failed: list[tuple[int, int, int]] = []
        for r in rooms:
            if r.worker in shut:
                continue
            self.free[r.worker] = [r.cpu_milli, r.memory, r.gpu]
            self.labels[r.worker] = r.labels
            self._add(r.worker)
        self._keys = sorted(self._buckets)

    def _add(self, worker: str) -> None:
        cpu, mem, gpu = self.free[worker]
        if cpu <= 0 or mem <= 0:
            return  # full: nothing can go there
        if gpu not in self._buckets:
            self._buckets[gpu] = []
            self._keys = sorted(self._buckets)
        insort(self._buckets[gpu], (cpu, mem, worker))

    def _remove(self, worker: str) -> None:
        cpu, mem, gpu = self.free[worker]
        bucket = self._buckets.get(gpu)
        if bucket is None:
            return
        i = bisect_left(bucket, (cpu, mem, worker))
        if i < len(bucket) and bucket[i][2] == worker:
            bucket.pop(i)

    @property
    def empty(self) -> bool:
        return not any(self._buckets.values())

    def take(self, d: Demand) -> str | None:
        """Reserve room for `d` on the best-fitting worker; its name, or None."""
        if d.selector or d.avoid or self._held_from(d):  # rare: a scan of every worker
            worker = self._find_particular(d)
            if worker is not None:
                self._reserve(worker, d)
            return worker
        shape = (d.cpu_milli, d.memory, d.gpu)
        for f in self._failed:
            if shape[0] >= f[0] and shape[1] >= f[1] and shape[2] >= f[2]:
                return None
        worker = self._find(d)
        if worker is None:
            if len(self._failed) < MAX_FAILED:
                self._failed.append(shape)
            return None
        self._reserve(worker, d)
        return worker

    def _reserve(self, worker: str, d: Demand) -> None:
        self._remove(worker)
        free = self.free[worker]
        free[0] -= d.cpu_milli
        free[1] -= d.memory
        free[2] -= d.gpu
        self._add(worker)

    def _held_from(self, d: Demand) -> frozenset[str]:
        """Workers whose room is kept for a preemptor of a higher class than `d`'s."""
        return frozenset(w for w, p in self.reserved.items() if p > d.class_priority)

    def _find_particular(self, d: Demand) -> str | None:
        """Best fit among the workers with the `selector` labels, leaving out the ones the job
        avoids when another worker could ever hold it (`scheduling/avoid.py`) and the ones
        whose room is kept for a higher-class preemptor."""
        avoid = d.avoid
        if avoid and not any(t.worker not in avoid and t.fits(d) for t in self.totals):
            avoid = frozenset()  # only avoided workers could ever hold it: use them
        avoid = avoid | self._held_from(d)
        best: tuple[int, int, int, str] | None = None
        for worker, (cpu, mem, gpu) in self.free.items():
            if worker in avoid or cpu < d.cpu_milli or mem < d.memory or gpu < d.gpu:
                continue
            labels = self.labels.get(worker, {})
            if any(labels.get(k) != v for k, v in d.selector.items()):
                continue
            key = (gpu, cpu, mem, worker)
            if best is None or key < best:
                best = key
        return None if best is None else best[3]

    def _find(self, d: Demand) -> str | None:
        for gpu in self._keys:
            if gpu < d.gpu:
                continue
            bucket = self._buckets[gpu]
            for i in range(bisect_left(bucket, (d.cpu_milli, 0, "")), len(bucket)):
                if bucket[i][1] >= d.memory:
                    return bucket[i][2]
        return None

    def give_back(self, worker: str, d: Demand) -> None:
        """Undo a `take` (a gang that could not be placed whole)."""
        self._remove(worker)
        free = self.free[worker]
        free[0] += d.cpu_milli
        free[1] += d.memory
        free[2] += d.gpu
        self._add(worker)
        self._failed.clear()  # there is more room than when those failed
