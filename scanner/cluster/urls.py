"""Broker URLs without their secrets: safe to print, log or record (no Celery import)."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import unquote, urlsplit, urlunsplit

_URL_FLAGS = ("--broker",)


def redact_url(url: str) -> str:
    """The URL without its password (the user name kept); each of Celery's failover URLs
    (`amqp://u:p@a//;amqp://u:p@b//`) redacted."""
    if ";" in url:
        return ";".join(redact_url(part) for part in url.split(";"))
    try:
        parts = urlsplit(url)
        password, user, host, port = parts.password, parts.username, parts.hostname, parts.port
    except ValueError:
        return "<unparsable URL>"
    if password is None and "@" not in parts.netloc:
        return url
    where = f"{host or ''}{f':{port}' if port else ''}"
    netloc = f"{user or ''}:***@{where}" if (user or password) else where
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def redact_text(text: str, url: str) -> str:
    """A message with the URL's passwords (of every failover URL) taken out wherever they
    appear, plain or percent-encoded."""
    for part in url.split(";"):
        try:
            parts = urlsplit(part)
            raw = parts.netloc.rpartition("@")[0].partition(":")[2]
        except ValueError:
            continue
        for secret in sorted({raw, unquote(raw)} - {""}, key=len, reverse=True):
            text = text.replace(secret, "***")
    return text


def redact_argv(argv: Sequence[str]) -> list[str]:
    """A command line with every --broker URL redacted (it is recorded in the results)."""
    out: list[str] = []
    redact_next = False
    for item in argv:
        if redact_next:
            out.append(redact_url(item))
            redact_next = False
        elif item in _URL_FLAGS:
            out.append(item)
            redact_next = True
        elif item.startswith("--broker="):
            out.append("--broker=" + redact_url(item.split("=", 1)[1]))
        else:
            out.append(item)
    return out
