"""What every worker (the local one of `up` and `jobfleet worker`) builds from the settings
beside its link: the isolation backend found by probing this machine, its GPUs, its log limit,
and the user its jobs run as (worker/runas.py)."""

from __future__ import annotations

from typing import Any

from jobfleet.config import Settings
from jobfleet.runfiles import RunFiles
from jobfleet.worker import runas
from jobfleet.worker.isolation import Isolation, worker_dir
from jobfleet.worker.isolation.gpus import GpuPool, gpu_devices


def execution_parts(settings: Settings, name: str, files: RunFiles) -> dict[str, Any]:
    """Keyword arguments of `Worker` for how runs execute on this machine (and as whom)."""
    w = settings.worker
    run_as = runas.resolve(w.run_as)
    if run_as is not None:
        runas.prepare_data_dir(files.data_dir, run_as)
    runas.announce(run_as, w.run_as)
    isolation = Isolation.detect(
        w.isolation,
        worker=worker_dir(name, str(files.data_dir.resolve())),
        namespaces=w.namespaces,
        sealed=settings.sealed,
        pids=w.pids_limit,
    )
    return {
        "isolation": isolation,
        "gpus": GpuPool(gpu_devices(w.gpu, w.gpu_devices)),
        "log_limit": w.log_limit,
        "grace": w.grace,
        "labels": w.labels,
        "run_as": run_as,
    }
