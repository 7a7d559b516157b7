"""Regenerate the dashboard screenshots in docs/img/ (`make screenshots`).

Starts a throw-away `jobfleet up` (SQLite, a free port, a temp data dir, its own token),
submits a small demo fleet (jobs that succeed, fail, run and print, wait on a dependency),
then photographs each page with Debian's headless Chromium through Playwright.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, sync_playwright

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "docs" / "img"
JOBFLEET = str(Path(sys.executable).with_name("jobfleet"))
CHROMIUM = os.environ.get("JOBFLEET_CHROMIUM", "/usr/bin/chromium")
CONFIG = """
worker: {cpu: 2, grace: 2s}
queues:
  - {name: ml, weight: 2, max_running_jobs: 4}
  - {name: etl, weight: 1}
error_categories:
  - name: bad-input
    rules:
      - exit_codes: {operator: In, values: [2, 64, 65]}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(check: Any, what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got = check()
        except httpx.HTTPError:
            got = None
        if got:
            return got
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


WAVES, WAVE_GAP = 5, 8.0  # s: jobs arrive in waves over ~40 s


def demo(http: httpx.Client) -> dict[str, str]:
    """A few jobs in every kind of state; returns the ids worth photographing."""

    def submit(**spec: Any) -> str:
        r = http.post("/v1/jobs", json=spec)
        r.raise_for_status()
        return str(r.json()["id"])

    for wave in range(WAVES):  # a short history for the overview's charts
        for i in range(3 + 2 * wave):
            submit(
                command=["sh", "-c", f"echo epoch {i}; sleep 0.2"],
                queue="ml",
                job_set="sweep-a",
                labels={"team": "vision", "lr": f"0.00{i}"},
            )
        if wave % 2:
            submit(command=["sh", "-c", "echo 'CUDA out of memory' >&2; exit 3"], queue="ml")
        time.sleep(WAVE_GAP)
    failed = submit(
        command=["sh", "-c", "echo 'reading input.csv'; echo 'bad header' >&2; exit 65"],
        queue="etl",
        job_set="nightly",
        labels={"team": "data"},
    )
    running = submit(
        command=[
            "sh",
            "-c",
            "for i in $(seq 1 400); do echo step $i loss=0.$((500 - i)); sleep 0.5; done",
        ],
        queue="ml",
        job_set="train-big",
        resources={"cpu": 1, "memory": "1Gi"},
        labels={"team": "vision"},
    )
    submit(
        command=["python3", "-c", "print('report')"],
        queue="etl",
        job_set="nightly",
        depends_on=[{"job_id": running}],
    )
    submit(command=["sleep", "60"], job_set="too-big", resources={"cpu": 64})
    wait(lambda: http.get(f"/v1/jobs/{failed}").json()["state"] == "FAILED", "the failed job")
    wait(lambda: http.get(f"/v1/jobs/{running}").json()["state"] == "RUNNING", "the running job")
    return {"failed": failed, "running": running}


def shoot(page: Page, url: str, name: str) -> None:
    page.goto(url)
    page.wait_for_load_state("networkidle") if "/jobs/" not in url else page.wait_for_timeout(1500)
    page.screenshot(path=str(OUT / f"{name}.png"), full_page=False)
    print(f"wrote docs/img/{name}.png")


def photograph(base: str, token: str, ids: dict[str, str]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for scheme, size, suffix in (
            ("light", (1280, 800), ""),
            ("dark", (390, 844), "-phone-dark"),
        ):
            context = browser.new_context(
                viewport={"width": size[0], "height": size[1]},
                color_scheme=scheme,  # type: ignore[arg-type]
            )
            page = context.new_page()
            page.goto(f"{base}/ui/login")
            if not suffix:
                page.screenshot(path=str(OUT / "login.png"))
            page.fill("#token", token)
            page.click("button[type=submit]")
            page.wait_for_url(f"{base}/ui/")
            page.goto(f"{base}/ui/")
            page.select_option("#chart-window", "15m")
            page.wait_for_selector("#charts[data-loaded='1']")
            page.wait_for_timeout(500)
            page.screenshot(path=str(OUT / f"overview{suffix}.png"), full_page=not suffix)
            print(f"wrote docs/img/overview{suffix}.png")
            shoot(page, f"{base}/ui/jobs", f"jobs{suffix}")
            shoot(page, f"{base}/ui/jobs/{ids['running']}", f"job-running{suffix}")
            if not suffix:
                shoot(page, f"{base}/ui/jobs/{ids['failed']}", "job-failed")
                shoot(page, f"{base}/ui/workers", "workers")
            context.close()
        browser.close()


def main() -> None:
    if not Path(CHROMIUM).exists():
        raise SystemExit(
            f"{CHROMIUM} is missing: `make chromium` (Debian: apt-get install chromium)"
        )
    with tempfile.TemporaryDirectory(prefix="jobfleet-shots-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o711)  # as root, jobs run as nobody, who must pass through to them
        (root / "jobfleet.yaml").write_text(CONFIG)
        port, token = free_port(), secrets.token_urlsafe(24)
        env = {**os.environ, "JOBFLEET_ADMIN_TOKEN": token, "XDG_CONFIG_HOME": str(root / "xdg")}
        argv = [
            JOBFLEET,
            "up",
            "--data-dir",
            str(root / "data"),
            "--port",
            str(port),
            "--config",
            str(root / "jobfleet.yaml"),
        ]
        with open(root / "up.log", "wb") as log:
            proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            wait(lambda: httpx.get(f"{base}/readyz").status_code == 200, "jobfleet up")
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as http:
                ids = demo(http)
            photograph(base, token, ids)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
