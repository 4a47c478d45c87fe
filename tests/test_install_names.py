"""The hub's packages cannot be shadowed by other distributions' top-level names.

PyPI's ``schema`` (a popular validation library, a dev dependency for this reason) owns the
top-level import name ``schema``. The checkout's ``schema/``, ``resolvers/``, ``loaders/`` and
``seeds/`` folders are installed as ``hub.schema``, ``hub.resolvers``, ``hub.loaders`` and
``hub.seeds``: the hub imports nothing by those bare names, so it starts beside PyPI's package.
Both tests run outside the checkout, where the checkout's folders are not on ``sys.path``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from tests.live_server import start_server

PROBE = """
import schema, hub.graphql
print(schema.__file__)
print(hasattr(schema, "Schema") and hasattr(schema, "SchemaError"))
print(hub.graphql.schema.as_str() == open(sys.argv[1]).read().rstrip("\\n"))
"""


def test_bare_schema_is_pypis_and_the_hub_builds_its_own(tmp_path: Path) -> None:
    sdl = Path(__file__).resolve().parent.parent / "schema" / "schema.graphql"
    result = subprocess.run(
        [sys.executable, "-c", "import sys\n" + PROBE, str(sdl)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    location, is_validation_library, same_sdl = result.stdout.split()
    assert "site-packages" in location, location
    assert is_validation_library == "True"
    assert same_sdl == "True"


def test_hub_serves_from_outside_the_checkout(database_url: str, tmp_path: Path) -> None:
    server = start_server(database_url, tmp_path, cwd=tmp_path)
    try:
        response = httpx.post(
            f"{server.http_url}/graphql", json={"query": "{ channels { code } }"}, timeout=10
        )
    finally:
        server.stop()
    assert response.status_code == 200, response.text
    codes = [c["code"] for c in response.json()["data"]["channels"]]
    assert codes == ["WEB", "MOBILE", "ASSISTED", "SOCIAL", "PHYSICAL", "OUTBOUND"]
