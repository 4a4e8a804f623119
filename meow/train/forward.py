"""One forward pass over a micro-batch: the per-sequence quantities the losses see.

The model being trained is the FSDP root inside `Scorer`, which computes logits only where a loss
reads them (answer tokens; every attended position of groups under a KL term): the LM head over a
49k vocabulary is a fifth of a small model's compute, and the prompt's logits are never used.

Sequences reach the model one of two ways:
* packed (`pack_shared_prompts`): one row per distinct prompt, every answer to it after the
  prompt, each answer attending to the prompt and to itself only; for methods without a reference
  model, with PyTorch SDPA attention;
* padded (`collate`): one right-padded row per sequence; the reference model and KL terms need this.
Both give the same per-sequence NLL up to float rounding (`tests/train/test_forward.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from meow.models.encoding import IGNORE, Encoded
from meow.train.data import MicroBatch
from meow.train.losses import GroupStats

if TYPE_CHECKING:
    from meow.train.trainer import TrainJob


class Scorer(nn.Module):
    """A causal LM returning logits only at the selected positions (`select`: bool [B, T])."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        # Models that post-process their logits (soft-capping) keep the full head path.
        self.plain_head = not getattr(model.config, "final_logit_softcapping", None)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        select: torch.Tensor,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "position_ids": position_ids}
        if not self.plain_head:
            return self.model(**inputs).logits[select]
        hidden = self.model.get_decoder()(**inputs).last_hidden_state
        return self.model.get_output_embeddings()(hidden[select])


def group_stats(scorer, reference, micro: MicroBatch, job: TrainJob, device, autocast) -> dict[str, Any]:
    """Per-sequence NLL (and reference NLL, KL) of every group of a micro-batch, in one forward pass."""
    names = list(micro.groups)
    sequences = [s for g in names for s in micro.groups[g]]
    if reference is None and job.config.share_prompts and _attention(scorer) == "sdpa":
        nll, ref_nll, kl = _shared_prompt_nll(scorer, sequences, device, autocast), None, None
    else:
        row_group = [g for g in names for _ in micro.groups[g]]
        nll, ref_nll, kl = _padded_stats(scorer, reference, sequences, row_group, job, device, autocast)

    weight = torch.tensor([float(s.weight) for s in sequences], device=device)
    tokens = torch.tensor([float(s.tokens) for s in sequences], device=device)
    stats, start = {}, 0
    for g in names:
        part = slice(start, start + len(micro.groups[g]))
        start = part.stop
        stats[g] = GroupStats(
            nll=nll[part],
            tokens=tokens[part],
            weight=weight[part],
            ref_nll=None if ref_nll is None else ref_nll[part],
            kl=None if kl is None else kl[part],
        )
    return stats


def _attention(scorer: Scorer) -> str | None:
    return getattr(scorer.model.config, "_attn_implementation", None)


def _shared_prompt_nll(scorer, sequences: list[Encoded], device, autocast) -> torch.Tensor:
    """Summed answer NLL of each sequence, sequences sharing a prompt packed into one row."""
    packed = pack_shared_prompts(sequences)
    with autocast:
        logits = scorer(
            packed.input_ids.to(device), packed.attention_mask.to(device), packed.select.to(device),
            packed.position_ids.to(device),
        )  # fmt: skip
    token_nll = per_token_nll(logits[packed.label_index.to(device)], packed.label_target.to(device))
    return per_sequence_sum(token_nll, packed.label_sequence.to(device), len(sequences))


def _padded_stats(scorer, reference, sequences: list[Encoded], row_group: list[str], job: TrainJob, device, autocast):
    """Summed answer NLL, reference NLL and KL of each sequence, one padded row per sequence."""
    ids, mask, labels = (t.to(device) for t in collate(sequences))
    rows = len(sequences)
    # Position t predicts token t + 1.
    targets = torch.full_like(labels, IGNORE)
    targets[:, :-1] = labels[:, 1:]
    at_label = targets != IGNORE
    kl_groups, reference_groups = job.method.kl_groups, job.method.reference_groups
    kl_rows = torch.tensor([g in kl_groups for g in row_group], device=device)
    select = at_label | (kl_rows[:, None] & mask.bool())
    # Selected positions in row-major order: the order of the returned logits.
    row_of = select.nonzero()[:, 0]
    is_label = at_label[select]
    selected_targets = targets[select]
    with autocast:
        logits = scorer(ids, mask, select)
    nll = per_sequence_sum(per_token_nll(logits[is_label], selected_targets[is_label]), row_of[is_label], rows)

    ref_nll = kl = None
    ref_rows = torch.tensor([g in reference_groups or g in kl_groups for g in row_group], device=device)
    if reference is not None:
        in_ref = ref_rows[row_of]  # the positions the reference sees, in the same order
        with torch.no_grad(), autocast:
            ref_logits = reference(ids[ref_rows], mask[ref_rows], select[ref_rows])
        ref_label = is_label[in_ref]
        ref_token_nll = per_token_nll(ref_logits[ref_label], selected_targets[in_ref][ref_label])
        ref_nll = per_sequence_sum(ref_token_nll, row_of[in_ref][ref_label], rows)
        if kl_groups:
            at_kl = kl_rows[row_of]
            position_kl = per_position_kl(logits[at_kl], ref_logits[kl_rows[row_of[in_ref]]])
            kl = per_sequence_sum(position_kl, row_of[at_kl], rows)
    return nll, ref_nll, kl


def per_token_nll(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """-log p(target) for each row of `logits` [N, V] (computed in fp32)."""
    return F.cross_entropy(logits.float(), targets, reduction="none")


def per_position_kl(logits: torch.Tensor, reference_logits: torch.Tensor) -> torch.Tensor:
    """KL(p_ref || p_model) at each row: sum_v p_ref (log p_ref - log p_model)."""
    log_p = logits.float().log_softmax(-1)
    log_ref = reference_logits.float().log_softmax(-1)
    return F.kl_div(log_p, log_ref, log_target=True, reduction="none").sum(-1)


def per_sequence_sum(values: torch.Tensor, rows: torch.Tensor, n_rows: int) -> torch.Tensor:
    """Sum the per-token `values` of each sequence (`rows` gives each token's sequence)."""
    return torch.zeros(n_rows, dtype=values.dtype, device=values.device).index_add(0, rows, values)


@dataclass
class SharedPromptBatch:
    """Sequences packed one row per distinct prompt (see `pack_shared_prompts`).

    Logits are computed only at `select`; label i is predicted by the `label_index[i]`-th selected
    position (row-major), is token `label_target[i]`, and belongs to sequence `label_sequence[i]`.
    """

    input_ids: torch.Tensor  # [rows, width]
    attention_mask: torch.Tensor  # bool [rows, 1, width, width]: query attends key
    position_ids: torch.Tensor  # [rows, width]
    select: torch.Tensor  # bool [rows, width]
    label_index: torch.Tensor  # [labels]
    label_target: torch.Tensor  # [labels]
    label_sequence: torch.Tensor  # [labels]


def _prompt_length(sequence: Encoded) -> int:
    """Leading positions that are not labels: the question prompt."""
    return next((i for i, label in enumerate(sequence.labels) if label != IGNORE), len(sequence.labels))


def pack_shared_prompts(sequences: list[Encoded]) -> SharedPromptBatch:
    """One row per distinct prompt: the prompt, then the answer of every sequence with that prompt.

    Each answer sits at the positions it would have alone and attends to the prompt and to its own
    earlier tokens only, so every answer token sees exactly the context it sees in its own row: the
    same logits up to float rounding, with the prompt computed once. Answer tokens' first label is
    predicted from the prompt's last position, shared by all answers of the row.
    """
    by_prompt: dict[tuple[int, ...], list[int]] = {}
    for k, s in enumerate(sequences):
        by_prompt.setdefault(tuple(s.input_ids[: _prompt_length(s)]), []).append(k)
    rows = list(by_prompt.items())
    width = max(len(p) + sum(len(sequences[k].input_ids) - len(p) for k in members) for p, members in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    positions = torch.zeros((len(rows), width), dtype=torch.long)
    # Padding attends to itself only: a query with no key would give NaN, which masked keys still carry.
    mask = torch.eye(width, dtype=torch.bool).repeat(len(rows), 1, 1)
    causal = torch.ones((width, width), dtype=torch.bool).tril()
    labels: list[tuple[int, int, int, int]] = []  # (row, predicting column, target, sequence)
    for r, (prompt, members) in enumerate(rows):
        p = len(prompt)
        ids[r, :p] = torch.tensor(prompt, dtype=torch.long)
        positions[r, :p] = torch.arange(p)
        mask[r, :p, :p] = causal[:p, :p]
        start = p
        for k in members:
            s = sequences[k]
            answer, answer_labels = s.input_ids[p:], s.labels[p:]
            end = start + len(answer)
            ids[r, start:end] = torch.tensor(answer, dtype=torch.long)
            positions[r, start:end] = torch.arange(p, p + len(answer))
            mask[r, start:end, :p] = True
            mask[r, start:end, start:end] = causal[: len(answer), : len(answer)]
            for m, target in enumerate(answer_labels):
                if target != IGNORE and p + m > 0:
                    labels.append((r, p - 1 if m == 0 else start + m - 1, target, k))
            start = end
    row, column, target, sequence = (torch.tensor(v, dtype=torch.long) for v in zip(*labels))
    select = torch.zeros((len(rows), width), dtype=torch.bool)
    select[row, column] = True
    order = select.flatten().cumsum(0) - 1
    return SharedPromptBatch(ids, mask[:, None], positions, select, order[row * width + column], target, sequence)


def collate(sequences: list[Encoded]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded to the longest sequence (dynamic padding: padding is masked, the loss is unchanged)."""
    width = max(len(s.input_ids) for s in sequences)
    ids = torch.zeros((len(sequences), width), dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    labels = torch.full((len(sequences), width), IGNORE, dtype=torch.long)
    for row, s in enumerate(sequences):
        ids[row, : len(s.input_ids)] = torch.tensor(s.input_ids)
        mask[row, : len(s.input_ids)] = 1
        labels[row, : len(s.labels)] = torch.tensor(s.labels)
    return ids, mask, labels
