"""Training on a tiny budget gives weights that load and draw, and the same seed gives the same
weights."""

from __future__ import annotations

from pathlib import Path

from imagehub.engines.base import EngineRequest, no_progress
from imagehub.engines.builtin.engine import BuiltinEngine
from imagehub.engines.builtin.model import HeadConfig
from imagehub.engines.builtin.train import CONFIG_FILE, WEIGHTS_FILE, TrainSettings, train


def tiny(seed: int) -> TrainSettings:
    return TrainSettings(seed=seed, captions=96, epochs=1, batch_size=32, heldout_captions=16,
                         threads=1, head=HeadConfig(dim=32, encoder_layers=1))


def test_tiny_training_loads_runs_and_reproduces(tmp_path: Path) -> None:
    logs: list[str] = []
    config = train(tmp_path / "one", tiny(seed=3), log=logs.append)
    assert (tmp_path / "one" / WEIGHTS_FILE).is_file()
    assert (tmp_path / "one" / CONFIG_FILE).is_file()
    assert config["training"]["seed"] == 3
    assert any(line.startswith("epoch 1/1") for line in logs)

    engine = BuiltinEngine(tmp_path / "one")
    assert engine.availability() is None
    result = engine.generate(
        EngineRequest(prompt="a red circle", width=320, height=192, seed=0, num_images=2),
        no_progress,
    )
    assert [im.size for im in result.images] == [(320, 192), (320, 192)]

    train(tmp_path / "two", tiny(seed=3), log=logs.append)
    same = (tmp_path / "one" / WEIGHTS_FILE).read_bytes() == (tmp_path / "two" / WEIGHTS_FILE).read_bytes()
    assert same, "same seed and settings must give the same weights"
    assert BuiltinEngine(tmp_path / "two").fingerprint() == engine.fingerprint()
