"""A run's payload (fetched into its working dir before start) and its outputs (listed after).

`payload_uri` schemes: file:// (copied), http(s):// (httpx, streamed to disk), s3:// (boto3,
imported only when used: `pip install 'jobfleet[s3]'`). The file keeps its name in the working
dir. An archive — `.tar`, `.tar.gz`/`.tgz`, `.tar.bz2`, `.tar.xz`, `.zip` — is unpacked there
instead (members that would land outside the working dir are refused), so a job ships its code
as one tarball. Any failure is a `PayloadError`, which the executor reports as START_ERROR.

`outputs` (relative paths or globs) are looked up in the working dir after a successful run;
each file found is listed on the run with its size (the files stay where the job left them).
"""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from jobfleet.errors import JobfleetError
from jobfleet.inputs import clean

ARCHIVES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".zip")
MAX_OUTPUTS = 1000


class PayloadError(JobfleetError):
    title = "Payload fetch failed"


def fetch(
    uri: str,
    dest: Path,
    *,
    timeout: float = 60.0,
    copy_file: Callable[[str, Path, float], None] | None = None,
) -> Path:
    """Fetch `uri` into the directory `dest`; unpack it if it is an archive. `copy_file` reads
    a file:// source (worker/runas.py: with the rights of the user the job runs as)."""
    parsed = urlparse(uri)
    name = Path(unquote(parsed.path)).name or "payload"
    target = dest / name
    try:
        if parsed.scheme == "file" and copy_file is not None:
            copy_file(unquote(parsed.path), target, timeout)
        elif parsed.scheme == "file":
            shutil.copyfile(unquote(parsed.path), target)
        elif parsed.scheme in ("http", "https"):
            _http(uri, target, timeout)
        elif parsed.scheme == "s3":
            _s3(parsed.netloc, parsed.path.lstrip("/"), target)
        else:
            raise PayloadError(f"payload_uri scheme {parsed.scheme!r} is not supported")
        if name.endswith(ARCHIVES):
            _unpack(target, dest)
            target.unlink()
    except PayloadError:
        raise
    except Exception as exc:  # any I/O, HTTP or archive error is the same START_ERROR
        raise PayloadError(f"could not fetch payload {uri}: {exc}") from exc
    return dest


def _http(uri: str, target: Path, timeout: float) -> None:
    import httpx

    with httpx.stream("GET", uri, timeout=timeout, follow_redirects=True) as resp:
        if resp.status_code != 200:
            raise PayloadError(f"could not fetch payload {uri}: HTTP {resp.status_code}")
        with open(target, "wb") as f:
            for chunk in resp.iter_bytes(1 << 20):
                f.write(chunk)


def _s3(bucket: str, key: str, target: Path) -> None:
    try:
        import boto3  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise PayloadError(
            "s3:// payloads need boto3 on the worker: pip install 'jobfleet[s3]'"
        ) from exc
    boto3.client("s3").download_file(bucket, key, str(target))


def _unpack(archive: Path, dest: Path) -> None:
    root = dest.resolve()
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as z:
            for member in z.namelist():
                _inside(root, member)
            z.extractall(dest)
        return
    with tarfile.open(archive) as t:
        t.extractall(dest, filter="data")


def _inside(root: Path, member: str) -> None:
    if not (root / member).resolve().is_relative_to(root):
        raise PayloadError(f"archive member {member!r} would be written outside the working dir")


def collect_outputs(work_dir: Path, patterns: list[str]) -> list[dict[str, Any]]:
    """Files in `work_dir` matching the patterns: [{"path": relative, "size": bytes}].

    The job chose the names: one that is not UTF-8 is listed with U+FFFD in place of its bad
    bytes, and a path that cannot be resolved (a symlink loop) is left out."""
    root = work_dir.resolve()
    found: dict[str, int] = {}
    for pattern in patterns:
        for path in sorted(work_dir.glob(pattern)):
            try:
                resolved = path.resolve()
                if path.is_file() and resolved.is_relative_to(root):
                    found.setdefault(clean(str(path.relative_to(work_dir))), path.stat().st_size)
            except (OSError, RuntimeError):  # a loop of links, a file removed meanwhile
                continue
            if len(found) >= MAX_OUTPUTS:
                break
    return [{"path": p, "size": s} for p, s in found.items()]
