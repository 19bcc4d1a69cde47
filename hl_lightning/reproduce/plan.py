"""A sweep plan: base configs, arms as overrides of them, seeds and a budget; validated before any run starts.

A plan is YAML::

    name: quick                      # results go to results/<name>/
    task: arithmetic                 # a tag of every run
    seeds: [0, 1, 2]
    steps: 40                        # trainer.max_steps of every run (the budget)
    eval_every: 10                   # held-out scoring every this many steps (HeldOutEval.every_n_steps)
    eval_limit: 100                  # held-out prompts scored
    eval_batch_size: 64              # prompts per generation batch
    bases: {dpo: configs/humanline/dpo.yaml}
    common: {model.init_args.optimizer.init_args.lr: 2.0e-05}   # overrides of every arm (an arm's own win)
    arms:
      - {name: dpo-humanline, base: dpo}
      - {name: dpo-sync-only, base: dpo, stage: 2, overrides: {model.init_args.clip: null}}  # after stage 1
      - name: dpo-offline
        base: dpo
        overrides: {model.init_args.clip: null, trainer.callbacks.RefSyncCallback: null}

Learning rates are chosen on a validation split of the training questions, never on the held-out set::

    tune:
      lrs: [3.0e-06, 1.0e-05, 3.0e-05]
      seed: 0                        # one seed per (arm, lr)
      arms: [dpo-offline]            # tuned arms; any other arm may say `lr_from: <tuned arm>`
      validation:                    # per base: overrides that make the held-out prompts a validation split
        dpo: {data.init_args.path: hl_lightning/data/arithmetic/pairs_train.jsonl, data.init_args.val_fraction: 0.25}

``comparisons: {online vs offline: {a: dpo-offline, b: dpo-online}}`` adds ``b − a`` with a bootstrap CI (paired
by seed, and by held-out prompt where the runs kept their answers) and the wall-clock ratio to ``results.md``;
``stage: 2`` on an arm runs it after every stage-1 run.

Files that arms train on can be made once before any run (``{out}`` in an override is the results directory)::

    prepare:
      self_sampled_pairs: {output: data/pairs.jsonl, command: [hl-lightning-sample, ..., --output, "{output}"]}

Prepare steps run in order (a step may read an earlier one's output); one with ``only_for: [later steps]`` is
skipped once those steps' outputs exist (a model made only to sample a data set). ``{out}`` in a command is the
results directory, ``python`` and ``hl-lightning*`` this environment's.

``data_quality: {self-sampled: data_quality/pairs-summary.json}`` puts each summary written by ``hl-lightning
data-quality`` (usually a prepare step) into ``results.md``, beside the results. ``head_to_head: {label: {a: arm,
b: arm}}`` adds b's win-rate against a on the same held-out prompts (the final answers' scores, paired by seed),
with a CI. ``claims: {claim: [labels]}`` reads those comparisons and head-to-head rows claim by claim
(:mod:`hl_lightning.reproduce.claims`). ``steps: 256`` on an arm gives it its own run length (e.g. 4 rounds of
N = 64). Top-level keys starting with ``x-`` are ignored: a place for YAML anchors that arms share
(``overrides: {<<: [*plain, *a]}``).

Each tuned arm runs once per lr on its validation split (``<out>/tune/<arm>/lr<lr>``); the lr with the best
final validation score (ties: the smaller lr) is the arm's lr for every seed of the plan (``tuning.json``).

An override key is a dotted path into the base config (composed: every file it ``extends`` merged in, see
``hl_lightning.configs_compose``); ``trainer.callbacks.<ClassName>`` names a callback of the list by its class
(``null`` removes it; a mapping of ``init_args`` adds or updates it: the by-class rule of ``extends``). A key that
is neither in the base config nor a constructor parameter of the class at that place is an error naming the arm
and the key. Every run's config is written flattened (no ``extends``): it runs on its own.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from hl_lightning.configs_compose import compose, find_callback
from hl_lightning.reproduce.overrides import apply, check_key

LR = "model.init_args.optimizer.init_args.lr"
MIN_PERIODS = 4  # an arm should see at least this many syncs (k) and sampling rounds (N) for them to act
log = logging.getLogger(__name__)


@dataclass
class Arm:
    """One arm: a base config and overrides; ``lr_from`` takes the lr tuned for another arm."""

    name: str
    base: str
    overrides: dict = field(default_factory=dict)
    lr_from: str | None = None
    task: str | None = None  # the run's task tag when it is not the plan's
    seeds: list[int] | None = None  # a subset of the plan's seeds (a cheaper ablation); None: all
    stage: int = 1  # run order: every run of stage 1 before any of stage 2 (a cut-short sweep answers stage 1)
    steps: int | None = None  # this arm's run length when it is not the plan's (e.g. 4 rounds of a large N)


@dataclass
class Tune:
    """The learning-rate grid, its seed, the tuned arms and, per base, the validation-split overrides."""

    lrs: list[float]
    arms: list[str]
    validation: dict[str, dict]
    seed: int = 0

    def jobs(self, arms: dict[str, Arm]) -> list[tuple[Arm, float]]:
        """One validation run per (tuned arm, lr), named ``<arm>/lr<lr>``."""
        return [
            (
                Arm(
                    f"{name}/lr{lr:g}",
                    arms[name].base,
                    {**arms[name].overrides, **self.validation[arms[name].base], LR: lr},
                ),
                lr,
            )
            for name in self.arms
            for lr in self.lrs
        ]


@dataclass
class Plan:
    """A sweep: every arm, every seed, each run in its own process (see the module docstring)."""

    name: str
    bases: dict[str, str]
    arms: list[Arm]
    seeds: list[int]
    steps: int
    eval_every: int | None = None
    eval_limit: int | None = None
    eval_batch_size: int = 100
    task: str = "arithmetic"
    tune: Tune | None = None
    figures: dict = field(default_factory=dict)
    comparisons: dict = field(default_factory=dict)  # {label: {a: arm, b: arm}}: b − a with a CI in results.md
    prepare: dict = field(default_factory=dict)
    data_quality: dict = field(default_factory=dict)  # {source label: a data-quality summary JSON under the out dir}
    head_to_head: dict = field(default_factory=dict)  # {label: {a: arm, b: arm}}: b's win-rate against a, per prompt
    claims: dict = field(default_factory=dict)  # {claim: [comparison or head_to_head labels]}: the reading
    root: Path = Path(".")

    @classmethod
    def load(cls, path: str | Path) -> Plan:
        """Read and validate a plan file (config paths are relative to the current directory)."""
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        raw = {k: v for k, v in raw.items() if not k.startswith("x-")}  # x-*: YAML anchors for the file's own use
        common = raw.pop("common", None) or {}
        arms = [_arm(a, common, path) for a in raw.pop("arms")]
        tune = Tune(**raw.pop("tune")) if raw.get("tune") else None
        plan = cls(arms=arms, tune=tune, **raw)
        plan.validate()
        return plan

    def validate(self) -> None:
        """Every arm names a known base, arm names are unique, and every override key exists."""
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            raise ValueError(f"plan {self.name!r}: arm names repeat: {names}")
        for arm in self.arms:
            if arm.seeds is not None and not set(arm.seeds) <= set(self.seeds):
                raise ValueError(
                    f"plan {self.name!r}, arm {arm.name!r}: seeds {arm.seeds} are not all plan seeds {self.seeds}"
                )
            if not isinstance(arm.stage, int) or isinstance(arm.stage, bool) or arm.stage < 1:
                raise ValueError(
                    f"plan {self.name!r}, arm {arm.name!r}: stage must be an integer >= 1, got {arm.stage!r}"
                )
            if arm.base not in self.bases:
                raise ValueError(
                    f"plan {self.name!r}, arm {arm.name!r}: unknown base {arm.base!r}; bases are {sorted(self.bases)}"
                )
            base = self.base_config(arm.base)
            for key in arm.overrides:
                check_key(base, key, f"plan {self.name!r}, arm {arm.name!r}")
            self._warn_if_short(arm, apply(base, arm.overrides))
        self._validate_tuning(names)
        self._validate_prepare()
        for label, pair in {**self.comparisons, **self.head_to_head}.items():
            unknown = [pair.get(side) for side in ("a", "b") if pair.get(side) not in names]
            if unknown or set(pair) != {"a", "b"}:
                raise ValueError(
                    f"plan {self.name!r}, comparison {label!r}: needs exactly a and b, each an arm of "
                    f"the plan; got {pair} (unknown: {unknown})"
                )
        known = {**self.comparisons, **self.head_to_head}
        for claim, labels in self.claims.items():
            if unknown := [label for label in labels if label not in known]:
                raise ValueError(
                    f"plan {self.name!r}, claim {claim!r}: {unknown} are neither comparisons nor head_to_head "
                    f"labels of the plan"
                )

    def _warn_if_short(self, arm: Arm, config: dict) -> None:
        """Warn, naming the arm, when ``steps`` holds fewer than 4 syncs (k) or 4 sampling rounds (N): the settings
        the paper varies cannot act in so few."""
        sync = find_callback(config["trainer"].get("callbacks") or [], "RefSyncCallback")
        data = config.get("data", {}).get("init_args", {})
        periods = {"k (RefSyncCallback.every_n_steps)": (sync or {}).get("init_args", {}).get("every_n_steps", 1)}
        if "sample_every_n_steps" in data or "OnlineDataModule" in config.get("data", {}).get("class_path", ""):
            periods["N (sample_every_n_steps)"] = data.get("sample_every_n_steps", 1)
        steps = arm.steps or self.steps
        for what, period in periods.items():
            if (sync is not None or what.startswith("N")) and steps < MIN_PERIODS * period:
                log.warning(
                    "plan %r, arm %r: %d steps hold only %d of its %s = %d periods (fewer than %d): its effect cannot "
                    "show; raise steps to at least %d",
                    self.name,
                    arm.name,
                    steps,
                    steps // period,
                    what,
                    period,
                    MIN_PERIODS,
                    MIN_PERIODS * period,
                )

    def _validate_prepare(self) -> None:
        """Each prepare step has an output and a command; ``only_for`` names later steps."""
        order = list(self.prepare)
        for i, (name, step) in enumerate(self.prepare.items()):
            if not isinstance(step, dict) or not step.get("output") or not step.get("command"):
                raise ValueError(f"plan {self.name!r}, prepare step {name!r}: needs an output and a command")
            if bad := [n for n in step.get("only_for") or [] if n not in order[i + 1 :]]:
                raise ValueError(f"plan {self.name!r}, prepare step {name!r}: only_for names no later step: {bad}")

    def _validate_tuning(self, names: list[str]) -> None:
        tuned = self.tune.arms if self.tune else []
        for arm in self.arms:
            if arm.lr_from is not None and arm.lr_from not in tuned:
                raise ValueError(
                    f"plan {self.name!r}, arm {arm.name!r}: lr_from {arm.lr_from!r} is not a tuned arm "
                    f"(tune.arms: {tuned})"
                )
        for name in tuned:
            if name not in names:
                raise ValueError(f"plan {self.name!r}: tune.arms names {name!r}, which is not an arm")
        by_name = {a.name: a for a in self.arms}
        validation = self.tune.validation if self.tune else {}
        for arm, _ in self.tune.jobs(by_name) if self.tune else []:
            if arm.base not in validation:
                raise ValueError(f"plan {self.name!r}: tune.validation has no overrides for base {arm.base!r}")
            for key in validation[arm.base]:
                check_key(self.base_config(arm.base), key, f"plan {self.name!r}, tune.validation.{arm.base}")

    def base_config(self, base: str) -> dict:
        """The base config ``base``, composed (a plain dict without ``extends``)."""
        return compose(self.root / self.bases[base])

    def jobs(self, chosen: dict[str, float] | None = None) -> list[tuple[Arm, int]]:
        """(arm, seed) in run order: by stage, then seed-major within a stage, so early results cover every arm
        of the first stage; with ``chosen`` (tuned arm -> lr), each tuned arm and each arm with ``lr_from`` gets
        its lr."""
        chosen = chosen or {}
        arms = []
        for arm in self.arms:
            lr = chosen.get(arm.lr_from or arm.name)
            arms.append(arm if lr is None else dataclasses.replace(arm, overrides={**arm.overrides, LR: lr}))
        return [
            (arm, seed)
            for stage in sorted({a.stage for a in arms})
            for seed in self.seeds
            for arm in arms
            if arm.stage == stage and (arm.seeds is None or seed in arm.seeds)
        ]


def _arm(raw: dict, common: dict, path: str | Path) -> Arm:
    """An arm of the plan file ``path``; ``common`` overrides come first (the arm's own win)."""
    known = {f.name for f in dataclasses.fields(Arm)}
    if unknown := sorted(set(raw) - known):
        raise ValueError(f"{path}: arm {raw.get('name')!r} has unknown keys {unknown}; an arm takes {sorted(known)}")
    return Arm(**{**raw, "overrides": {**common, **(raw.get("overrides") or {})}})
