"""The web shell around the domains: request checks, security headers, error pages, the home
page and the gunicorn settings."""
