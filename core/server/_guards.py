"""The ASGI middleware in front of every route: bearer-token auth and the request body limit.

Both wrap the whole app, so they hold for every route whatever path the app is mounted under
(``Mount("/wf", app)`` in Starlette or FastAPI); only the auth looks at the path, to let the
Studio's static files through.
"""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._studio import is_public
from ._wire import JSON, Problem

DEFAULT_BODY_LIMIT = 4_718_592
"""4.5 MiB, the default body limit of Mastra's server."""


class BearerAuth:
    """Answers 401 to any request without ``Authorization: Bearer <token>``.

    The comparison is constant-time (``hmac.compare_digest``), so the token cannot be guessed
    byte by byte from response times. CORS preflights never reach this middleware when CORS is
    on: the CORS middleware outside it answers them (browsers send no credentials there).
    The Studio's static files (``_studio.is_public``) need no token: they hold no data, and the
    page must load to ask for the token.
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        if not token:
            raise ValueError("the bearer token must not be empty")
        self.app = app
        self.expected = f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket") and not _studio_file(scope):
            given = b""
            for name, value in scope.get("headers") or []:
                if name == b"authorization":
                    given = value
                    break
            if not hmac.compare_digest(given, self.expected):
                response = JSON(
                    {"error": "missing or invalid bearer token"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _studio_file(scope: Scope) -> bool:
    # The path below where the app is mounted (Starlette keeps the full path in a Mount).
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return scope["type"] == "http" and scope["method"] in ("GET", "HEAD") and is_public(path)


class BodyLimit:
    """Answers 413 to a request whose body is larger than ``limit`` bytes.

    A declared ``Content-Length`` over the limit is refused before any byte is read; a body
    without one (chunked) is counted as it arrives and refused as soon as it passes the limit.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        if limit < 0:
            raise ValueError("the body limit must be >= 0")
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers") or []:
            if name == b"content-length":
                declared = value.decode("latin-1").strip()
                if not declared.isdigit() or len(declared) > 19:
                    await self._refuse(scope, receive, send, 400, "invalid Content-Length")
                    return
                if int(declared) > self.limit:
                    await self._refuse(scope, receive, send, 413, self._too_large())
                    return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise Problem(413, self._too_large())
            return message

        await self.app(scope, counted, send)

    def _too_large(self) -> str:
        return f"the request body is larger than {self.limit} bytes"

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, why: str) -> None:
        await JSON({"error": why}, status_code=status)(scope, receive, send)
