"""Security headers on every response, and Secure cookies with HSTS behind HTTPS.

The Content-Security-Policy allows scripts and styles from this site's static files only (no
inline ``<script>``, ``style=`` or event attributes in the templates), images also from
``data:`` and ``blob:`` URLs (the labeling canvas), and no framing by any site.
With ``SECURE_COOKIES`` (``SUPERVISING_UI_SECURE_COOKIES=1``, for a server reached over
HTTPS) the session and remember-me cookies get the ``Secure`` flag and responses carry
``Strict-Transport-Security``.
"""
from flask import Flask, current_app

CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "img-src 'self' data: blob:",
    "object-src 'none'",
    "frame-ancestors 'none'",
    "base-uri 'self'",
    "form-action 'self'",
))
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}
STRICT_TRANSPORT_SECURITY = "max-age=31536000"  # one year


def init_app(app: Flask) -> None:
    """Mark the cookies Secure when configured, and add the headers to every response."""
    if app.config["SECURE_COOKIES"]:
        app.config.update(SESSION_COOKIE_SECURE=True, REMEMBER_COOKIE_SECURE=True)
    app.after_request(add_security_headers)


def add_security_headers(response):
    """Add the security headers a response does not set itself."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if current_app.config["SECURE_COOKIES"]:
        response.headers.setdefault("Strict-Transport-Security", STRICT_TRANSPORT_SECURITY)
    return response
