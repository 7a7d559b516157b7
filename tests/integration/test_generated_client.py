"""A client generated from the OpenAPI document is typed and works (issue 13, PRODUCT.md §14.6):
openapi-python-client generates it from the document the server serves, with no warning (a
schema it cannot read would be left out of the client), and the generated code submits a job,
reads it back as a typed `Job` and lists it, against a real server."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import wait_for
from tests.integration.conftest import TOKEN, Api

TOOL = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
MODELS = ("Job", "Run", "Failure", "Event", "JobPage", "Worker", "Queue", "Schedule", "Usage")


def test_a_generated_client_is_typed_and_talks_to_the_server(api: Api, tmp_path: Path) -> None:
    assert TOOL, "openapi-python-client is a dev dependency (make test installs it)"
    document = tmp_path / "openapi.json"
    document.write_text(api.http.get("/openapi.json").text)
    out = tmp_path / "genclient"
    done = subprocess.run(
        [TOOL, "generate", "--path", str(document), "--output-path", str(out), "--meta", "none"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = done.stdout + done.stderr
    assert done.returncode == 0, said
    assert "WARNING" not in said and "Unable to" not in said, said

    sys.path.insert(0, str(tmp_path))
    try:
        gen = importlib.import_module("genclient")
        models = importlib.import_module("genclient.models")
        for name in MODELS:
            assert hasattr(models, name), f"the generated client has no {name} model"
        get_job = importlib.import_module("genclient.api.jobs.get_job")
        list_jobs = importlib.import_module("genclient.api.jobs.list_jobs")
        submit = importlib.import_module("genclient.api.jobs.submit_jobs")

        client = gen.AuthenticatedClient(base_url=api.url, token=TOKEN)
        spec = models.JobSpec.from_dict({"command": ["true"], "job_set": "generated"})
        submitted = submit.sync(client=client, body=spec)
        assert isinstance(submitted, models.Job), submitted
        job = wait_for(
            lambda: (
                (j := get_job.sync(str(submitted.id), client=client)).state.value == "SUCCEEDED"
                and j
            ),
            timeout=20,
            what="the job to succeed",
        )
        assert isinstance(job, models.Job) and job.runs and isinstance(job.runs[0], models.Run)
        page = list_jobs.sync(client=client, job_set="generated")
        assert isinstance(page, models.JobPage) and [j.id for j in page.items] == [submitted.id]
        missing = get_job.sync("01ZZZZZZZZZZZZZZZZZZZZZZZZ", client=client)
        assert isinstance(missing, models.Problem) and missing.status == 404
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "genclient" or m.startswith("genclient.")]:
            del sys.modules[name]
