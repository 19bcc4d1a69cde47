"""Rebuild a sampled groups file with another builder: the same completions and rewards, another data set.

    python -m hl_lightning.online.rebuild --groups data/groups.jsonl --output data/pairs.jsonl \\
        --builder PairBuilder

``hl-lightning-sample --builder GroupBuilder`` writes every scored completion of each kept prompt; this turns
those groups into DPO pairs (``PairBuilder``) or KTO items (``BestWorstItems``, ``ThresholdItems``) without
sampling again, so a GRPO and a DPO data set come from the very same samples. ``<output>.meta.json`` records the
groups file, its metadata and the builder.
"""

from __future__ import annotations

import json
from pathlib import Path

from hl_lightning.data.rows import read_rows
from hl_lightning.online.builders import Builder


def rebuild_rows(groups: list[dict], builder: Builder) -> tuple[list[dict], int]:
    """The builder's rows of each group (``prompt``, ``completions``, ``rewards`` and extra columns, which every
    row keeps), and how many groups it dropped."""
    rows, dropped = [], 0
    for group in groups:
        row = {k: v for k, v in group.items() if k not in ("completions", "rewards")}
        built = builder.trl_rows(row, list(group["completions"]), [float(r) for r in group["rewards"]])
        dropped += not built
        rows += built
    return rows, dropped


def rebuild_dataset(groups: str, output: str, builder: Builder) -> Path:
    """Write ``builder``'s rows of the groups file ``groups`` to ``output`` (JSON Lines) and ``<output>.meta.json``.

    Args:
        groups: a groups file (``prompt``, ``completions``, ``rewards``), e.g. from ``hl-lightning-sample
            --builder GroupBuilder``.
        output: the JSONL file to write.
        builder: ``PairBuilder``, ``BestWorstItems`` or ``ThresholdItems`` (``--builder PairBuilder``).
    """
    rows, dropped = rebuild_rows(read_rows(groups), builder)
    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    source = Path(f"{groups}.meta.json")
    meta = {
        "groups": str(groups),
        "groups_meta": json.loads(source.read_text(encoding="utf-8")) if source.exists() else None,
        "builder": repr(builder),
        "rows": len(rows),
        "dropped_groups": dropped,
    }
    Path(f"{out}.meta.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return out


def main(args: list[str] | None = None) -> None:
    """``python -m hl_lightning.online.rebuild`` (``args=None`` reads ``sys.argv``); every option has ``--help``."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(prog="python -m hl_lightning.online.rebuild", description=__doc__.split("\n\n")[0])
    parser.add_function_arguments(rebuild_dataset)
    cfg = parser.parse_args(args)
    init = parser.instantiate_classes(cfg)
    path = rebuild_dataset(init.groups, init.output, init.builder)
    print(f"Wrote {path} and {path}.meta.json")


if __name__ == "__main__":
    main()
