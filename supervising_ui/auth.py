"""Login, logout, password and API-token views, the login-everywhere guard and admin_required.

The account rules themselves (passwords, roles, sessions, tokens) live in accounts.py and
login throttling in login_attempts.py.
"""
from functools import wraps
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    abort,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required, login_user, logout_user

from . import accounts, login_attempts, login_cache
from .extensions import csrf, login_manager

blueprint = Blueprint("auth", __name__)

# Endpoints reachable without a session; everything else needs one.
PUBLIC_ENDPOINTS = {"auth.login", "static"}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Pages that show a secret must not be kept by a browser or proxy cache.
NO_STORE = {"Cache-Control": "no-store"}
# Where a request keeps the user of its token once looked up.
_TOKEN_USER = "supervising_ui.token_user"


def init_app(app: Flask) -> None:
    """Bind flask-login and CSRF, and guard every endpoint but the public ones."""
    login_manager.init_app(app)
    login_cache.init_app(app)
    login_manager.login_view = "auth.login"
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # checked in require_login, after token auth
    csrf.init_app(app)
    app.before_request(require_login)


@login_manager.user_loader
def load_user(session_id: str):
    """Return the user of a session cookie if its session version is current, else None."""
    if "Authorization" in request.headers:  # the header alone says who is asking
        return None
    return accounts.session_user(session_id)


@login_manager.request_loader
def load_user_from_token(req):
    """Return the active user whose API token is in the Authorization header, or None."""
    token = bearer_token(req)
    if token is None:
        return None
    if _TOKEN_USER not in req.environ:  # once per request: the guard and flask-login both ask
        req.environ[_TOKEN_USER] = accounts.user_of_token(token)
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
        return None
    if request.endpoint not in PUBLIC_ENDPOINTS and not current_user.is_authenticated:
        if request.path.startswith("/api/"):
            return jsonify(error="authentication required: log in or send a valid API token"), 401
        return login_manager.unauthorized()
    if request.method not in SAFE_METHODS:
        csrf.protect()
    return None


def admin_required(view):
    """Decorate a view so that only admins may call it (403 for everyone else)."""
    @wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated or not current_user.is_admin:
            abort(403)
        return view(*args, **kwargs)
    return wrapped


def _safe_next(target: str | None) -> str:
    """Return target if it is a path on this site, else the home page (no open redirects)."""
    if target and target.startswith("/") and not target.startswith("//") and \
            target.isprintable() and "\\" not in target and not urlsplit(target).netloc:
        return target
    return url_for("pages.home")


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form and log a user in (429 after too many failures)."""
    if request.method == "POST":
        try:
            user = login_attempts.log_in(request.form.get("username", ""),
                                         request.form.get("password", ""), request.remote_addr)
        except login_attempts.LoginThrottled as throttled:
            minutes = -(-throttled.retry_after // 60)
            flash(f"Too many failed logins for this account or from this address: "
                  f"try again in {minutes} minute{'s' if minutes != 1 else ''}.", "error")
            return (render_template("auth/login.html"), 429,
                    {"Retry-After": str(throttled.retry_after)})
        if user is not None:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        flash("Wrong user name or password, or the account is deactivated.", "error")
    return render_template("auth/login.html")


@blueprint.post("/logout")
def logout():
    """Log the current user out, here and in every other copy of the session."""
    if current_user.is_authenticated:
        accounts.end_sessions(current_user)
    logout_user()
    return redirect(url_for("auth.login"))


@blueprint.route("/account/password", methods=["GET", "POST"])
@login_required
def password():
    """Let users change their own password; their other sessions end."""
    if request.method == "POST":
        try:
            if request.form.get("new_password") != request.form.get("confirm_password"):
                raise accounts.AccountError("the two new passwords differ")
            accounts.change_password(current_user, request.form.get("current_password", ""),
                                     request.form.get("new_password", ""))
            login_user(current_user._get_current_object())  # this browser stays in, with the new session version
            flash("Password changed.", "info")
            return redirect(url_for("pages.home"))
        except accounts.AccountError as error:
            flash(str(error).capitalize() + ".", "error")
    return render_template("auth/password.html", min_length=accounts.MIN_PASSWORD_LENGTH)


@blueprint.get("/account/tokens")
@login_required
def tokens():
    """List the API tokens the user may revoke (an admin: everyone's), never the tokens."""
    return _tokens_page()


@blueprint.post("/account/tokens")
@login_required
def create_token():
    """Make an API token for the current user and show it, in this response only."""
    try:
        token = accounts.create_api_token(current_user, request.form.get("label", ""),
                                          request.form.get("expires_days", type=int))
    except accounts.AccountError as error:
        flash(f"Token not made: {error}.", "error")
        return redirect(url_for("auth.tokens"))
    return _tokens_page(new_token=token)


@blueprint.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id):
    """Revoke one API token."""
    try:
        revoked = accounts.revoke_token(token_id, current_user)
        flash(f"Revoked token {revoked.label or revoked.id!r} of {revoked.user.username!r}.",
              "info")
    except accounts.AccountError as error:
        flash(f"Not revoked: {error}.", "error")
    return redirect(url_for("auth.tokens"))


def _tokens_page(new_token: str | None = None):
    """Render the token list (with a just-made token), never to be cached."""
    return (render_template("auth/tokens.html", tokens=accounts.visible_tokens(current_user),
                            new_token=new_token, max_days=accounts.MAX_TOKEN_DAYS), NO_STORE)
