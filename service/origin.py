"""Which web pages may make a user's browser send requests that use the service (anything but GET, HEAD, OPTIONS).

A page on any site can make the browser POST `text/plain` to v2 infer or a multipart upload to `/v1` without a
CORS preflight ("simple" requests): any page a user visits could run inferences through the user's browser, and
skew online accuracy with false labels. Such a request carries an `Origin` header; it is refused (403) unless
that origin is the server's own (the `Host` the request came to, e.g. a page served by this service) or listed
in `allowed_origins`. Requests without an `Origin` (curl, tritonclient, other servers) are not browsers' and are
never refused. The listed origins also get CORS headers, so their pages can read the answers.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from service.errors import error_response

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
DEFAULT_PORTS = {"http": ":80", "https": ":443"}
EXPOSED_HEADERS = ["Inference-Header-Content-Length", "Retry-After"]


def _host_of(origin: str) -> str:
    """`scheme://host[:port]` -> `host[:port]`, the scheme's default port left out (as in a Host header)."""
    scheme, _, host = origin.partition("://")
    return host.removesuffix(DEFAULT_PORTS.get(scheme, "\0"))


class OriginPolicy:
    def __init__(self, allowed: list[str]) -> None:
        self.any = "*" in allowed
        self.allowed = frozenset(o.lower().rstrip("/") for o in allowed if o != "*")

    def listed(self, origin: str) -> bool:
        return self.any or origin in self.allowed

    def refusal(self, origin: bytes, host: bytes | None) -> str | None:
        """Why a state-using request from `origin` is refused, or None when it may go on."""
        value = origin.decode("latin-1").strip().lower()
        if self.listed(value):
            return None
        if host is not None and value != "null" and _host_of(value) == host.decode("latin-1").strip().lower():
            return None  # the server's own page
        return (
            f"cross-origin request from {value!r} refused: this server accepts requests from its own pages and "
            "from the origins in allowed_origins (DISTILL_ALLOWED_ORIGINS); requests without an Origin header "
            "(curl, API clients) are always accepted"
        )


class OriginGuard:
    """Refuses state-using requests from foreign origins; the routes served by FastAPI (v2 infer, served ahead of
    it, checks its own request with the same policy)."""

    def __init__(self, app: ASGIApp, policy: OriginPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in SAFE_METHODS:
            headers = dict(scope["headers"])
            origin = headers.get(b"origin")
            refusal = None if origin is None else self.policy.refusal(origin, headers.get(b"host"))
            if refusal is not None:
                await error_response(403, refusal)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def install_origin_policy(app: FastAPI, allowed: list[str]) -> OriginPolicy:
    """The policy on `app`'s routes, and CORS for the listed origins (preflights included)."""
    policy = OriginPolicy(allowed)
    app.add_middleware(OriginGuard, policy=policy)
    if allowed:
        app.add_middleware(
            CORSMiddleware, allow_origins=allowed, allow_methods=["GET", "POST"], allow_headers=["*"],
            expose_headers=EXPOSED_HEADERS,
        )  # fmt: skip
    return policy
