"""Settings from the environment: a bad value is one ConfigError naming the variable and the value;
a variable that looks like a setting but is none is logged with what it may have meant."""

from __future__ import annotations

import logging

import pytest

from imagehub.config import load_settings
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
