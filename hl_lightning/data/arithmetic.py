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
- **The prompt pool** ``prompts_pool.jsonl``: every distinct question that is not in the test split (the 400
  train questions among them), shuffled with ``random.Random(f"{seed}-pool")``: 4,627 prompts for runs that must
  see each prompt at most once (offline data sampled from a model, long online runs). Every multiplication of
  the range is in it, so it holds far fewer of them (137, 3 %) than the test split (88, 22 %).
- **Templated rows for any prompts** (:func:`templated_like`): the rows above for the questions of another file,
  e.g. templated pairs on exactly the prompts of a sampled data set, so two data sources differ only in their
  completions: ``python -m hl_lightning.data.arithmetic --like FILE --kind pairs --out FILE``.
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


RANGES = {"+": range(2, 51), "-": range(2, 51), "*": range(2, 17)}  # the operands of each operation


def _questions(rng: random.Random, total: int) -> list[tuple[int, str, int]]:
    shares = {"+": 0.4, "-": 0.4, "*": 0.2}
    picked = []
    for op, span in RANGES.items():
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


_QUESTION = re.compile(r"What is (\d+) ([-+*]) (\d+)\?")


def parse_question(prompt: str) -> tuple[int, str, int]:
    """``"What is 12 + 7?"`` -> ``(12, "+", 7)``; a ValueError naming the prompt when it is not such a question."""
    match = _QUESTION.fullmatch(prompt.strip())
    if match is None:
        raise ValueError(f"{prompt!r} is not an arithmetic question of the form 'What is a + b?'")
    return int(match[1]), match[2], int(match[3])


def pool_rows(test: list[dict], seed: int = 0) -> list[dict]:
    """Every distinct question not among the ``test`` prompt rows, shuffled: the prompt pool (module docstring)."""
    held_out = {row["prompt"] for row in test}
    pool = [(a, op, b) for op, span in RANGES.items() for a in span for b in span]
    rows = [{"prompt": f"What is {a} {op} {b}?", "answer": _OPS[op](a, b)} for a, op, b in pool]
    rows = [row for row in rows if row["prompt"] not in held_out]
    random.Random(f"{seed}-pool").shuffle(rows)
    return rows


def templated_like(rows: list[dict], kind: str, seed: int = 0) -> list[dict]:
    """The templated ``kind`` rows (``"pairs"``, ``"unpaired"``, ``"groups"``, ``"prompts"``) for the questions of
    ``rows`` (each with an arithmetic ``prompt``), one question after another, in their order; repeated prompts
    once."""
    rng, out, seen = random.Random(seed), [], set()
    for row in rows:
        if row["prompt"] not in seen:
            seen.add(row["prompt"])
            out += _question_rows(rng, *parse_question(row["prompt"]))[kind]
    return out


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
    files["prompts_pool"] = pool_rows(files["prompts_test"], seed)
    return files


def write_files(out_dir: str | Path = DATA_DIR, seed: int = 0, n_train: int = 400, n_test: int = 400) -> list[Path]:
    """Write the ``*.jsonl`` files of :func:`make_rows` into ``out_dir`` and return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for stem, rows in make_rows(seed, n_train, n_test).items():
        paths.append(_write_jsonl(out / f"{stem}.jsonl", rows))
    return paths


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> None:
    """``python -m hl_lightning.data.arithmetic``: regenerate the shipped files, or (``--like``) write templated
    rows for the questions of another file."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m hl_lightning.data.arithmetic", description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--n-train", type=int, default=400, help="train questions (default 400)")
    parser.add_argument("--n-test", type=int, default=400, help="test questions (default 400)")
    parser.add_argument("--out", default=str(DATA_DIR), help="output directory, or the output file with --like")
    parser.add_argument("--like", help="a JSON Lines file whose prompts are arithmetic questions")
    parser.add_argument("--kind", default="pairs", choices=["pairs", "unpaired", "groups", "prompts"])
    args = parser.parse_args(argv)
    if args.like is None:
        paths = write_files(args.out, args.seed, args.n_train, args.n_test)
    else:
        from hl_lightning.data.rows import read_rows

        paths = [_write_jsonl(Path(args.out), templated_like(read_rows(args.like), args.kind, args.seed))]
    print("\n".join(str(path) for path in paths))


if __name__ == "__main__":
    main()
