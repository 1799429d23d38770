"""Who is asking: flask-login's loaders (session cookie or API token), the login-everywhere
guard with its role and CSRF checks, admin_required and session_required for views.

No body is read before the caller's role allows the route: the guard refuses a signed-in
user whose role a route's check refuses (admin_required, reviewer_required, on the view or
on its blueprint's before_request) with 403 before the CSRF check parses the form
(web/guards.py has already refused a declared body over the caller's size limit).

The account rules themselves (passwords, roles, sessions, tokens) live in users.py, login
throttling in throttling.py, and the pages in views.py.
"""
from functools import wraps

from flask import Flask, abort, current_app, g, jsonify, request, session
from flask_login import current_user

from ..extensions import csrf, login_manager
from . import login_cache, users

# Endpoints reachable without a session; everything else needs one.
PUBLIC_ENDPOINTS = {"accounts.login", "static"}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Where a request keeps the user of its token once looked up.
_TOKEN_USER = "supervising_ui.token_user"
# The attribute by which admin_required and reviewer_required tell the guard whose role a view
# (or a blueprint's before_request) allows: a function of the user.
ROLE_CHECK = "role_check"
# Where Flask-WTF keeps the CSRF token, in the session and in g (its WTF_CSRF_FIELD_NAME).
CSRF_FIELD = "csrf_token"


def init_app(app: Flask) -> None:
    """Bind flask-login and CSRF, and guard every endpoint but the public ones."""
    login_manager.init_app(app)
    login_cache.init_app(app)
    login_manager.login_view = "accounts.login"
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # checked in require_login, after token auth
    csrf.init_app(app)
    app.before_request(require_login)


@login_manager.user_loader
def load_user(session_id: str):
    """Return the user of a session cookie if its session version is current, else None."""
    if "Authorization" in request.headers:  # the header alone says who is asking
        return None
    return users.session_user(session_id)


@login_manager.request_loader
def load_user_from_token(req):
    """Return the active user whose API token is in the Authorization header, or None."""
    token = bearer_token(req)
    if token is None:
        return None
    if _TOKEN_USER not in req.environ:  # once per request: the guard and flask-login both ask
        req.environ[_TOKEN_USER] = users.user_of_token(token)
    return req.environ[_TOKEN_USER]


def bearer_token(req) -> str | None:
    """Return the token of an 'Authorization: Bearer' header, or None."""
    scheme, _, token = req.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def require_login():
    """Refuse anonymous requests (401 for the API, login page otherwise); check CSRF for cookies.

    A request with an Authorization header is judged by that header alone: a valid token
    acts as its user without CSRF (a browser never adds the header by itself), anything
    else is 401 even beside a valid session cookie.
    """
    if request.endpoint == "static":
        return None
    if "Authorization" in request.headers:
        if load_user_from_token(request) is None:
            return jsonify(error="authentication required: send a valid API token"), 401
        _refuse_by_role()
        return None
    if request.endpoint not in PUBLIC_ENDPOINTS and not current_user.is_authenticated:
        if request.path.startswith("/api/"):
            return jsonify(error="authentication required: log in or send a valid API token"), 401
        return login_manager.unauthorized()
    _refuse_by_role()  # before the CSRF check reads the body
    if request.method not in SAFE_METHODS:
        csrf.protect()
    return None


def role_checks(endpoint: str | None) -> list:
    """Return the role checks of endpoint: its view's and its blueprint's before_request's."""
    if not endpoint:
        return []
    blueprint = endpoint.rpartition(".")[0]
    functions = [current_app.view_functions.get(endpoint),
                 *current_app.before_request_funcs.get(blueprint, ())]
    return [getattr(function, ROLE_CHECK) for function in functions
            if hasattr(function, ROLE_CHECK)]


def route_allows(endpoint: str | None, user) -> bool:
    """Return whether a signed-in user's role passes every role check of endpoint."""
    return all(check(user) for check in role_checks(endpoint))


def is_admin_route(endpoint: str | None) -> bool:
    """Return whether endpoint is for admins only."""
    return any(check is _is_admin for check in role_checks(endpoint))


def _refuse_by_role() -> None:
    """Answer 403 to a signed-in user whose role the route refuses, before its body is read."""
    if current_user.is_authenticated and not route_allows(request.endpoint, current_user):
        abort(403)


def _is_admin(user) -> bool:
    """Return whether user is an admin (admin_required's check)."""
    return user.is_admin


def _may_review(user) -> bool:
    """Return whether user may review (reviewer_required's check)."""
    return user.may_review


def rotate_csrf_token() -> None:
    """Forget the session's CSRF token (at login): the next page gets a fresh one."""
    session.pop(CSRF_FIELD, None)
    g.pop(CSRF_FIELD, None)


def session_required(view):
    """Decorate a view that only a signed-in browser may call, never an API token (403)."""
    @wraps(view)
    def wrapped(*args, **kwargs):
        if "Authorization" in request.headers:
            abort(403, "only a signed-in browser session may do this, not an API token")
        return view(*args, **kwargs)
    return wrapped


def _role_required(check):
    """Return a view decorator that answers 403 to anyone signed out or failing check(user)."""
    def decorate(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated or not check(current_user):
                abort(403)
            return view(*args, **kwargs)
        setattr(wrapped, ROLE_CHECK, check)  # read by the guard, which checks before CSRF
        return wrapped
    return decorate


# Decorate a view so that only admins may call it (403 for everyone else).
admin_required = _role_required(_is_admin)
# Decorate a view so that only reviewers and admins may call it (403 for everyone else).
reviewer_required = _role_required(_may_review)
