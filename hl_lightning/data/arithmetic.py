"""A small verifiable task: integer arithmetic questions, generated from a seed.

How the shipped files in ``hl_lightning/data/arithmetic/`` were made
(``python scripts/make_arithmetic_data.py``, seed 0, the defaults below):

- **Questions.** ``"What is a + b?"`` and ``"What is a - b?"`` with a, b in 2..50, and ``"What is a * b?"``
  with a, b in 2..16. Every distinct question of each operation is listed, each list is shuffled with
  ``random.Random(seed)``, and the first 40 % of the questions are additions, 40 % subtractions and 20 %
  multiplications (800 in all: 320 / 320 / 160). They are shuffled together; the first 400 are the train
  split, the last 400 the test split, so no question appears in both. Subtractions may be negative.
- **Answers.** A completion is the answer in one of four styles, picked at random per question:
  ``"12 + 7 = 19."``, ``"The answer is 19."``, ``"12 + 7 is 19."``, ``"That makes 19."``.
- **Wrong answers** keep the style and change the number. Candidates: the answer ± 1, ± 2 and ± 10
  (slips and carry errors), the result of the wrong operation (a - b for +, a + b for - and *), b - a for a
  subtraction (swapped operands), and a * (b ± 1) for a multiplication (times-table slip). Candidates equal
  to the answer are removed and distinct ones are drawn uniformly.
- **Files** (JSON Lines, TRL "standard" formats with string prompts; every row has an integer ``answer``):
  ``pairs_{split}`` (``prompt``, ``chosen``, ``rejected``: one correct and one wrong answer),
  ``unpaired_{split}`` (``prompt``, ``completion``, ``label``: the chosen row as desirable, then the
  rejected row as undesirable, for each pair), ``groups_{split}`` (``prompt``, ``completions``,
  ``rewards``: 4 completions per question, 1 correct + 3 wrong or 2 correct (two styles) + 2 wrong with
  equal odds, in random order, rewards 1.0 / 0.0) and ``prompts_{split}`` (``prompt``, ``answer``).
  Sizes: 400 train and 400 test questions, so 400 / 400 pairs, 800 / 800 unpaired rows, 400 / 400 groups
  of 4 and 400 / 400 prompts.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

DATA_DIR = Path(__file__).parent / "arithmetic"
STYLES = ("{a} {op} {b} = {c}.", "The answer is {c}.", "{a} {op} {b} is {c}.", "That makes {c}.")
_OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b}
_NUMBER = re.compile(r"(?:(?<![\d,])[-\u2212])?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?")


def parse_final_number(text: str) -> int | None:
    """Return the last number in ``text`` as an int (``"-1,234"`` -> -1234), or None.

    None when the text holds no number or its last number is not an integer (``"3.5"``; ``"3.0"`` is 3).
    A minus sign counts only when it does not follow a digit, so ``"7-3"`` ends in 3.
    """
    matches = _NUMBER.findall(text)
    if not matches:
        return None
    whole, _, fraction = matches[-1].replace(",", "").replace("\u2212", "-").partition(".")
    return int(whole) if fraction.strip("0") == "" else None


def is_correct(completion: str, answer: int) -> bool:
    """Whether the last number in ``completion`` equals ``answer``."""
    return parse_final_number(completion) == int(answer)


def _questions(rng: random.Random, total: int) -> list[tuple[int, str, int]]:
    ranges = {"+": range(2, 51), "-": range(2, 51), "*": range(2, 17)}
    shares = {"+": 0.4, "-": 0.4, "*": 0.2}
    picked = []
    for op, span in ranges.items():
        pool = [(a, op, b) for a in span for b in span]
        rng.shuffle(pool)
        count = round(total * shares[op])
        if count > len(pool):
            raise ValueError(f"Only {len(pool)} distinct '{op}' questions exist; asked for {count}.")
        picked += pool[:count]
    rng.shuffle(picked)
    return picked[:total]


def wrong_answers(a: int, op: str, b: int, rng: random.Random, k: int) -> list[int]:
    """``k`` distinct plausible wrong results for ``a op b`` (see the module docstring)."""
    c = _OPS[op](a, b)
    candidates = {c + d for d in (-10, -2, -1, 1, 2, 10)}
    candidates.add(a - b if op == "+" else a + b)
    if op == "-":
        candidates.add(b - a)
    if op == "*":
        candidates |= {a * (b - 1), a * (b + 1)}
    candidates.discard(c)
    return rng.sample(sorted(candidates), k)


def _say(style: str, a: int, op: str, b: int, c: int) -> str:
    return style.format(a=a, op=op, b=b, c=c)


def _question_rows(rng: random.Random, a: int, op: str, b: int) -> dict[str, list[dict]]:
    """All rows for one question, keyed by file kind."""
    prompt, answer = f"What is {a} {op} {b}?", _OPS[op](a, b)
    style, other = rng.sample(STYLES, 2)
    wrong = wrong_answers(a, op, b, rng, 3)
    chosen, rejected = _say(style, a, op, b, answer), _say(style, a, op, b, wrong[0])
    n_correct = rng.choice((1, 2))
    scored = [(chosen, 1.0), (_say(other, a, op, b, answer), 1.0)][:n_correct]
    scored += [(_say(style, a, op, b, w), 0.0) for w in wrong[: 4 - n_correct]]
    rng.shuffle(scored)
    return {
        "pairs": [{"prompt": prompt, "chosen": chosen, "rejected": rejected, "answer": answer}],
        "unpaired": [
            {"prompt": prompt, "completion": chosen, "label": True, "answer": answer},
            {"prompt": prompt, "completion": rejected, "label": False, "answer": answer},
        ],
        "groups": [
            {
                "prompt": prompt,
                "completions": [text for text, _ in scored],
                "rewards": [reward for _, reward in scored],
                "answer": answer,
            }
        ],
        "prompts": [{"prompt": prompt, "answer": answer}],
    }


def make_rows(seed: int = 0, n_train: int = 400, n_test: int = 400) -> dict[str, list[dict]]:
    """Generate every file's rows, keyed by file stem (``"pairs_train"``, ..., ``"prompts_test"``).

    Args:
        seed: seed of the ``random.Random`` that drives every choice.
        n_train: number of train questions.
        n_test: number of test questions (disjoint from the train questions).
    """
    rng = random.Random(seed)
    questions = _questions(rng, n_train + n_test)
    files: dict[str, list[dict]] = {}
    for split, chunk in (("train", questions[:n_train]), ("test", questions[n_train:])):
        for a, op, b in chunk:
            for kind, rows in _question_rows(rng, a, op, b).items():
                files.setdefault(f"{kind}_{split}", []).extend(rows)
    return files


def write_files(out_dir: str | Path = DATA_DIR, seed: int = 0, n_train: int = 400, n_test: int = 400) -> list[Path]:
    """Write the ``*.jsonl`` files of :func:`make_rows` into ``out_dir`` and return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, rows in make_rows(seed, n_train, n_test).items():
        path = out / f"{stem}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        paths.append(path)
    return paths
