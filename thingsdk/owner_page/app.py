"""The owner's page as a Starlette app: GET / (the page), POST /answer (Approve or Decline, with
the page's CSRF token), GET /events (Server-Sent Events: the live part again after every change).

With a `token`, every request must carry it: `?token=T` once (the page then sets it as a
SameSite=Strict, HttpOnly cookie) or that cookie; anything else is 401.
"""

import asyncio
import hmac
import secrets
import socket
import time
from pathlib import Path
from urllib.parse import parse_qs

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse
from starlette.routing import Route

from thingsdk.owner_page import view
from thingsdk.owner_page.feed import Feed

COOKIE = "thingsdk-owner"


class _TokenCheck(BaseHTTPMiddleware):
    def __init__(self, app, token):
        super().__init__(app)
        self.token = token

    async def dispatch(self, request, call_next):
        given = request.query_params.get("token") or request.cookies.get(COOKIE) or ""
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return PlainTextResponse("a token is needed: open the address printed at start",
                                     status_code=401)
        response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie(COOKIE, self.token, httponly=True, samesite="strict")
        return response


def make_app(feed: Feed, mandates: dict, token: "str | None" = None, clock=time.time):
    """The app over a running feed; mandates: device kid -> Mandate."""
    ctx = view.Context(secrets.token_urlsafe(24), mandates, feed.owner.public_key)
    csrf = ctx.csrf

    def render_page(request):
        return HTMLResponse(view.page(feed.snapshot(), ctx, int(clock()), "events"))

    async def answer(request):
        # the form is small and urlencoded: read without python-multipart
        form = {k: v[0] for k, v in parse_qs((await request.body())[:4096].decode(
            "utf-8", "replace")).items()}
        if not hmac.compare_digest(str(form.get("csrf", "")).encode(), csrf.encode()):
            return PlainTextResponse("this form is stale or not from this page: reload it",
                                     status_code=403)
        try:  # signing and keeping the answer block: off the event loop
            await run_in_threadpool(feed.answer, bytes.fromhex(str(form.get("kid", ""))),
                                    bytes.fromhex(str(form.get("req", ""))),
                                    str(form.get("decision", "")))
        except ValueError as exc:
            return PlainTextResponse(str(exc), status_code=409)
        return RedirectResponse("./", status_code=303)

    async def events(request):
        changed = asyncio.Event()
        loop = asyncio.get_running_loop()
        stop = feed.on_change(lambda: loop.call_soon_threadsafe(changed.set))

        async def stream():
            try:
                while True:
                    changed.clear()
                    yield {"data": view.body(feed.snapshot(), ctx, int(clock()))}
                    try:
                        await asyncio.wait_for(changed.wait(), 15)
                    except asyncio.TimeoutError:
                        pass  # the page's state moves with the clock too (lapsed requests)
            finally:
                stop()

        return EventSourceResponse(stream())

    middleware = [Middleware(_TokenCheck, token=token)] if token else []
    return Starlette(routes=[Route("/", render_page), Route("/answer", answer, methods=["POST"]),
                             Route("/events", events)], middleware=middleware)


LOOPBACK = ("127.0.0.1", "::1", "localhost")


def serve(*, broker, ca, cert, key, owner_key, device_pubs, vendor_pub, mandate_files=(),
          bind="127.0.0.1", port=8080, token=None, db=None):
    """Run the page until interrupted. Bad files raise ValueError naming them."""
    import uvicorn

    from thingsdk.crypto import load_signer
    from thingsdk.inspect import read_message_arg
    from thingsdk.owner import next_seq, read_mandate, read_public_key
    from thingsdk.owner_wire import OwnerLink

    def named(path, read):
        try:
            return read(path)
        except (OSError, ValueError) as exc:
            raise ValueError("%s: %s" % (path, getattr(exc, "strerror", None) or exc))

    owner = named(owner_key, load_signer)
    devices = [named(p, read_public_key) for p in device_pubs]
    vendor = named(vendor_pub, read_public_key)
    mandates = {kid: m for m, kid in (named(p, lambda f: read_mandate(read_message_arg(f)))
                                      for p in mandate_files)}
    if bind not in LOOPBACK and not token:
        token = secrets.token_urlsafe(18)
        print("bound to %s: open the page once with ?token=%s" % (bind, token), flush=True)
    listener = _listen(bind, port)
    db = db or str(Path(owner_key).with_suffix(".page.sqlite"))
    link = OwnerLink.connect(broker, owner, devices, also=Feed.ALSO, ca_file=ca, cert_file=cert,
                             key_file=key)
    feed = Feed(link, devices, vendor, Path(db), lambda: next_seq(owner_key))
    try:
        feed.start()
        print("the owner's page: http://%s:%d/" % (bind, port), flush=True)
        server = uvicorn.Server(uvicorn.Config(make_app(feed, mandates, token), log_level="warning"))
        server.run(sockets=[listener])
    finally:
        feed.close()


def _listen(bind, port):
    """The page's listening socket, made before anything connects: a taken port or an address
    that is not this machine's is said at once, naming it."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((bind, port))
    except OSError as exc:
        listener.close()
        raise ValueError("cannot listen on %s port %d: %s" % (bind, port, exc.strerror or exc))
    listener.listen(128)
    return listener
