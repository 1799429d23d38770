"""Login, logout and password views, the login-everywhere guard and admin_required.

The account rules themselves (passwords, roles, tokens) live in accounts.py.
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

from . import accounts
from .extensions import csrf, login_manager

blueprint = Blueprint("auth", __name__)

# Endpoints reachable without a session; everything else needs one.
PUBLIC_ENDPOINTS = {"auth.login", "static"}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# Where a request keeps the user of its token once looked up.
_TOKEN_USER = "supervising_ui.token_user"


def init_app(app: Flask) -> None:
    """Bind flask-login and CSRF, and guard every endpoint but the public ones."""
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # checked in require_login, after token auth
    csrf.init_app(app)
    app.before_request(require_login)


@login_manager.user_loader
def load_user(user_id: str):
    """Return the active user of a session cookie, or None."""
    return accounts.active_user(int(user_id))


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
    """Refuse anonymous requests (401 for the API, login page otherwise); check CSRF for cookies."""
    if request.endpoint == "static":
        return None
    uses_token = bearer_token(request) is not None
    if request.endpoint not in PUBLIC_ENDPOINTS:
        token_refused = uses_token and load_user_from_token(request) is None
        if token_refused or not current_user.is_authenticated:
            if uses_token or request.path.startswith("/api/"):
                return jsonify(error="authentication required: log in or send a valid API token"), 401
            return login_manager.unauthorized()
    if not uses_token and request.method not in SAFE_METHODS:
        csrf.protect()  # a token request carries no cookie, so it cannot be forged cross-site
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
    """Show the login form and log a user in."""
    if request.method == "POST":
        user = accounts.authenticate(request.form.get("username", ""),
                                     request.form.get("password", ""))
        if user is not None:
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        flash("Wrong user name or password, or the account is deactivated.", "error")
    return render_template("auth/login.html")


@blueprint.post("/logout")
def logout():
    """Log the current user out."""
    logout_user()
    return redirect(url_for("auth.login"))


@blueprint.route("/account/password", methods=["GET", "POST"])
@login_required
def password():
    """Let users change their own password."""
    if request.method == "POST":
        try:
            if request.form.get("new_password") != request.form.get("confirm_password"):
                raise accounts.AccountError("the two new passwords differ")
            accounts.change_password(current_user, request.form.get("current_password", ""),
                                     request.form.get("new_password", ""))
            flash("Password changed.", "info")
            return redirect(url_for("pages.home"))
        except accounts.AccountError as error:
            flash(str(error).capitalize() + ".", "error")
    return render_template("auth/password.html")
