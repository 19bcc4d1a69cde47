"""LoRA (PEFT) policies and their reference without a second model.

The policy is a ``peft.PeftModel`` whose trainable adapter is ``"default"``. Its reference runs on the same base:

- frozen reference (no ``RefSyncCallback``): the base with the adapter disabled. Zero extra weights. The paper's
  reference is the initial policy, and a fresh LoRA adapter (B = 0) adds exactly 0, so the two are the same model.
- synced reference: a second, frozen adapter ``"reference"`` on the same base, created equal to the trainable one
  by :meth:`LoraReference.prepare_sync` (``RefSyncCallback.setup`` asks the module for it); a sync copies the
  trainable adapter into it by value (``torch._foreach_copy_``).

The reference forward runs in eval mode (no LoRA dropout) under ``no_grad``; the active adapter is restored after
it, with ``requires_grad`` as before, so the optimizer and DDP see the same trainable parameters at every step.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import PreTrainedModel
from typing_extensions import override

from hl_lightning.models.loading import TINY_RANDOM, resolve_pretrained
from hl_lightning.models.logprobs import TokenLogps
from hl_lightning.modules.reference import Forward, Reference, copy_by_value

if TYPE_CHECKING:
    from torch.distributed.device_mesh import DeviceMesh

    from hl_lightning.data.batches import Rows
    from hl_lightning.models.logprobs import CausalLM

TRAINABLE, REFERENCE = "default", "reference"


def check_lora_config(config: LoraConfig) -> None:
    """Refuse a rank below 1 before peft builds anything (it would fail deep inside a layer)."""
    if not isinstance(config, LoraConfig):
        raise TypeError(f"peft must be a peft.LoraConfig (class_path: peft.LoraConfig); got {type(config).__name__}.")
    if not isinstance(config.r, int) or config.r < 1:
        raise ValueError(f"peft: LoraConfig(r={config.r!r}): the LoRA rank r must be an integer >= 1 (e.g. r: 16).")


def wrap_lora(model: torch.nn.Module, config: LoraConfig) -> PeftModel:
    """``get_peft_model`` with our checks; a ``target_modules`` that matches no layer is one clear error."""
    check_lora_config(config)
    try:
        return get_peft_model(model, copy.deepcopy(config))
    except ValueError as err:
        if "not found in the base model" not in str(err) and "No modules were targeted" not in str(err):
            raise
        names = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        targets = config.target_modules
        targets = sorted(targets) if isinstance(targets, set) else targets
        raise ValueError(
            f"peft: target_modules={targets!r} matches no layer of the model; its linear "
            f"layers are {names} (e.g. target_modules: [q_proj, v_proj])."
        ) from None


def lora_config_from(value: LoraConfig | dict | None) -> LoraConfig | None:
    """A ``LoraConfig`` from itself or from its ``to_dict()`` (as saved in a checkpoint's hyperparameters)."""
    if isinstance(value, dict):
        fields = {k: v for k, v in value.items() if k in LoraConfig.__dataclass_fields__ and k != "peft_type"}
        value = LoraConfig(**fields)
    return value


def lora_hparams(config: LoraConfig) -> dict:
    """The options of ``config`` that differ from ``LoraConfig()``'s, JSON-friendly (sets become sorted lists):
    what MLflow shows and what :func:`lora_config_from` rebuilds the same config from."""
    default, out = LoraConfig(), {}
    for name in LoraConfig.__dataclass_fields__:
        value = getattr(config, name)
        if name != "peft_type" and value != getattr(default, name):
            out[name] = sorted(value) if isinstance(value, set) else value
    return out


class LoraReference(Reference):
    """The reference of a LoRA policy: its base with the adapter disabled, or the ``"reference"`` adapter. It holds
    no weights of its own: both live in the policy, which every method is given."""

    def __init__(self) -> None:
        super().__init__()
        self._pairs: list[tuple[torch.Tensor, torch.Tensor]] | None = None

    @staticmethod
    def synced(policy: CausalLM) -> bool:
        """True once the reference adapter exists (the reference then follows syncs)."""
        return REFERENCE in _peft(policy).peft_config

    @override
    def prepare_sync(self, policy: CausalLM) -> None:
        """Add the frozen reference adapter, equal to the trainable one (no-op if it exists already)."""
        if self.synced(policy):
            return
        peft = _peft(policy)
        peft.add_adapter(REFERENCE, copy.deepcopy(peft.peft_config[TRAINABLE]))
        peft.set_adapter(TRAINABLE)  # add_adapter leaves the active adapter; keep requires_grad as it was
        for _, ref_p in self._adapter_pairs(policy):
            ref_p.requires_grad_(False)
        self.copy_policy(policy)

    def _adapter_pairs(self, policy: CausalLM) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self._pairs is None:
            params = dict(policy.named_parameters())
            marker, target = f".{TRAINABLE}.", f".{REFERENCE}."
            self._pairs = [(p, params[name.replace(marker, target)]) for name, p in params.items() if marker in name]
        return self._pairs

    @override
    def shard(self, mesh: DeviceMesh) -> None:
        """The adapters are sharded with the policy; forget the parameter pairs (sharding replaced them)."""
        self._pairs = None

    @override
    @torch.no_grad()
    def copy_policy(self, policy: CausalLM) -> None:
        """Copy the trainable adapter into the reference adapter by value (creating it first if needed)."""
        if not self.synced(policy):
            return self.prepare_sync(policy)
        trainable, reference = zip(*self._adapter_pairs(policy), strict=True)
        copy_by_value(list(reference), list(trainable))

    @override
    def logps(self, policy: CausalLM, rows: Rows, forward: Forward) -> TokenLogps:
        """``forward(policy)`` with the reference's weights: eval mode, ``no_grad``, adapter restored after."""
        with torch.no_grad(), _eval(policy), self._reference_weights(policy):
            return forward(policy)

    @contextmanager
    def _reference_weights(self, policy: CausalLM) -> Iterator[None]:
        peft = _peft(policy)
        if not self.synced(peft):
            with peft.disable_adapter():
                yield
            return
        grads = [p.requires_grad for p, _ in self._adapter_pairs(peft)]
        peft.set_adapter(REFERENCE, inference_mode=True)
        try:
            yield
        finally:
            peft.set_adapter(TRAINABLE)
            for (p, ref_p), grad in zip(self._adapter_pairs(policy), grads, strict=True):
                p.requires_grad_(grad)
                ref_p.requires_grad_(False)


def _peft(policy: CausalLM) -> PeftModel:
    if not isinstance(policy, PeftModel):
        raise TypeError(f"a LoRA reference needs a peft.PeftModel policy, got {type(policy).__name__}")
    return policy


@contextmanager
def _eval(model: torch.nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _save_base(policy: PeftModel, target: Path) -> Path:
    """Save the policy's base model, without any adapter, to ``target`` (``save_pretrained``; no copy of the weights:
    the LoRA layers' base weights are saved under their plain names)."""
    model = policy.get_base_model()
    assert isinstance(model, PreTrainedModel), "a LoRA policy wraps a transformers model"
    state = {}
    for name, tensor in model.state_dict().items():
        if ".lora_" in name or ".modules_to_save." in name:
            continue
        state[name.replace(".base_layer.", ".").replace(".original_module.", ".")] = tensor
    model.save_pretrained(target, state_dict=state)
    return target


def export_lora(policy: PeftModel, directory: Path, merge: bool, base: str | None = None) -> None:
    """The trainable adapter or, with ``merge``, the merged full model (plain ``transformers``). The policy itself is
    left as it was.

    The adapter loads with ``peft.AutoPeftModelForCausalLM.from_pretrained(directory)`` (or ``PeftModel``): its
    ``adapter_config.json`` names its base in ``base_model_name_or_path``, ``base`` when given (an absolute local
    directory or a Hub id), else the base model saved beside the adapter, in ``directory / "base"``, by its
    absolute path (move the two together, or pass the new path to ``PeftModel.from_pretrained``).
    """
    if merge:
        merged = copy.deepcopy(policy)
        if REFERENCE in merged.peft_config:
            merged.delete_adapter(REFERENCE)
        merged.merge_and_unload().save_pretrained(directory)
        return
    policy.save_pretrained(str(directory), selected_adapters=[TRAINABLE])
    if base is None:
        base = str(_save_base(policy, Path(directory) / "base").resolve())
    config_path = Path(directory) / "adapter_config.json"
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = base
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def adapter_base(spec: str | None) -> str | None:
    """What an exported adapter of a policy loaded from ``spec`` names as its base: the absolute path of a local
    model directory (the converted one for "smollm2"), or a Hub id; None (save the base beside the adapter) for
    "tiny-random", which is built from a config, and for a model passed as an object."""
    if spec is None or spec == TINY_RANDOM:
        return None
    source = resolve_pretrained(spec)
    return str(Path(source).expanduser().resolve()) if Path(source).expanduser().exists() else source
