"""The user's catalog file: every mistake in an entry is that model's unavailable reason, naming the
file, the entry, the key and the value; a file that is not TOML stops the start with one line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from imagehub.catalog.catalog import Catalog
from imagehub.config import load_settings
from imagehub.errors import ConfigError, NotFound


def _catalog(tmp_path: Path, text: str) -> Catalog:
    (tmp_path / "models.toml").write_text(text)
    return Catalog.load(load_settings(data_dir=tmp_path))


def _entry(source: Path, extra: str = "", defaults: str = "") -> str:
    device = "" if "device" in extra else 'device = "cpu"\n'
    text = f'[models.my-sd]\nsource = "{source}"\n{device}{extra}\n'
    return text + (f"[models.my-sd.defaults]\n{defaults}\n" if defaults else "")


def test_a_good_entry_serves(tmp_path: Path, tiny_sd_dir: Path) -> None:
    entry = _catalog(tmp_path, _entry(tiny_sd_dir, defaults="num_inference_steps = 1")).get("my-sd")
    assert entry.available, entry.unavailable_reason
    assert entry.schema.properties["num_inference_steps"]["default"] == 1


@pytest.mark.parametrize("extra,defaults,words", [
    ("compille = true", "", ["compille", "did you mean 'compile'"]),
    ('channels_last = "yes"', "", ["channels_last", "'yes'", "true or false"]),
    ('dtype = "float17"', "", ["dtype", "'float17'", "bf16"]),
    ('device = "gpu"', "", ["device", "'gpu'", "cuda, mps, cpu"]),
    ('created = "yesterday"', "", ["created", "'yesterday'", "whole number"]),
    ("batch_buckets = 8", "", ["batch_buckets", "8", "a list"]),
    ("max_batch_size = 0", "", ["max_batch_size", "positive whole number", "not 0"]),
    ("", 'num_inference_steps = "four"', ["defaults", "num_inference_steps", "'four'", "integer"]),
    ("", "steps = 4", ["defaults", "steps", "unknown field"]),
], ids=["typo", "bool", "dtype", "device", "created", "buckets", "max-batch", "default-type",
        "default-name"])
def test_a_mistake_in_an_entry_is_its_unavailable_reason(tmp_path: Path, tiny_sd_dir: Path,
                                                         extra: str, defaults: str,
                                                         words: list[str]) -> None:
    entry = _catalog(tmp_path, _entry(tiny_sd_dir, extra, defaults)).get("my-sd")
    reason = str(entry.unavailable_reason)
    assert not entry.available and reason.startswith("models.toml [models.my-sd]"), reason
    for word in words:
        assert word in reason, (word, reason)
    assert "'four'" not in str(entry.schema.document)  # a broken card publishes no defaults


def test_a_diffusers_entry_batches_up_to_its_own_max_or_the_servers(tmp_path: Path,
                                                                    tiny_sd_dir: Path) -> None:
    (tmp_path / "models.toml").write_text(
        _entry(tiny_sd_dir) + _entry(tiny_sd_dir, "max_batch_size = 2").replace("my-sd", "pairs"))
    catalog = Catalog.load(load_settings(data_dir=tmp_path, max_batch_size=16))

    assert catalog.get("my-sd").engine.max_batch_size == 16
    assert catalog.get("pairs").engine.max_batch_size == 2


def test_an_entry_without_source_or_with_a_bad_id_says_so(tmp_path: Path) -> None:
    catalog = _catalog(tmp_path, '[models.no-source]\ndevice = "cpu"\n\n[models."my sd/v2"]\nsource = "x"\n')
    assert "source: missing" in str(catalog.get("no-source").unavailable_reason)
    assert "not a model id" in str(catalog.get("my sd/v2").unavailable_reason)


def test_a_file_that_is_not_toml_names_itself(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"models\.toml: not valid TOML \(.*line 2"):
        _catalog(tmp_path, '[models.my-sd]\nsource = "/x\n')


def test_replacing_a_built_in_and_unread_tables_are_logged(tmp_path: Path, tiny_sd_dir: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="imagehub.catalog.catalog"):
        catalog = _catalog(tmp_path, _entry(tiny_sd_dir).replace("my-sd", "imagehub-tiny")
                           + '[model.typo]\nsource = "x"\n')
    assert catalog.get("imagehub-tiny").card.origin == "models.toml [models.imagehub-tiny]"
    assert "replaces the built-in model imagehub-tiny" in caplog.text
    assert "[model] is not read" in caplog.text


def test_an_entry_added_to_the_file_is_taken_in_and_a_changed_one_waits(
        tmp_path: Path, tiny_sd_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    catalog = _catalog(tmp_path, _entry(tiny_sd_dir))
    first = catalog.get("my-sd")
    with pytest.raises(NotFound):
        catalog.get("late")
    path = tmp_path / "models.toml"
    path.write_text(_entry(tiny_sd_dir, 'display_name = "renamed"')
                    + f'[models.late]\nsource = "{tiny_sd_dir}"\ndevice = "cpu"\n')
    with caplog.at_level(logging.INFO, logger="imagehub.catalog.catalog"):
        late = catalog.get("late")  # an id it did not know: the changed file is read again
    assert late.available, late.unavailable_reason
    assert catalog.get("my-sd") is first and first.card.display_name == "my-sd"  # not swapped
    assert "model late added from models.toml [models.late]" in caplog.text
    assert "models.toml [models.my-sd] changed; the change is read when the server restarts" \
        in caplog.text
    path.write_text("not [ toml")
    assert {e.id for e in catalog.all()} >= {"my-sd", "late"}  # a broken file changes nothing
    assert "not valid TOML" in caplog.text
