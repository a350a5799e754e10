"""Settings from the environment: a bad value is one ConfigError naming the variable and the value;
a variable that looks like a setting but is none is logged with what it may have meant."""

from __future__ import annotations

import logging

import pytest

from imagehub.config import hide_password, load_settings
from imagehub.errors import ConfigError


@pytest.mark.parametrize("name,value,words", [
    ("IMAGEHUB_PORT", "abc", ["IMAGEHUB_PORT='abc'", "integer"]),
    ("IMAGEHUB_PORT", "99999", ["IMAGEHUB_PORT='99999'", "65535"]),
    ("IMAGEHUB_WORKER_CONCURRENCY", "0", ["IMAGEHUB_WORKER_CONCURRENCY='0'", "1"]),
    ("IMAGEHUB_MAX_BATCH_SIZE", "-1", ["IMAGEHUB_MAX_BATCH_SIZE='-1'"]),
    ("IMAGEHUB_MAX_ATTEMPTS", "0", ["IMAGEHUB_MAX_ATTEMPTS='0'"]),
    ("IMAGEHUB_URL_TTL_SECONDS", "-5", ["IMAGEHUB_URL_TTL_SECONDS='-5'"]),
    ("IMAGEHUB_MODEL_MEMORY_BUDGET_GB", "-1", ["IMAGEHUB_MODEL_MEMORY_BUDGET_GB='-1'"]),
    ("IMAGEHUB_RATE_LIMIT_PER_MINUTE", "-1", ["IMAGEHUB_RATE_LIMIT_PER_MINUTE='-1'"]),
    ("IMAGEHUB_PUBLIC_URL", "images.example.com", ["IMAGEHUB_PUBLIC_URL='images.example.com'",
                                                   "http(s)://host[:port][/path]"]),
    ("IMAGEHUB_PUBLIC_URL", "ftp://images.example.com", ["IMAGEHUB_PUBLIC_URL='ftp://"]),
    ("IMAGEHUB_PUBLIC_URL", "https://", ["IMAGEHUB_PUBLIC_URL='https://'", "with a host"]),
    ("IMAGEHUB_PUBLIC_URL", "https://h:99999", ["IMAGEHUB_PUBLIC_URL='https://h:99999'", "Port"]),
    ("IMAGEHUB_PUBLIC_URL", "https://h/x?y=1", ["no user, query or fragment"]),
    ("IMAGEHUB_FETCH_ALLOW", "images.internal, 10.0.0.0/88",
     ["IMAGEHUB_FETCH_ALLOW='images.internal, 10.0.0.0/88'", "'10.0.0.0/88' looks like an address"]),
    ("IMAGEHUB_FETCH_ALLOW", "10.0.0.300", ["'10.0.0.300' looks like an address"]),
    ("IMAGEHUB_FETCH_ALLOW", "fd00::/129", ["'fd00::/129' looks like an address"]),
    ("IMAGEHUB_FETCH_ALLOW", "images.internal:8080", ["'images.internal:8080' looks like"]),
    ("IMAGEHUB_DATABASE_URL", "nope", ["IMAGEHUB_DATABASE_URL='nope'", "not a SQLAlchemy URL"]),
    ("IMAGEHUB_LOG_LEVEL", "verbose", ["IMAGEHUB_LOG_LEVEL='verbose'", "'debug'"]),
    ("IMAGEHUB_ACCESS_LOG", "sometimes", ["IMAGEHUB_ACCESS_LOG='sometimes'"]),
])
def test_a_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str,
                                        words: list[str]) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as raised:
        load_settings()
    for word in words:
        assert word in str(raised.value), (word, str(raised.value))


def test_a_misspelt_variable_is_logged_with_the_setting_it_may_mean(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("IMAGEHUB_PRELOAD_MODEL", "x")
    monkeypatch.setenv("IMAGEHUB_API_KEY", "ih_client_side")  # the CLI's and client's: not a typo
    with caplog.at_level(logging.WARNING, logger="imagehub.config"):
        load_settings()
    assert "IMAGEHUB_PRELOAD_MODEL is not an imagehub setting" in caplog.text
    assert "did you mean IMAGEHUB_PRELOAD_MODELS" in caplog.text
    assert "IMAGEHUB_API_KEY" not in caplog.text


def test_a_short_signing_secret_is_refused_without_showing_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMAGEHUB_SIGNING_SECRET", "hunter2hunter2")
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value).startswith("IMAGEHUB_SIGNING_SECRET (not shown, 14 characters): "
                                        "too short: at least 16 characters"), str(raised.value)
    assert "hunter2" not in str(raised.value)
    monkeypatch.setenv("IMAGEHUB_SIGNING_SECRET", "hunter2hunter2hu")
    settings = load_settings()
    assert settings.secret() == "hunter2hunter2hu" and "hunter2" not in repr(settings)


def test_a_database_url_error_hides_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    for url, shown in (("postgres://me:hunter2@db/hub", "postgres://me:***@db/hub"),
                       ("postgresql://me:hunter2@db:port/hub", "postgresql://me:***@db:port/hub")):
        monkeypatch.setenv("IMAGEHUB_DATABASE_URL", url)
        with pytest.raises(ConfigError) as raised:
            load_settings()
        assert f"IMAGEHUB_DATABASE_URL={shown!r}" in str(raised.value), str(raised.value)
        assert "hunter2" not in str(raised.value)


@pytest.mark.parametrize("name,value", [
    ("IMAGEHUB_PUBLIC_URL", "https://images.example.com"),
    ("IMAGEHUB_PUBLIC_URL", "http://10.0.0.5:8080/imagehub/"),
    ("IMAGEHUB_PUBLIC_URL", "http://[::1]:8000"),
    ("IMAGEHUB_PUBLIC_URL", ""),
    ("IMAGEHUB_FETCH_ALLOW", "10.0.0.0/8, images.internal, .corp.example, 192.168.1.7, fd00::/8, [::1]"),
    ("IMAGEHUB_SIGNING_SECRET", ""),
    ("IMAGEHUB_DATABASE_URL", "sqlite:////tmp/imagehub-test.db"),
    ("IMAGEHUB_LOG_LEVEL", "DEBUG"),
])
def test_good_values_pass(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    load_settings()


def test_hide_password_renders_as_sqlalchemy_does() -> None:
    assert hide_password("postgresql+psycopg://me:p%40ss@db:5432/hub") == \
        "postgresql+psycopg://me:***@db:5432/hub"
    assert hide_password("sqlite:////srv/imagehub/imagehub.db") == "sqlite:////srv/imagehub/imagehub.db"
