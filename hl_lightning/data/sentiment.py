"""An unverifiable task: one-sentence remarks about everyday topics, judged for warmth by VADER.

How the shipped files in ``hl_lightning/data/sentiment/`` are made (``python scripts/make_sentiment_data.py``,
seed 0, the defaults below):

- **Prompts.** ``"Write one sentence about <topic>."`` for every (place or thing, framing) of the lists below
  (``TOPICS`` x ``FRAMES``: 60 x 8 = 480 prompts), shuffled with ``random.Random(seed)``; the first 240 are the
  train split, the last 240 the held-out split (disjoint).
- **Offline data, far from the model's own answers.** A chosen completion is a warm templated sentence about the
  topic, a rejected one a cold templated sentence (``WARM`` / ``COLD``, picked at random per prompt). The
  judge scores every shipped chosen completion above its rejected one (tested).
- **Files** (JSON Lines, TRL "standard" formats; no ``answer`` column: nothing here is verifiable):
  ``pairs_{split}``, ``unpaired_{split}`` (chosen as desirable, rejected as undesirable), ``groups_{split}``
  (2 warm + 2 cold completions, rewards +1 / -1), ``prompts_{split}``.

The judge is ``hl_lightning.rewards.SentimentReward`` (VADER's compound score, in [-1, 1]). It rewards warm words,
not helpfulness or truth: see its docstring for its limits.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

DATA_DIR = Path(__file__).parent / "sentiment"
TOPICS = (
    "the morning commute",
    "a rainy Monday",
    "the local library",
    "a crowded train",
    "your neighbour's garden",
    "a long queue at the bank",
    "the first snow of winter",
    "a power cut",
    "a street market",
    "a broken umbrella",
    "the office kitchen",
    "a late bus",
    "a new bakery",
    "a traffic jam",
    "the city park",
    "a noisy restaurant",
    "an old bicycle",
    "a hospital waiting room",
    "the school playground",
    "a delayed flight",
    "a village fair",
    "a parking ticket",
    "a cup of coffee",
    "a Sunday afternoon",
    "the evening news",
    "a job interview",
    "a family dinner",
    "a rainy holiday",
    "a second-hand bookshop",
    "a team meeting",
    "a leaking roof",
    "the public swimming pool",
    "a long hike",
    "a cold shower",
    "a birthday party",
    "a thunderstorm",
    "an empty fridge",
    "a museum visit",
    "the weekly shopping",
    "a football match",
    "a slow internet connection",
    "a train station at night",
    "a new phone",
    "a power walk",
    "a dentist appointment",
    "a camping trip",
    "a quiet beach",
    "a full inbox",
    "a cooking class",
    "the town hall",
    "a lost key",
    "a summer festival",
    "a moving day",
    "a night shift",
    "a farmers' market",
    "a spring morning",
    "a crowded elevator",
    "a road trip",
    "a gym session",
    "a picnic",
)
FRAMES = (
    "{t}",
    "{t} in your town",
    "{t} last week",
    "{t} as a child",
    "{t} with friends",
    "{t} alone",
    "{t} in autumn",
    "{t} on a weekday",
)
WARM = (
    "I really love {t}; it always brightens my day.",
    "{T} is wonderful, and I feel lucky to enjoy it.",
    "What a delight {t} is: cheerful, kind and full of good moments.",
    "{T} makes me happy every single time.",
)
COLD = (
    "I really hate {t}; it always ruins my day.",
    "{T} is awful, and I feel miserable every time.",
    "What a misery {t} is: dreary, rude and full of bad moments.",
    "{T} makes me sad and angry every single time.",
)


def _say(template: str, topic: str) -> str:
    return template.format(t=topic, T=topic[0].upper() + topic[1:])


def _prompt_rows(rng: random.Random, topic: str) -> dict[str, list[dict]]:
    prompt = f"Write one sentence about {topic}."
    warm, cold = rng.sample(WARM, 2), rng.sample(COLD, 2)
    group = [(_say(w, topic), 1.0) for w in warm] + [(_say(c, topic), -1.0) for c in cold]
    rng.shuffle(group)
    return {
        "pairs": [{"prompt": prompt, "chosen": _say(warm[0], topic), "rejected": _say(cold[0], topic)}],
        "unpaired": [
            {"prompt": prompt, "completion": _say(warm[0], topic), "label": True},
            {"prompt": prompt, "completion": _say(cold[0], topic), "label": False},
        ],
        "groups": [{"prompt": prompt, "completions": [t for t, _ in group], "rewards": [r for _, r in group]}],
        "prompts": [{"prompt": prompt}],
    }


def make_rows(seed: int = 0, n_train: int = 240) -> dict[str, list[dict]]:
    """Every file's rows keyed by stem (``"pairs_train"``, ...): ``n_train`` train prompts, the rest held out."""
    rng = random.Random(seed)
    topics = [frame.format(t=topic) for topic in TOPICS for frame in FRAMES]
    rng.shuffle(topics)
    files: dict[str, list[dict]] = {}
    for split, chunk in (("train", topics[:n_train]), ("test", topics[n_train:])):
        for topic in chunk:
            for kind, rows in _prompt_rows(rng, topic).items():
                files.setdefault(f"{kind}_{split}", []).extend(rows)
    return files


def write_files(out_dir: str | Path = DATA_DIR, seed: int = 0, n_train: int = 240) -> list[Path]:
    """Write the ``*.jsonl`` files of :func:`make_rows` into ``out_dir`` and return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, rows in make_rows(seed, n_train).items():
        path = out / f"{stem}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        paths.append(path)
    return paths
