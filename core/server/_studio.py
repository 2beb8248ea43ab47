"""The Studio: the web UI's static files, served at ``/`` beside the API.

The Studio is plain ES modules and CSS shipped inside the package (``studio/``), with no build
step and no library: nothing to install, nothing fetched from a CDN, and a change to a view is
a change to one file. It talks only to the documented API under ``/api`` (the same routes
``stepstream.client`` uses), with the bearer token the person types into it.

The files hold no data, so they are public even when the API needs a token (the page must load
to ask for it): :data:`PUBLIC` is what :class:`~._guards.BearerAuth` lets through.
"""

from __future__ import annotations

from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

__all__ = ["PUBLIC", "is_public", "studio_routes"]

# resolve(): an editable install links each file, and StaticFiles follows no link out of its
# directory; the real directory beside the real module holds the same files.
ASSETS = Path(__file__).resolve().with_name("studio")

PUBLIC = ("/", "/studio/")
"""The Studio's paths: ``/`` exactly and everything under ``/studio/``."""


def is_public(path: str) -> bool:
    """Whether ``path`` (relative to where the app is mounted) is one of the Studio's files."""
    return path == PUBLIC[0] or path.startswith(PUBLIC[1])


async def _index(request: Request) -> Response:
    # no-cache: a page from an older stepstream must not outlive an upgrade of its modules.
    return FileResponse(ASSETS / "index.html", headers={"Cache-Control": "no-cache"})


def studio_routes() -> list[BaseRoute]:
    """The routes serving the Studio: its page at ``/`` and its modules under ``/studio/``."""
    return [
        Route("/", _index, methods=["GET"]),
        Mount("/studio", StaticFiles(directory=ASSETS), name="studio"),
    ]
