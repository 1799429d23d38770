"""Accounts: login/logout, password changes, roles, API tokens and the login-everywhere guard."""
import hashlib
import secrets
from functools import wraps
from urllib.parse import urlsplit

from flask import (Blueprint, Flask, abort, flash, jsonify, redirect, render_template, request,
                   url_for)
from flask_login import current_user, login_required, login_user, logout_user
from sqlalchemy import bindparam, select

from .extensions import csrf, db, login_manager
from .models import ROLES, ApiToken, User, utcnow

blueprint = Blueprint("auth", __name__)

# Endpoints reachable without a session; everything else needs one.
PUBLIC_ENDPOINTS = {"auth.login", "static"}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
MIN_PASSWORD_LENGTH = 8


class AccountError(ValueError):
    """A request about accounts that cannot be carried out, with a message for the user."""


def init_app(app: Flask) -> None:
    """Bind flask-login and CSRF, and guard every endpoint but the public ones."""
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    app.config["WTF_CSRF_CHECK_DEFAULT"] = False  # checked in require_login, after token auth
    csrf.init_app(app)
    app.before_request(require_login)
    app.register_blueprint(blueprint)


@login_manager.user_loader
def load_user(user_id: str):
    """Return the active user of a session cookie, or None."""
    user = db.session.get(User, int(user_id))
    return user if user is not None and user.active else None


# Where a request keeps the user of its token once looked up.
_TOKEN_USER = "supervising_ui.token_user"
# Built once: every API request runs it.
_USER_OF_TOKEN = select(User).join(ApiToken, ApiToken.user_id == User.id).where(
    ApiToken.token_digest == bindparam("digest"), ApiToken.revoked_at.is_(None),
    User.active.is_(True))


@login_manager.request_loader
def load_user_from_token(req):
    """Return the active user whose API token is in the Authorization header, or None."""
    token = bearer_token(req)
    if token is None:
        return None
    if _TOKEN_USER not in req.environ:  # once per request: the guard and flask-login both ask
        req.environ[_TOKEN_USER] = db.session.scalar(_USER_OF_TOKEN,
                                                     {"digest": token_digest(token)})
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


def token_digest(token: str) -> str:
    """Return the SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(user: User) -> str:
    """Create and store a new API token for user; return the token (shown once)."""
    token = secrets.token_urlsafe(32)
    db.session.add(ApiToken(user_id=user.id, token_digest=token_digest(token)))
    db.session.commit()
    return token


def revoke_api_tokens(user: User) -> int:
    """Revoke every live token of user; return how many."""
    tokens = db.session.scalars(select(ApiToken).where(
        ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))).all()
    for api_token in tokens:
        api_token.revoked_at = utcnow()
    db.session.commit()
    return len(tokens)


def generate_password() -> str:
    """Return a fresh random password for a new account."""
    return secrets.token_urlsafe(12)


def create_user(username: str, role: str = "labeler", password: str | None = None):
    """Create a user; return (user, password), the password generated when none is given."""
    username = username.strip()
    if not username:
        raise AccountError("a user name is required")
    if role not in ROLES:
        raise AccountError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if db.session.scalar(select(User).where(User.username == username)) is not None:
        raise AccountError(f"user {username!r} already exists")
    password = password if password is not None else generate_password()
    check_password_strength(password)
    user = User(username=username, role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user, password


def check_password_strength(password: str) -> None:
    """Refuse passwords too short to be safe."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")


def change_password(user: User, current: str, new: str) -> None:
    """Set a new password for user after checking the current one."""
    if not user.check_password(current):
        raise AccountError("the current password is wrong")
    check_password_strength(new)
    user.set_password(new)
    db.session.commit()


def authenticate(username: str, password: str) -> User | None:
    """Return the active user with these credentials, or None."""
    user = db.session.scalar(select(User).where(User.username == username.strip()))
    if user is None or not user.active or not user.check_password(password):
        return None
    return user


def _safe_next(target: str | None) -> str:
    """Return target if it is a path on this site, else the home page (no open redirects)."""
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("pages.home")


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form and log a user in."""
    if request.method == "POST":
        user = authenticate(request.form.get("username", ""), request.form.get("password", ""))
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
                raise AccountError("the two new passwords differ")
            change_password(current_user, request.form.get("current_password", ""),
                            request.form.get("new_password", ""))
            flash("Password changed.", "info")
            return redirect(url_for("pages.home"))
        except AccountError as error:
            flash(str(error).capitalize() + ".", "error")
    return render_template("auth/password.html")
