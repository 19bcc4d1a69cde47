"""Shared machinery of the data modules: read, validate, tokenise once, split, and serve batches."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
from torch.utils.data import DataLoader

from hl_lightning.data.columns import Layout, check_layout
from hl_lightning.data.prompts import BUILTIN, data_paths, holdout_split, tokenizer_spec
from hl_lightning.data.rows import Messages, process_rows, read_rows
from hl_lightning.data.sampler import ResumableDataLoader, ResumableSampler
from hl_lightning.data.tokenize import encode_parts
from hl_lightning.models.loading import load_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from hl_lightning.data.handover import ModelHandle

log = logging.getLogger(__name__)


class BaseDataModule(L.LightningDataModule):
    """Reads rows, validates and tokenises them once, and serves deterministic batches.

    Subclasses set ``builtin`` (the stem of the shipped arithmetic files) and implement ``prepare_row``
    (one raw row -> a list of dataset items) and ``collate_fn`` (items -> a typed batch of
    ``hl_lightning.data.batches``, docs/CONTRACTS.md). Nothing is read until ``setup`` (with a ``tokenizer`` of its
    own) or until the objective module hands itself over (:meth:`connect`: the tokenizer then follows the model).

    Args:
        path: "arithmetic" or "sentiment" (the shipped tasks), or a local JSONL, JSON or Parquet file, or a
            directory saved with ``datasets.Dataset.save_to_disk``.
        val_path: validation file or directory. None: the shipped test split of a shipped task,
            otherwise a seeded ``val_fraction`` of the rows of ``path``.
        val_fraction: share of ``path`` held out for validation when ``val_path`` is None.
        tokenizer: model spec whose tokenizer to use ("smollm2", "tiny-random", a directory, a Hub id); None:
            the model's (its ``model`` spec), else "smollm2".
        columns: maps our column names to the file's, e.g. ``{"prompt": "question"}``; ``{"prompt": null}``: pairs
            take each prompt from the text chosen and rejected start with (docs/data.md).
        max_length: most tokens in prompt + completion.
        max_prompt_length: most prompt tokens (prompts are cut from the left); < max_length.
        truncate: cut over-long rows (prompt from the left, completion from the right); when False an
            over-long row is an error.
        batch_size: rows per batch per process (pairs, items or groups, depending on the module).
        skip_invalid: drop invalid rows (with a warning counting them per reason) instead of raising.
        seed: seed of the validation split and of the per-epoch shuffling.
        num_workers: DataLoader worker processes.
    """

    builtin = ""
    layouts: tuple[Layout, ...] = ()  # the row layouts the module reads, in order (hl_lightning.data.columns)
    min_batch_size = 1
    id_columns: tuple[str, ...] = ("id",)  # columns whose values must be unique per file (a repeat is a bad row)

    def __init__(
        self,
        path: str = BUILTIN,
        val_path: str | None = None,
        val_fraction: float = 0.1,
        tokenizer: str | None = None,
        columns: dict[str, str | None] | None = None,
        max_length: int = 256,
        max_prompt_length: int = 128,
        truncate: bool = True,
        batch_size: int = 2,
        skip_invalid: bool = False,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self._check_options(max_length, max_prompt_length, batch_size, val_fraction, num_workers)
        self.save_hyperparameters()
        self.path, self.val_path, self.val_fraction = path, val_path, val_fraction
        self.tokenizer_spec, self.columns = tokenizer, columns
        self.max_length, self.max_prompt_length, self.truncate = max_length, max_prompt_length, truncate
        self.batch_size, self.skip_invalid = batch_size, skip_invalid
        self.seed, self.num_workers = seed, num_workers
        self.tokenizer: PreTrainedTokenizerBase | None = None  # loaded in setup() or connect()
        self.model: ModelHandle | None = None
        self.val_source = ""  # the held-out file (or split), named in messages; set in setup
        self.train_set: list[dict] = []
        self.val_set: list[dict] = []
        self._val_rows: list[dict] = []
        self._truncated = 0
        self._resume: dict | None = None

    def _check_options(
        self, max_length: int, max_prompt_length: int, batch_size: int, val_fraction: float, num_workers: int
    ) -> None:
        if not 0 < max_prompt_length < max_length:
            raise ValueError(
                f"max_prompt_length={max_prompt_length} must be > 0 and < max_length={max_length}; "
                f"e.g. max_prompt_length={max_length // 2}."
            )
        if batch_size < self.min_batch_size:
            raise ValueError(f"batch_size={batch_size} must be >= {self.min_batch_size} for {type(self).__name__}.")
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction={val_fraction} must be strictly between 0 and 1, e.g. 0.1.")
        if num_workers < 0:
            raise ValueError(f"num_workers={num_workers} must be >= 0.")

    def prepare_row(self, row: dict) -> list[dict]:
        """Normalise and tokenise one raw row into dataset items (raise ``DataError`` if invalid)."""
        raise NotImplementedError

    def collate_fn(self) -> Callable[[list[dict]], Any]:
        """A picklable function turning a list of items into a batch."""
        raise NotImplementedError

    def pad_id(self) -> int:
        """The tokenizer's pad token id, for ``collate_fn``."""
        if self.tokenizer is None:
            raise RuntimeError("Call setup() before asking for batches.")
        return self.tokenizer.pad_token_id

    def assign_ids(self, items: list[dict]) -> None:
        """Give every item a unique ``index`` (train items first, then validation), e.g. for caches."""
        for index, item in enumerate(items):
            item["index"] = index

    def encode(self, prompt: Messages, completion: Messages) -> tuple[list[int], list[int]]:
        """Token ids of a prompt and a completion, cut to the limits; counts truncations."""
        prompt_ids, completion_ids, truncated = encode_parts(
            self.tokenizer, prompt, completion, self.max_length, self.max_prompt_length, self.truncate
        )
        self._truncated += truncated
        return prompt_ids, completion_ids

    def check_file(self, rows: list[dict], source: str) -> Layout | None:
        """Decide the file's layout once, before its rows (``check_layout``: refuses ambiguous or missing
        columns, logs each decision in one line); subclasses add their own file-level checks."""
        return check_layout(rows, source, self.layouts, self.columns)

    def _build(self, path: Path) -> tuple[list[dict], list[tuple[int, list[dict]]], Counter]:
        rows = read_rows(path, self.columns)
        self.check_file(rows, str(path))
        kept, dropped = process_rows(rows, self.prepare_row, str(path), self.skip_invalid, self.id_columns)
        return rows, kept, dropped

    def setup(self, stage: str | None = None) -> None:
        """With a ``tokenizer`` of its own, read the data now; otherwise at :meth:`connect`."""
        if self.tokenizer_spec is not None:
            self._read()

    def connect(self, model: ModelHandle) -> None:
        """The objective module hands itself over (in its ``setup``): read the data with the tokenizer of the
        model unless the data module names its own."""
        self.model = model
        self._read()

    def _read(self) -> None:
        """Load the tokenizer, then read, validate, tokenise and split the rows (once)."""
        if self.tokenizer is not None:
            return
        spec = tokenizer_spec(self.tokenizer_spec, self.model)
        self.tokenizer = load_tokenizer(spec)
        train_path, val_path = data_paths(self.path, self.val_path, self.builtin)
        self.val_source = str(val_path or f"the {self.val_fraction:.0%} held-out split of {train_path}")
        rows, kept, dropped = self._build(train_path)
        n_read = len(rows)
        if val_path is None:
            kept, held = holdout_split(kept, self.val_fraction, self.seed, str(train_path))
        else:
            rows, held, val_dropped = self._build(val_path)
            n_read, dropped = n_read + len(rows), dropped + val_dropped
        self.train_set = [item for _, items in kept for item in items]
        self.val_set = [item for _, items in held for item in items]
        self.assign_ids(self.train_set + self.val_set)
        self._val_rows = [rows[i] for i, _ in held]
        log.info(
            "%s: read %d rows, dropped %d, truncated %d sequences; %d train and %d validation items",
            type(self).__name__,
            n_read,
            dropped.total(),
            self._truncated,
            len(self.train_set),
            len(self.val_set),
        )

    def held_out_rows(self) -> list[dict]:
        """The raw validation rows (after column mapping, incl. ``answer`` if present), one per source row."""
        self._read()
        return list(self._val_rows)

    def drop_last(self, n_items: int, train: bool) -> bool:
        """Whether a loader over ``n_items`` drops its last, incomplete batch (never, by default)."""
        return False

    def _loader(self, items: list[dict], train: bool) -> DataLoader:
        sampler = self._train_sampler(len(items)) if train else None
        return ResumableDataLoader(
            items,  # type: ignore[arg-type]  # a list is a map-style dataset; torch's annotation asks for a Dataset
            batch_size=self.batch_size,
            collate_fn=self.collate_fn(),
            num_workers=self.num_workers,
            sampler=sampler,
            drop_last=self.drop_last(len(items), train),
        )

    def _train_sampler(self, n_items: int) -> ResumableSampler:
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        sampler = ResumableSampler(n_items, self.seed, world, rank)
        if self._resume is not None:
            done = self._resume["batches_done"] * self.batch_size
            if done < len(sampler):  # a checkpoint taken mid-epoch: skip what was already trained on
                sampler.skip_next(done)
            self._resume = None
        return sampler

    def train_dataloader(self) -> DataLoader:
        """Batches of the train items, shuffled per epoch (seeded), sharded over ranks, resumable."""
        self._read()
        if self.trainer is not None:
            self.check_val_interval()
        return self._loader(self.train_set, train=True)

    def batches_per_epoch(self) -> int:
        """Training batches of one epoch on this rank (after ``trainer.limit_train_batches``)."""
        world, rank = (self.trainer.world_size, self.trainer.global_rank) if self.trainer else (1, 0)
        n_items = len(self.train_set)
        per_rank = len(ResumableSampler(n_items, self.seed, world, rank))
        batches = (
            per_rank // self.batch_size if self.drop_last(n_items, True) else math.ceil(per_rank / self.batch_size)
        )
        limit = self.trainer.limit_train_batches if self.trainer else 1.0
        return min(batches, limit) if isinstance(limit, int) else int(batches * limit)

    def check_val_interval(self) -> None:
        """An integer ``trainer.val_check_interval`` longer than an epoch of the training data fails here, naming the
        data and the values that work (Lightning's own error does not say which file is short)."""
        trainer = self.trainer
        interval = getattr(trainer, "val_check_interval", None)
        if (
            trainer is None
            or not isinstance(interval, int)
            or isinstance(interval, bool)
            or trainer.check_val_every_n_epoch is None
            or trainer.limit_val_batches == 0
        ):
            return
        if interval > (batches := self.batches_per_epoch()):
            raise ValueError(
                f"trainer.val_check_interval={interval} is more than the {batches} training batches of one epoch "
                f"({len(self.train_set)} rows of {self.path} at batch_size {self.batch_size}): set "
                f"trainer.val_check_interval to at most {batches}, or to 1.0 (validate once per epoch), or "
                "trainer.check_val_every_n_epoch: null (count steps across epochs)."
            )

    def state_dict(self) -> dict:
        """The position inside the current epoch (batches consumed), saved in every checkpoint."""
        if self.trainer is None:
            return {}
        current = self.trainer.fit_loop.epoch_loop.batch_progress.current
        return {"batches_done": current.processed}  # type: ignore[attr-defined]  # a _ProcessedTracker at run time

    def load_state_dict(self, state_dict: dict) -> None:
        """Resume mid-epoch: the next train loader skips the batches already consumed."""
        self._resume = state_dict or None

    def val_dataloader(self) -> DataLoader:
        """Batches of the validation items, in order."""
        self._read()
        return self._loader(self.val_set, train=False)
