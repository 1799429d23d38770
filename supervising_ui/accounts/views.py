"""Login, logout, password and API-token pages, and the admin's user list (admins only)."""
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from . import throttling, users
from .guard import admin_required, rotate_csrf_token, session_required

blueprint = Blueprint("accounts", __name__)

# Pages that show a secret must not be kept by a browser or proxy cache.
NO_STORE = {"Cache-Control": "no-store"}


def _safe_next(target: str | None) -> str:
    """Return target if it is a path on this site, else the home page (no open redirects)."""
    if target and target.startswith("/") and not target.startswith("//") and \
            target.isprintable() and "\\" not in target and not urlsplit(target).netloc:
        return target
    return url_for("web.home")


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    """Show the login form and log a user in (429 after too many failures)."""
    if request.method == "POST":
        try:
            user = throttling.log_in(request.form.get("username", ""),
                                         request.form.get("password", ""), request.remote_addr)
        except throttling.LoginThrottled as throttled:
            return _throttled("auth/login.html", throttled)
        if user is not None:
            login_user(user)
            rotate_csrf_token()  # a token seen before the login is worth nothing after it
            return redirect(_safe_next(request.args.get("next")))
        flash("Wrong user name or password, or the account is deactivated.", "error")
    return render_template("auth/login.html")


@blueprint.post("/logout")
def logout():
    """Log the current user out, here and in every other copy of the session."""
    if current_user.is_authenticated:
        users.end_sessions(current_user)
    logout_user()
    return redirect(url_for("accounts.login"))


def _throttled(template: str, throttled: throttling.LoginThrottled, **context):
    """Answer 429 with the form again, saying how many minutes to wait."""
    minutes = -(-throttled.retry_after // 60)
    flash(f"Too many failed logins for this account or from this address: "
          f"try again in {minutes} minute{'s' if minutes != 1 else ''}.", "error")
    return (render_template(template, **context), 429,
            {"Retry-After": str(throttled.retry_after)})


@blueprint.route("/account/password", methods=["GET", "POST"])
@login_required
@session_required
def password():
    """Let users change their own password; their other sessions end.

    Wrong current passwords count like failed logins (429 after too many).
    """
    if request.method == "POST":
        try:
            if request.form.get("new_password") != request.form.get("confirm_password"):
                raise users.AccountError("the two new passwords differ")
            throttling.change_password(current_user, request.form.get("current_password", ""),
                                       request.form.get("new_password", ""),
                                       request.remote_addr)
            login_user(current_user._get_current_object())  # this browser stays in, with the new session version
            flash("Password changed.", "info")
            return redirect(url_for("web.home"))
        except users.AccountError as error:
            flash(str(error).capitalize() + ".", "error")
        except throttling.LoginThrottled as throttled:
            return _throttled("auth/password.html", throttled,
                              min_length=users.MIN_PASSWORD_LENGTH)
    return render_template("auth/password.html", min_length=users.MIN_PASSWORD_LENGTH)


@blueprint.get("/account/tokens")
@login_required
def tokens():
    """List the API tokens the user may revoke (an admin: everyone's), never the tokens."""
    return _tokens_page()


@blueprint.post("/account/tokens")
@login_required
@session_required
def create_token():
    """Make an API token for the current user and show it, in this response only.

    Only a browser session may: a token cannot mint tokens that outlive its own revocation.
    """
    try:
        token = users.create_api_token(current_user, request.form.get("label", ""),
                                          request.form.get("expires_days", type=int))
    except users.AccountError as error:
        flash(f"Token not made: {error}.", "error")
        return redirect(url_for("accounts.tokens"))
    return _tokens_page(new_token=token)


@blueprint.post("/account/tokens/<int:token_id>/revoke")
@login_required
def revoke_token(token_id):
    """Revoke one API token."""
    try:
        revoked = users.revoke_token(token_id, current_user)
        flash(f"Revoked token {revoked.label or revoked.id!r} of {revoked.user.username!r}.",
              "info")
    except users.AccountError as error:
        flash(f"Not revoked: {error}.", "error")
    return redirect(url_for("accounts.tokens"))


def _tokens_page(new_token: str | None = None):
    """Render the token list (with a just-made token), never to be cached."""
    return (render_template("auth/tokens.html", tokens=users.visible_tokens(current_user),
                            new_token=new_token, max_days=users.MAX_TOKEN_DAYS), NO_STORE)


@blueprint.get("/admin/users")
@admin_required
def users_page():
    """The user list and the form that creates a user."""
    return render_template("admin/users.html", users=users.list_users())


@blueprint.post("/admin/users")
@admin_required
def create_user_view():
    """Create a user and show the generated password once, in this response only."""
    try:
        user, password = users.create_user(request.form.get("username", ""),
                                              role=request.form.get("role", "labeler"))
    except users.AccountError as error:
        flash(f"User not created: {error}.", "error")
        return redirect(url_for("accounts.users_page"))
    return render_template("admin/users.html", users=users.list_users(), new_user=user,
                           new_password=password), {"Cache-Control": "no-store"}


@blueprint.post("/admin/users/<int:user_id>/active")
@admin_required
def set_user_active(user_id):
    """Deactivate or reactivate a user."""
    return _user_edit(user_id, lambda user: users.set_active(
        user, request.form.get("active") == "1", current_user))


@blueprint.post("/admin/users/<int:user_id>/role")
@admin_required
def set_user_role(user_id):
    """Change a user's role."""
    return _user_edit(user_id, lambda user: users.set_role(
        user, request.form.get("role", ""), current_user))


def _user_edit(user_id: int, edit):
    """Run one change to a user, flash its outcome and go back to the user list."""
    try:
        user = users.get_user(user_id)
        edit(user)
        flash(f"Saved {user.username!r}: {user.role}, {'active' if user.active else 'deactivated'}.",
              "info")
    except users.AccountError as error:
        flash(f"Not saved: {error}.", "error")
    return redirect(url_for("accounts.users_page"))
