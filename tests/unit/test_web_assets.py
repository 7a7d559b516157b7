"""The dashboard ships its own assets: every script and stylesheet a template loads is a file in
the package (nothing from a CDN), and the vendored htmx carries its licence."""

from __future__ import annotations

import re
from pathlib import Path

import jobfleet.web

WEB = Path(jobfleet.web.__file__).parent
ASSET = re.compile(r'(?:src|href)="([^"{]+\.(?:js|css))"')


def test_every_script_and_stylesheet_is_a_packaged_file() -> None:
    found = []
    for template in (WEB / "templates").glob("*.html"):
        for url in ASSET.findall(template.read_text()):
            assert url.startswith("/ui/static/"), f"{template.name} loads {url} from elsewhere"
            assert (WEB / "static" / url.removeprefix("/ui/static/")).is_file(), url
            found.append(url)
    assert any("vendor/htmx" in u for u in found)
    assert (WEB / "static" / "vendor" / "htmx-LICENSE.txt").is_file()


def test_no_template_or_script_reaches_outside() -> None:
    for path in [*(WEB / "templates").glob("*.html"), WEB / "static" / "app.js"]:
        assert not re.search(r"(?:src|href)=\"https?://", path.read_text()), path.name
