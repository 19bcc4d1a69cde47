"""The sampling loop of the default rollout engine (:class:`hl_lightning.models.engines.KVCacheEngine`): a KV-cache
decode written for rollouts.

Against ``model.generate(num_return_sequences=g)`` it saves four kinds of work, with the same distribution:

- **one prefill per prompt**: the left-padded prompts run once and their cache is repeated to the ``g``
  completions (``generate`` repeats the prompts first and computes each ``g`` times);
- **finished rows leave the batch**: a row that produced an end token is dropped from the cache and from every
  later step (``generate`` keeps decoding padding for it until the longest row ends);
- **ids stay ids**: the result is token ids per completion, cut after the first end token; nothing is decoded
  to text and encoded again;
- **top-p without sorting the vocabulary**: the nucleus is found among the 64 most likely tokens whenever
  they hold ``top_p`` of the mass (exactly the same set, :func:`nucleus`), else by the full sort.

Under FSDP (parameters are DTensors) every rank must run the same number of forwards, whose all-gathers
pair up across ranks: rows then stay in the batch and the loop ends when every rank's rows have ended
(``generate``'s ``synced_gpus``).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch.distributed.tensor import DTensor
from transformers import DynamicCache

NUCLEUS_CANDIDATES = 64  # tokens sorted first by nucleus(); the vocabulary only when they hold < top_p


def pick(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The next token of each row: argmax when ``temperature == 0``, else a sample of ``softmax(logits / T)``
    restricted to the smallest set of most likely tokens whose mass reaches ``top_p`` (at least one,
    :func:`nucleus`); ``top_p >= 1`` samples the whole distribution."""
    if temperature == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, -1)
    if top_p >= 1:
        return torch.multinomial(probs, 1).squeeze(-1)
    kept, ids = nucleus(probs, top_p)
    return ids.gather(-1, torch.multinomial(kept, 1)).squeeze(-1)


def nucleus(
    probs: torch.Tensor, top_p: float, candidates: int = NUCLEUS_CANDIDATES
) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-p set of each row of ``probs`` as (probabilities, token ids), most likely first and 0 past the
    set: a token is kept while the mass of the tokens before it is < ``top_p``.

    Exact, without sorting the vocabulary when it can: if the ``candidates`` most likely tokens of every row
    hold at least ``top_p`` (their running sum, as the full sort would add it), every later token has that
    much mass before it and is dropped, so the set lies within them (sorting 49k probabilities per row per
    step was a fifth of a rollout's time). Otherwise the whole vocabulary is sorted."""
    if candidates < probs.shape[-1]:
        top, ids = probs.topk(candidates, -1)
        if bool((top.cumsum(-1)[..., -1] >= top_p).all()):
            return top * (top.cumsum(-1) - top < top_p), ids
    top, ids = probs.sort(-1, descending=True)
    return top * (top.cumsum(-1) - top < top_p), ids


def synced(model: torch.nn.Module) -> bool:
    """True when forwards must pair up across ranks (FSDP-sharded parameters in a multi-process group)."""
    return (
        dist.is_available()
        and dist.is_initialized()
        and dist.get_world_size() > 1
        and any(isinstance(p, DTensor) for p in model.parameters())
    )


def _everyone_done(done: bool, synced: bool, device: torch.device) -> bool:
    if not synced:
        return done
    flag = torch.tensor([0.0 if done else 1.0], device=device)
    dist.all_reduce(flag)
    return flag.item() == 0


def _prefill(model, input_ids, attention_mask, copies: int) -> tuple:
    """Run the prompts once; repeat the cache, the last logits, the mask and the positions ``copies`` times."""
    position = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
    cache = DynamicCache(config=model.config)
    logits = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position,
        cache=cache,
        use_cache=True,
        logits_to_keep=1,
    ).logits[:, -1]
    if copies > 1:
        cache.batch_repeat_interleave(copies)
        logits, attention_mask = logits.repeat_interleave(copies, 0), attention_mask.repeat_interleave(copies, 0)
        position = position.repeat_interleave(copies, 0)
    return cache, logits, attention_mask, position[:, -1:]


@torch.no_grad()
def decode(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    copies: int,
    max_new_tokens: int,
    temperature: float,
    top_p: float,
    eos: set[int],
) -> list[list[int]]:
    """``copies`` completions of each left-padded prompt row, prompt-major (all of row 0's first), each the
    generated ids up to and including its first end token (or ``max_new_tokens`` ids without one)."""
    is_synced, device = synced(model), input_ids.device
    cache, logits, mask, last = _prefill(model, input_ids, attention_mask, copies)
    out: list[list[int]] = [[] for _ in range(len(logits))]
    live = torch.arange(len(logits), device=device)  # the rows of ``out`` still in the batch
    finished = torch.zeros(len(logits), dtype=torch.bool, device=device)
    end = torch.tensor(sorted(eos), device=device)
    for step in range(max_new_tokens):
        token = pick(logits, temperature, top_p)
        for row, t, done in zip(live.tolist(), token.tolist(), finished.tolist(), strict=True):
            if not done:
                out[row].append(t)
        finished |= torch.isin(token, end)
        if _everyone_done(bool(finished.all()) or step == max_new_tokens - 1, is_synced, device):
            break
        if not is_synced and finished.any():  # finished rows leave the batch and the cache
            keep = (~finished).nonzero().squeeze(1)
            cache.batch_select_indices(keep)
            live, token, mask, last, finished = live[keep], token[keep], mask[keep], last[keep], finished[keep]
        mask, last = torch.cat([mask, mask.new_ones(len(mask), 1)], 1), last + 1
        logits = model(
            input_ids=token[:, None], attention_mask=mask, position_ids=last, cache=cache, use_cache=True
        ).logits[:, -1]
    return out
