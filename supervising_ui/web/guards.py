"""Checks every request passes before a view sees it: size limits, JSON shape, text, ids.

- Size: a request body may be MAX_REQUEST_BYTES (1 MiB) at most, except on the upload route,
  which may take MAX_CONTENT_LENGTH from an admin (from anyone else it is 1 MiB too: no body
  is read before the caller's role allows the route). A declared Content-Length over the
  limit is refused with 413 before a byte of the body is read, and the answer says
  ``Connection: close`` (the unread body cannot be skipped); a chunked body without one is
  cut off at the limit.
- JSON: a body nested deeper than MAX_JSON_DEPTH levels is refused with 400 before parsing.
- Text: NUL characters and lone UTF-16 surrogates in query parameters, path parts, form fields
  or JSON strings are refused with 400 (the database cannot store them). The body is looked
  at only when the caller's login and role allow the route; otherwise the login guard
  refuses the request without reading it.
- Ids: every ``<int:...>`` in a route matches 1..2^31-1 only: a bigger or zero id is 404,
  never a database overflow.
- Proxies: with TRUSTED_PROXY_HOPS set, the client's address and scheme come from that many
  X-Forwarded-For / X-Forwarded-Proto entries (Werkzeug's ProxyFix); off by default.
"""
import re

from flask import Flask, abort, current_app, request
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

from ..accounts.guard import PUBLIC_ENDPOINTS, route_allows
from ..echo import shorten

# The largest id the schema's Integer keys hold on PostgreSQL (SQLite's are 64-bit, but the
# app must answer the same on both; PostgreSQL fails on a larger value instead of finding none).
MAX_ID = 2**31 - 1
MAX_JSON_DEPTH = 64
# Endpoints that may receive large bodies (image and zip uploads): MAX_CONTENT_LENGTH there.
UPLOAD_ENDPOINTS = frozenset({"importing.import_upload", "observations.import_upload"})
# How much of a name from the request an error message repeats.

_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_BRACKET = re.compile(rb"[\[\]{}]")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class IdConverter(IntegerConverter):
    """``<int:...>`` in every route: 1..MAX_ID only, so an id no table can hold is 404, not 500."""

    def __init__(self, map, fixed_digits=0, min=1, max=MAX_ID, signed=False):
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def init_app(app: Flask) -> None:
    """Install the id converter and the request checks (before the blueprints and login guard)."""
    app.url_map.converters["int"] = IdConverter
    app.before_request(limit_request_size)
    app.before_request(check_request_text)
    app.after_request(close_after_refused_body)


def trust_proxies(app: Flask) -> None:
    """Take the client's address and scheme from TRUSTED_PROXY_HOPS proxies' headers (0: off)."""
    hops = app.config["TRUSTED_PROXY_HOPS"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)


def body_limit() -> int:
    """Return the largest body the current request's route accepts from its caller, in bytes."""
    if request.endpoint in UPLOAD_ENDPOINTS and current_user.is_authenticated and \
            current_user.is_admin:
        return current_app.config["MAX_CONTENT_LENGTH"]
    return current_app.config["MAX_REQUEST_BYTES"]


def caller_may_use_route() -> bool:
    """Return whether the caller's login and role allow the route (else no body is read)."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return True
    if not current_user.is_authenticated:
        return False
    return route_allows(request.endpoint, current_user)


def close_after_refused_body(response):
    """Say Connection: close on a 413: the body was left unread, so the connection must end."""
    if response.status_code == 413:
        response.headers["Connection"] = "close"
    return response


def limit_request_size():
    """Refuse a declared body over the route's limit (413) and cap what may be read of any other."""
    limit = body_limit()
    # Werkzeug reads no more than this of a body without Content-Length (chunked); settable
    # per request since Flask 3.1.
    request.max_content_length = limit
    too_large = f"request body too large: at most {limit} bytes here"
    if request.content_length is not None:
        if request.content_length > limit:
            abort(413, too_large)
    elif "wsgi.input_terminated" in request.environ and request.endpoint not in UPLOAD_ENDPOINTS:
        # Werkzeug would silently cut a chunked body at the limit: read it (at most limit
        # bytes, cached for the view) and refuse it if it reaches the limit.
        if len(request.get_data(cache=True)) >= limit:
            abort(413, too_large)


def check_request_text():
    """Refuse NUL characters and lone surrogates anywhere in the request's text (400)."""
    for where, values in (("path", (request.view_args or {}).items()),
                          ("query parameter", request.args.items(multi=True))):
        _refuse_unstorable(where, values)
    if request.endpoint in UPLOAD_ENDPOINTS or not caller_may_use_route():
        return  # left to the view (an upload), or never read: the login guard refuses it
    if request.is_json:
        _refuse_unstorable("JSON value", _json_strings(_json_body()))
    elif request.form:
        _refuse_unstorable("form field", request.form.items(multi=True))


def _refuse_unstorable(where: str, pairs) -> None:
    """Answer 400 naming the first pair whose name or value the database cannot store."""
    for name, value in pairs:
        for text in (name, value):
            if isinstance(text, str) and _UNSTORABLE.search(text):
                abort(400, f"{where} {shorten(name)!r} contains a NUL character or a lone "
                           "UTF-16 surrogate: send valid UTF-8 text")


def json_depth(data: bytes, stop_after: int = MAX_JSON_DEPTH) -> int:
    """Return how deep a JSON text's arrays and objects nest (counting stops past stop_after)."""
    depth = deepest = 0
    for bracket in _JSON_BRACKET.finditer(_JSON_STRING.sub(b"", data)):
        depth += 1 if bracket.group() in (b"[", b"{") else -1
        deepest = max(deepest, depth)
        if deepest > stop_after:
            break
    return deepest


def _json_body():
    """Return the parsed JSON body (cached for the view), refusing one nested too deep."""
    data = request.get_data(cache=True)  # bounded by limit_request_size
    if json_depth(data) > MAX_JSON_DEPTH:
        abort(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return request.get_json(silent=True)  # malformed JSON: None here, the view's own answer


def _json_strings(value):
    """Yield (key, string) for every string in a parsed JSON value, keys included."""
    stack = [("", value)]
    while stack:
        key, item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.items())
            yield from ((name, name) for name in item)
        elif isinstance(item, list):
            stack.extend((key, element) for element in item)
        elif isinstance(item, str):
            yield key, item
