"""The dashboard in a real browser against a real `jobfleet up`: sign-in, a job seen going from
waiting to SUCCEEDED without a reload (log followed live), cancel from the job page (spinner,
then CANCELLED), the table's filters and live rows, bulk cancel with its count, a failed job's
condition, exit code and log, workers, phone width and the keyboard."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import Fleet
from tests.ui.conftest import WORKER_CPU, sign_in


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def submit(fleet: Fleet, command: list[str], **spec: Any) -> str:
    with fleet.client() as c:
        job_id: str = c.submit({"command": command, **spec})["id"]
        return job_id


def gate_command(gate: Path, before: str = "", after: str = "") -> list[str]:
    """A job that prints `before`, waits for the file `gate` to exist, then prints `after`."""
    wait = f"while [ ! -e {gate} ]; do sleep 0.05; done"
    return ["sh", "-c", f"echo {before}; {wait}; echo {after}"]


def mark(page: Page) -> None:
    page.evaluate("window.__noReload = true")


def not_reloaded(page: Page) -> bool:
    return bool(page.evaluate("window.__noReload === true"))


def test_signing_in_keeps_the_token_out_of_urls_and_scripts(browser: Browser, fleet: Fleet) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{fleet.url}/ui/jobs")
        expect(page).to_have_url(re.compile(r"/ui/login\?next=/ui/jobs$"))
        page.fill("#token", "not-the-token")
        page.click("button[type=submit]")
        expect(page.get_by_role("alert")).to_contain_text("not valid")

        page = sign_in(context, fleet, "/ui/jobs")
        expect(page.get_by_role("heading", name="Jobs")).to_be_visible()
        [cookie] = context.cookies()
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
        assert page.evaluate("document.cookie") == ""
        assert fleet.token not in page.url
        page.get_by_role("button", name="Sign out").click()
        page.goto(f"{fleet.url}/ui/workers")
        expect(page).to_have_url(re.compile(r"/ui/login"))
    finally:
        context.close()


def test_a_waiting_job_is_seen_to_succeed_without_a_reload(
    page: Page, fleet: Fleet, tmp_path: Path
) -> None:
    blocker_gate, gate = tmp_path / "blocker", tmp_path / "gate"
    blocker = submit(fleet, gate_command(blocker_gate), resources={"cpu": WORKER_CPU})
    fleet.wait_state(blocker, "RUNNING")
    job_set = unique("live")
    job_id = submit(fleet, gate_command(gate, "first-line", "second-line"), job_set=job_set)
    fleet.wait_state(job_id, "SCHEDULED")  # the worker is full: it waits, with a reason

    page.goto(f"{fleet.url}/ui/jobs/{job_id}")
    mark(page)
    expect(page.locator("#job-state")).to_have_text("SCHEDULED")
    expect(page.locator("#scheduling-reason")).to_contain_text("CPU")
    table = page.context.new_page()
    table.goto(f"{fleet.url}/ui/jobs?job_set={job_set}")
    mark(table)
    row_state = table.locator(f'tr[data-job-id="{job_id}"] td.state')
    expect(row_state).to_have_text("SCHEDULED")

    blocker_gate.touch()
    expect(page.locator("#job-state")).to_have_text("RUNNING")
    expect(page.locator("#log")).to_contain_text("first-line")
    gate.touch()
    expect(page.locator("#job-state")).to_have_text("SUCCEEDED")
    expect(page.locator("#log")).to_contain_text("second-line")
    expect(page.locator("#timeline")).to_contain_text("queued for")
    expect(page.locator("#timeline")).to_contain_text("ran for")
    expect(page.locator("#events-rows")).to_contain_text("succeeded")
    expect(row_state).to_have_text("SUCCEEDED")
    assert not_reloaded(page) and not_reloaded(table)
    expect(page.locator('button[data-action="retry"]')).to_be_enabled()
    expect(page.locator('button[data-action="cancel"]')).to_be_disabled()


def test_cancelling_a_running_job_shows_the_spinner_then_cancelled(
    page: Page, fleet: Fleet
) -> None:
    # The job ignores SIGTERM, so the cancel stays in progress until the worker's SIGKILL.
    job_id = submit(fleet, ["sh", "-c", "trap '' TERM; echo started; sleep 120"])
    fleet.wait_state(job_id, "RUNNING")
    page.goto(f"{fleet.url}/ui/jobs/{job_id}")
    mark(page)
    cancel = page.locator('button[data-action="cancel"]')
    expect(cancel).to_be_enabled()
    page.once("dialog", lambda d: d.accept())
    cancel.click()

    expect(cancel.locator(".spinner")).to_be_visible()
    expect(cancel).to_be_disabled()
    expect(cancel).to_have_attribute("aria-busy", "true")
    expect(page.locator("#job-state")).to_contain_text("cancelling")
    expect(page.locator('button[data-action="preempt"]')).to_be_disabled()
    expect(page.locator("#job-state")).to_have_text("CANCELLED", timeout=30_000)
    expect(cancel.locator(".spinner")).to_have_count(0)
    assert not_reloaded(page)
    assert fleet.job(job_id)["state"] == "CANCELLED"


def test_a_failed_job_shows_its_condition_exit_code_and_log(page: Page, fleet: Fleet) -> None:
    command = "echo some-stdout; echo CUDA out of memory >&2; exit 3"
    job_id = submit(fleet, ["sh", "-c", command])
    fleet.wait_state(job_id, "FAILED")
    page.goto(f"{fleet.url}/ui/jobs/{job_id}")
    failure = page.locator("#job-failure")
    # The message first (here the stderr tail), then the condition: the story before the code.
    expect(failure.locator(".message")).to_contain_text("CUDA out of memory")
    expect(failure).to_contain_text("EXIT_NONZERO")
    expect(failure).to_contain_text("exit code 3")
    expect(page.locator("#runs-table")).to_contain_text("EXIT_NONZERO")
    expect(page.locator("#log")).to_contain_text("CUDA out of memory")  # opens on stderr
    expect(page.get_by_role("button", name="stderr")).to_have_attribute("aria-pressed", "true")
    page.goto(f"{fleet.url}/ui/")
    expect(page.locator("#f-h + ul")).to_contain_text("EXIT_NONZERO")


def test_the_table_filters_by_job_set_state_label_and_text(page: Page, fleet: Fleet) -> None:
    job_set = unique("filt")
    with fleet.client() as c:
        jobs = c.submit_many(
            [
                {"command": ["true"], "job_set": job_set, "labels": {"team": "red"}},
                {"command": ["sh", "-c", "exit 4"], "job_set": job_set, "labels": {"team": "blue"}},
                {"command": ["echo", "needle-xyz"], "job_set": job_set, "labels": {"team": "red"}},
            ]
        )
    ok, bad, needle = (j["id"] for j in jobs)
    fleet.wait_state(bad, "FAILED")
    fleet.wait_state(ok, "SUCCEEDED")
    fleet.wait_state(needle, "SUCCEEDED")
    rows = page.locator("#jobs-rows tr[data-job-id]")

    page.goto(f"{fleet.url}/ui/jobs")
    filters = page.get_by_role("search", name="Filter jobs")  # not the Columns menu
    filters.get_by_label("Job set").fill(job_set)
    page.get_by_role("button", name="Filter").click()
    expect(page).to_have_url(re.compile(f"job_set={job_set}"))
    expect(rows).to_have_count(3)
    filters.get_by_label("State").select_option("FAILED")
    page.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-job-id", bad)

    page.goto(f"{fleet.url}/ui/jobs?job_set={job_set}&label=team%3Dred")
    expect(rows).to_have_count(2)
    page.goto(f"{fleet.url}/ui/jobs?job_set={job_set}&q=needle-xyz")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-job-id", needle)
    page.goto(f"{fleet.url}/ui/jobs?job_set={job_set}&sort=oldest")
    expect(rows.first).to_have_attribute("data-job-id", ok)


def test_bulk_cancel_says_how_many_then_cancels_them(
    page: Page, fleet: Fleet, tmp_path: Path
) -> None:
    job_set = unique("bulk")
    first = submit(fleet, gate_command(tmp_path / "never"), job_set=job_set)
    after = [{"job_id": first}]
    with fleet.client() as c:
        waiting = c.submit_many(
            [{"command": ["true"], "job_set": job_set, "depends_on": after} for _ in range(2)]
        )
    fleet.wait_state(first, "RUNNING")
    page.goto(f"{fleet.url}/ui/jobs?job_set={job_set}")
    page.get_by_role("button", name="Cancel matching jobs…").click()
    expect(page.locator("#confirm-text")).to_contain_text("Cancel 3 jobs")
    page.get_by_role("button", name="Cancel 3 jobs").click()
    expect(page.locator("#cancel-done")).to_contain_text("Cancelled 2; cancel requested for 1")
    for job in waiting:
        assert fleet.job(job["id"])["state"] == "CANCELLED"
    fleet.wait_state(first, "CANCELLED")


def test_workers_and_overview_show_the_local_worker_and_queue(page: Page, fleet: Fleet) -> None:
    page.goto(f"{fleet.url}/ui/workers")
    workers = page.locator("#workers-table tbody tr[data-worker]")
    expect(workers).to_have_count(1, timeout=30_000)  # the page refreshes every 5 s
    expect(workers.first).to_contain_text(f"{WORKER_CPU} CPU")
    expect(workers.first).to_contain_text("READY")
    expect(workers.first).to_contain_text(re.compile(r"cgroup2|cgroup1|rlimits|none"))
    expect(page.locator("#shards-table")).to_contain_text("default")
    page.goto(f"{fleet.url}/ui/")
    expect(page.locator("#queues")).to_contain_text("default")
    expect(page.locator("#event-rate")).to_have_text(re.compile(r"[\d.]+/s"))


def test_phone_width_dark_mode_and_keyboard(browser: Browser, fleet: Fleet) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 800}, color_scheme="dark")
    try:
        page = sign_in(context, fleet, "/ui/jobs")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width}px wide on a 390px phone"
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(15, 18, 22)"  # the dark palette
        page.keyboard.press("Tab")  # the skip link first, then the navigation
        page.keyboard.press("Tab")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Overview"
    finally:
        context.close()


def test_a_button_without_its_verb_is_disabled_and_says_which(
    browser: Browser, fleet: Fleet
) -> None:
    job = submit(fleet, ["true"], job_set=unique("perm"))
    queue = fleet.wait_state(job, "SUCCEEDED")["queue"]
    name = unique("viewer")
    made = httpx.post(
        f"{fleet.url}/v1/auth/tokens",
        json={"name": name, "queues": [queue], "verbs": ["watch"]},
        headers={"Authorization": f"Bearer {fleet.token}"},
        timeout=10,
    )
    assert made.status_code == 201, made.text
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{fleet.url}/ui/jobs/{job}")
        page.fill("#token", made.json()["token"])
        page.click("button[type=submit]")
        expect(page.locator(".who")).to_have_text(name)
        retry = page.locator('button[data-action="retry"]')
        expect(retry).to_be_disabled()  # the state allows it; the principal lacks `submit`
        expect(retry).to_have_attribute("title", re.compile(r"verb 'submit' on queue"))
        # a stale page that still posts the action is refused, and says why
        page.evaluate(f"htmx.ajax('POST', '/ui/jobs/{job}/actions/retry', {{target: '#panel'}})")
        expect(page.locator("#ui-error")).to_contain_text(f"may not submit in queue '{queue}'")
        assert fleet.job(job)["state"] == "SUCCEEDED"
    finally:
        context.close()


def test_the_jobs_table_shows_commands_labels_and_ticking_durations(
    page: Page, fleet: Fleet, tmp_path: Path
) -> None:
    job_set = unique("cols")
    gate = tmp_path / "gate"
    job_id = submit(fleet, gate_command(gate, "x"), job_set=job_set, labels={"sweep": "lr"})
    fleet.wait_state(job_id, "RUNNING")
    page.goto(f"{fleet.url}/ui/jobs?job_set={job_set}")
    row = page.locator(f'tr[data-job-id="{job_id}"]')
    expect(row.locator('[data-col="job"]')).to_contain_text("sh -c echo x")
    expect(row.locator('[data-col="labels"]')).to_have_text("sweep=lr")
    expect(row.locator('[data-col="submitted"]')).to_contain_text(re.compile(r"ago|just now"))
    ticking = row.locator('[data-col="duration"] [data-since]')
    first = ticking.inner_text()
    expect(ticking).not_to_have_text(first, timeout=5_000)  # it ticks without a reload
    gate.touch()
    fleet.wait_state(job_id, "SUCCEEDED")


def test_a_phone_starts_with_the_columns_that_fit_and_keeps_a_choice(
    browser: Browser, fleet: Fleet
) -> None:
    job_id = submit(fleet, ["true"], job_set=unique("phone"))
    context = browser.new_context(viewport={"width": 390, "height": 800})
    try:
        page = sign_in(context, fleet, "/ui/jobs")
        row = page.locator(f'tr[data-job-id="{job_id}"]')
        expect(row.locator('[data-col="state"]')).to_be_visible()
        expect(row.locator('[data-col="queue"]')).to_be_hidden()
        page.locator("#columns summary").click()
        page.locator('#columns input[value="queue"]').check()
        expect(row.locator('[data-col="queue"]')).to_be_visible()
        page.reload()
        expect(page.locator(f'tr[data-job-id="{job_id}"] [data-col="queue"]')).to_be_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page is {width}px wide on a 390px phone"
    finally:
        context.close()


def test_the_overview_draws_throughput_failures_and_waiting_charts(
    page: Page, fleet: Fleet
) -> None:
    job_id = submit(fleet, ["sh", "-c", "exit 4"], job_set=unique("chart"))
    fleet.wait_state(job_id, "FAILED")
    page.goto(f"{fleet.url}/ui/")
    expect(page.locator("#charts")).to_have_attribute("data-loaded", "1")
    for chart in ("throughput", "failures", "waiting"):
        expect(page.locator(f"#chart-{chart} canvas")).to_have_count(1)
    expect(page.locator("#chart-failures")).to_contain_text("condition EXIT_NONZERO")
    expect(page.locator("#failed-runs")).not_to_have_text("0")


CONTRAST = """() => {
  const rgb = (c) => c.match(/[\\d.]+/g).slice(0, 3).map(Number);
  const lum = (c) => {
    const [r, g, b] = rgb(c).map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4);
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b;
  };
  const bg = getComputedStyle(document.body).backgroundColor;
  const worst = [];
  for (const el of document.querySelectorAll("a, .muted, .badge, td, th, h1, h2, label")) {
    const st = getComputedStyle(el);
    if (st.display === "none" || !el.textContent.trim()) continue;
    const a = lum(st.color), b = lum(bg);
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    if (ratio < 4.5) worst.push([el.tagName, el.className, st.color, ratio.toFixed(2)]);
  }
  return worst;
}"""


def test_dark_mode_text_stays_readable(browser: Browser, fleet: Fleet) -> None:
    """Every text colour on the overview and the jobs table meets WCAG AA (4.5:1) against the
    dark background."""
    submit(fleet, ["true"], job_set=unique("dark"))
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="dark")
    try:
        page = sign_in(context, fleet, "/ui/")
        for target in ("/ui/", "/ui/jobs", "/ui/workers"):
            page.goto(f"{fleet.url}{target}")
            assert page.evaluate(CONTRAST) == [], target
    finally:
        context.close()
