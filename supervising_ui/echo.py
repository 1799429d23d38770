"""How user input is quoted back in messages (never more than a short prefix of it), and how
a console command stops with one such message."""
import click

ECHO_CHARACTERS = 40


def shorten(text, limit: int = ECHO_CHARACTERS) -> str:
    """Return at most limit characters of text, marked with '...' when cut (for messages)."""
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "..."


def fail(message: str) -> None:
    """Stop a console command with a message for the user and exit status 1."""
    raise click.ClickException(message)
