"""The CLI's default profile (server URL and token), saved by `jobfleet up` (PRODUCT.md §11).

Resolution, for each of server and token: the explicit value, else `JOBFLEET_SERVER` /
`JOBFLEET_TOKEN`, else the profile file, else (server only) http://127.0.0.1:8360.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from jobfleet.errors import ConfigError

DEFAULT_SERVER = "http://127.0.0.1:8360"
SERVER_ENV = "JOBFLEET_SERVER"
TOKEN_ENV = "JOBFLEET_TOKEN"


def profile_path() -> Path:
    """$XDG_CONFIG_HOME/jobfleet/profile.json, or ~/.config/jobfleet/profile.json."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    root = Path(base) if os.path.isabs(base) else Path.home() / ".config"
    return root / "jobfleet" / "profile.json"


def load_profile() -> dict[str, str]:
    """The saved profile's string fields ({} when there is none)."""
    path = profile_path()
    try:
        raw: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the jobfleet profile {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"the jobfleet profile {path} is not a JSON object")
    return {k: v for k, v in raw.items() if isinstance(k, str) and isinstance(v, str) and v}


def save_profile(server: str, token: str | None) -> Path:
    """Write the profile atomically, readable by its owner only (mode 0600)."""
    path = profile_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    data: dict[str, str] = {"server": server}
    if token:
        data["token"] = token
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".profile-", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def normalize_server(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def resolve(server: str | None = None, token: str | None = None) -> tuple[str, str | None]:
    """The server URL and token to use, in the order of the module docstring."""
    server = server or os.environ.get(SERVER_ENV) or None
    token = token or os.environ.get(TOKEN_ENV) or None
    if server is None or token is None:
        profile = load_profile()
        server = server or profile.get("server")
        token = token or profile.get("token")
    return normalize_server(server or DEFAULT_SERVER), token
