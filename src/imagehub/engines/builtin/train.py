"""``imagehub train builtin``: write captions, encode them once, fit the head, save the weights.

Training never draws a pixel: it teaches the head to read the scene a caption describes (the
labels the caption writer records), with soft targets for what a caption leaves open so the head
learns the prior it should sample from. The same seed, sizes and thread count give the same
weights bit for bit.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .captions import Caption, CaptionWriter
from .encoder import ENCODER_PACKAGE, MAX_TOKENS, TextEncoder
from .model import CLASS_NAMES, HEADS, HeadConfig, build_head

if TYPE_CHECKING:
    import torch

WEIGHTS_FILE = "imagehub-tiny.safetensors"
CONFIG_FILE = "config.json"
SHIPPED_SEED = 1234
PRIORS: dict[str, list[float]] = {
    "a_size": [0.1, 0.25, 0.3, 0.25, 0.1],
    "b_size": [0.1, 0.25, 0.3, 0.25, 0.1],
    "bg_kind": [0.6, 0.2, 0.2],
}
"""What an open attribute is drawn from, where it is not uniform."""


@dataclass
class TrainSettings:
    seed: int = SHIPPED_SEED
    captions: int = 16000
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 2e-3
    weight_decay: float = 0.01
    threads: int = 1
    heldout_captions: int = 1500
    head: HeadConfig = field(default_factory=HeadConfig)


def train(
    out_dir: Path,
    settings: TrainSettings | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Train imagehub-tiny into ``out_dir`` (weights + config.json); returns the config."""
    import torch

    settings = settings or TrainSettings()
    threads_before = torch.get_num_threads()
    torch.set_num_threads(settings.threads)
    try:
        return _train(Path(out_dir), settings, log)
    finally:
        torch.set_num_threads(threads_before)


def _train(out_dir: Path, settings: TrainSettings, log: Callable[[str], None]) -> dict[str, Any]:
    import torch

    started = time.perf_counter()
    torch.manual_seed(settings.seed)
    rng = np.random.default_rng(settings.seed)

    # 1. Write captions (train and held-out phrasings) from seeded scene graphs.
    writer = CaptionWriter(rng)
    captions = [writer.caption() for _ in range(settings.captions)]
    held_writer = CaptionWriter(np.random.default_rng(settings.seed + 1), heldout=True)
    held = [held_writer.caption() for _ in range(settings.heldout_captions)]

    # 2. Encode every distinct caption once with MiniLM; keep token states as float16.
    encoder = TextEncoder()
    texts = sorted({c.text for c in captions} | {c.text for c in held})
    log(f"encoding {len(texts)} distinct captions with MiniLM")
    cache = encode_all(encoder, texts)
    log(f"encoded in {time.perf_counter() - started:.0f}s")

    # 3. Fit the head: labels say what each caption asks, word tags say where it says it.
    head = build_head(settings.head)
    rows = [cache[c.text][0] for c in captions]
    tags = [token_tags(c, cache[c.text][1]) for c in captions]
    targets, weights = label_tensors(captions)
    fit(head, rows, tags, targets, weights, settings, log)

    # 4. Check it on held-out phrasings (text level), save.
    accuracy = text_accuracy(head, [cache[c.text][0] for c in held], held)
    log("held-out caption accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in accuracy.items()))
    config = {
        "name": "imagehub-tiny",
        "format": 1,
        "head": settings.head.to_dict(),
        "heads": {name: list(spec) for name, spec in HEADS.items()},
        "classes": CLASS_NAMES,
        "encoder": {"package": ENCODER_PACKAGE, "max_tokens": MAX_TOKENS},
        "training": {
            "seed": settings.seed, "captions": settings.captions, "epochs": settings.epochs,
            "batch_size": settings.batch_size, "learning_rate": settings.learning_rate,
            "threads": settings.threads, "distinct_captions": len(texts),
            "wall_time_s": round(time.perf_counter() - started, 1),
            "heldout_caption_accuracy": {k: round(v, 4) for k, v in accuracy.items()},
        },
    }
    save(head, config, out_dir)
    log(f"saved {out_dir / WEIGHTS_FILE} in {config['training']['wall_time_s']}s")
    return config


def encode_all(encoder: TextEncoder, texts: list[str], chunk: int = 256
               ) -> dict[str, tuple[torch.Tensor, list[tuple[int, int]]]]:
    """caption -> (token states ``[length, 384]`` in float16, token character offsets)."""
    order = sorted(texts, key=len)
    cache = {}
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        states, mask = encoder.encode(part)
        offsets = encoder.offsets(part)
        for text, s, m, o in zip(part, states, mask, offsets):
            cache[text] = (s[: int(m.sum())].half(), o)
    return cache


def token_tags(caption: Caption, offsets: list[tuple[int, int]]) -> torch.Tensor:
    """``[length, heads]`` booleans: token i is (part of) the words that say head h."""
    import torch

    tags = torch.zeros(len(offsets), len(HEADS), dtype=torch.bool)
    for h, name in enumerate(HEADS):
        for a, b in caption.spans.get(name, []):
            for i, (s, e) in enumerate(offsets):
                if e > s and s < b and e > a:
                    tags[i, h] = True
    return tags


def attention_targets(tags: list[torch.Tensor], length: int) -> torch.Tensor:
    """``[n, length + 1, heads]``: uniform over a head's tagged tokens, else all on "unsaid"."""
    import torch

    out = torch.zeros(len(tags), length + 1, len(HEADS))
    for i, t in enumerate(tags):
        out[i, : t.shape[0]] = t.float()
    counts = out.sum(1, keepdim=True)
    out[:, length:, :] = (counts[:, :, :] == 0).float()
    return out / out.sum(1, keepdim=True)


def label_tensors(captions: list[Caption]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Soft targets ``[n, k]`` and loss weights ``[n]`` per head."""
    import torch

    targets, weights = {}, {}
    for name, (_, k) in HEADS.items():
        t = np.zeros((len(captions), k), dtype=np.float32)
        w = np.zeros(len(captions), dtype=np.float32)
        prior = np.array(PRIORS.get(name, [1.0 / k] * k), dtype=np.float32)
        for i, cap in enumerate(captions):
            if name not in cap.labels.values:
                continue
            value = cap.labels.values[name]
            w[i] = 1.0
            if value is None:
                t[i] = prior
            elif isinstance(value, tuple):
                t[i, list(value)] = 1.0 / len(value)
            else:
                t[i, value] = 1.0
        targets[name], weights[name] = torch.from_numpy(t), torch.from_numpy(w)
    return targets, weights


def pad(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack ragged token states into ``[n, length, 384]`` float32 plus a mask."""
    import torch

    # Few distinct shapes: every new one costs the CPU kernels a slow first call.
    length = min(MAX_TOKENS, -(-max(r.shape[0] for r in rows) // 16) * 16)
    states = torch.zeros(len(rows), length, rows[0].shape[1])
    mask = torch.zeros(len(rows), length, dtype=torch.bool)
    for i, r in enumerate(rows):
        states[i, : r.shape[0]] = r.float()
        mask[i, : r.shape[0]] = True
    return states, mask


def loss_fn(logp: dict[str, torch.Tensor], scores: torch.Tensor, targets: dict[str, torch.Tensor],
            weights: dict[str, torch.Tensor], attention: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each attribute against its (soft) label, plus of each attention
    against the tagged words."""
    import torch

    total = torch.zeros(())
    for name, out in logp.items():
        ce = -(targets[name] * out).sum(-1)
        total = total + (ce * weights[name]).sum() / len(out)
    log_attention = torch.log_softmax(scores, dim=1).clamp_min(-1e4)
    return total - (attention * log_attention).sum() / len(scores)


def fit(head: torch.nn.Module, rows: list[torch.Tensor], tags: list[torch.Tensor],
        targets: dict, weights: dict, settings: TrainSettings, log: Callable[[str], None]) -> None:
    import torch

    generator = torch.Generator().manual_seed(settings.seed)
    steps_per_epoch = (len(rows) + settings.batch_size - 1) // settings.batch_size
    optimizer = torch.optim.AdamW(head.parameters(), lr=settings.learning_rate,
                                  weight_decay=settings.weight_decay)
    total = steps_per_epoch * settings.epochs
    warmup = max(1, total // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: min((step + 1) / warmup, 0.5 * (1 + math.cos(math.pi * step / total))),
    )
    head.train()
    for epoch in range(settings.epochs):
        tick = time.perf_counter()
        order = torch.randperm(len(rows), generator=generator)
        running = 0.0
        for step in range(steps_per_epoch):
            index = order[step * settings.batch_size:(step + 1) * settings.batch_size]
            states, mask = pad([rows[i] for i in index.tolist()])
            attention = attention_targets([tags[i] for i in index.tolist()], states.shape[1])
            logp, scores = head(states, mask)
            loss = loss_fn(logp, scores, {k: v[index] for k, v in targets.items()},
                           {k: v[index] for k, v in weights.items()}, attention)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            running += float(loss.detach())
        log(f"epoch {epoch + 1}/{settings.epochs}: loss {running / steps_per_epoch:.4f} "
            f"({time.perf_counter() - tick:.0f}s)")
    head.eval()


def text_accuracy(head: torch.nn.Module, rows: list[torch.Tensor],
                  captions: list[Caption]) -> dict[str, float]:
    """Share of fixed (integer) labels the head's most likely class gets right, per head."""
    import torch

    hits: dict[str, list[bool]] = {name: [] for name in HEADS}
    with torch.inference_mode():
        for start in range(0, len(rows), 256):
            states, mask = pad(rows[start:start + 256])
            logits, _ = head(states, mask)
            for name, out in logits.items():
                best = out.argmax(-1).tolist()
                for cap, guess in zip(captions[start:start + 256], best):
                    value = cap.labels.values.get(name)
                    if isinstance(value, int):
                        hits[name].append(value == guess)
    return {name: float(np.mean(h)) for name, h in hits.items() if h}


def save(head: torch.nn.Module, config: dict[str, Any], out_dir: Path) -> None:
    from safetensors.torch import save_file

    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous() for k, v in head.state_dict().items()}
    save_file(tensors, str(out_dir / WEIGHTS_FILE), metadata={"name": "imagehub-tiny"})
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
