"""The hub's own browser pages: the GraphiQL explorer and ``/journeys``, offline.

Third-party browser libraries (``package.json`` pins them) are served under ``/static/vendor/``
from the package's ``hub/http/vendor/``, which the wheel's build step fills from the npm registry
(``setup.py``); an editable install from a checkout has no such folder and serves the checkout's
``node_modules/`` instead (``scripts/setup`` installs it). The pages' own HTML, JS and CSS are in
``hub/http/static/``. Nothing is fetched from a CDN.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from hub.http.explorer import EXAMPLES

STATIC_DIR = Path(__file__).resolve().parent / "static"
PACKAGED_VENDOR_DIR = Path(__file__).resolve().parent / "vendor"
CHECKOUT_VENDOR_DIR = Path(__file__).resolve().parents[2] / "node_modules"


def vendor_dir() -> Path:
    """Where the browser libraries are: in the package first, else in the checkout."""
    return PACKAGED_VENDOR_DIR if PACKAGED_VENDOR_DIR.is_dir() else CHECKOUT_VENDOR_DIR


VENDOR_DIR = vendor_dir()


def _page(name: str, **slots: str) -> str:
    html = (STATIC_DIR / name).read_text()
    for slot, value in slots.items():
        html = html.replace(f"{{{{{slot}}}}}", value)
    return html


def _script_json(value: object) -> str:
    # Inside <script type="application/json">, "</" would end the element early.
    return json.dumps(value).replace("<", "\\u003c")


def explorer_html() -> str:
    return _page("explorer.html", examples=_script_json([asdict(e) for e in EXAMPLES]))


async def journeys(request: Request) -> Response:
    return HTMLResponse(_page("journeys.html"))


def web_routes() -> list[BaseRoute]:
    return [
        Route("/journeys", journeys, methods=["GET"]),
        Mount("/static/hub", StaticFiles(directory=STATIC_DIR), name="hub-static"),
        # check_dir=False: the API still starts when the npm packages are not installed; the
        # pages then say how to install them.
        Mount(
            "/static/vendor",
            StaticFiles(directory=VENDOR_DIR, check_dir=False),
            name="vendor",
        ),
    ]
