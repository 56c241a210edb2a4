"""Broker URLs are redacted before they are printed, logged or recorded: Redis and AMQP alike."""

from __future__ import annotations

import pytest

from scanner.cluster.urls import redact_argv, redact_text, redact_url


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:hunter2@broker:6379/0", "redis://:***@broker:6379/0"),
        ("rediss://scanner:hunter2@broker:6380/0", "rediss://scanner:***@broker:6380/0"),
        ("redis+socket:///run/redis.sock", "redis+socket:///run/redis.sock"),
        ("amqp://scanner:hunter2@rabbit:5672/prod", "amqp://scanner:***@rabbit:5672/prod"),
        ("amqps://scanner:hunter2@rabbit//", "amqps://scanner:***@rabbit//"),
        ("amqp://guest:guest@127.0.0.1:5672//", "amqp://guest:***@127.0.0.1:5672//"),
        ("amqp://rabbit:5672/prod", "amqp://rabbit:5672/prod"),
        (
            "amqp://u:hunter2@a:5672//;amqp://u:hunter3@b:5672//",
            "amqp://u:***@a:5672//;amqp://u:***@b:5672//",
        ),
    ],
)
def test_a_broker_url_loses_its_password_and_keeps_the_rest(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_a_message_loses_every_password_of_the_url_plain_or_encoded() -> None:
    url = "amqp://u:p%40ss@a//;amqp://u:hunter3@b//"
    text = "login refused for u:p%40ss at a (p@ss), then u:hunter3 at b"
    redacted = redact_text(text, url)
    assert redacted == "login refused for u:*** at a (***), then u:*** at b"


def test_a_recorded_command_line_has_its_amqp_broker_redacted() -> None:
    argv = ["scan", "--broker", "amqp://u:hunter2@rabbit//", "--broker=amqp://u:hunter2@r2//"]
    assert redact_argv(argv) == [
        "scan",
        "--broker",
        "amqp://u:***@rabbit//",
        "--broker=amqp://u:***@r2//",
    ]
