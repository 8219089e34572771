"""One version everywhere: pyproject (dynamic), --version (tests/e2e), the REST User-Agent;
the LICENSE file is the licence pyproject names."""

from __future__ import annotations

import json
import re
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from deal_monitor.bitrix.client import BitrixClient, WebhookAuth
from deal_monitor.bitrix.throttle import LeakyBucket

ROOT = Path(__file__).resolve().parents[2]


def declared_version() -> str:
    """The version as the build reads it: pyproject's dynamic attribute, from the source text."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["dynamic"] == ["version"]
    module, attr = project["tool"]["setuptools"]["dynamic"]["version"]["attr"].rsplit(".", 1)
    source = (ROOT / Path(*module.split(".")) / "__init__.py").read_text(encoding="utf-8")
    return re.search(rf'^{attr} = "([^"]+)"', source, re.MULTILINE).group(1)


def test_rest_calls_carry_the_project_version_in_the_user_agent():
    seen: list[str] = []

    class Portal(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            seen.append(self.headers.get("User-Agent", ""))
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"result": {"ID": "1"}, "time": {}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Portal)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/rest/1/abcdefgh/"
        client = BitrixClient(WebhookAuth(url), LeakyBucket(50, 2.0))
        client.call("crm.deal.get", {"id": 1})
    finally:
        server.shutdown()
        server.server_close()
    assert seen == [f"DealMonitor/{declared_version()}"]


def test_the_license_file_is_the_one_pyproject_names():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    licence = project["license"]
    name = licence if isinstance(licence, str) else licence["text"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert name == "MIT" and text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text
