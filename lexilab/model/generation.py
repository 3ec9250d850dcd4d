"""Greedy and beam-search decoding for lexilab's T5, both on the KV cache.

Beam search (Graves 2012, "Sequence Transduction with Recurrent Neural Networks"; length penalty as in
Wu et al. 2016, "Google's Neural Machine Translation System") keeps transformers' semantics (its
vectorised beam search, v4.50+) so that ``num_beams=k`` returns the same tokens as
``T5ForConditionalGeneration.generate(num_beams=k)``:

- each step takes the top ``2k`` (token, beam) continuations over all beams by summed log-probability;
  the best ``k`` that do not end continue as the running beams;
- a continuation ends on the end token or when it reaches ``max_new_tokens``; it may enter the row's
  ``k`` finished hypotheses only if it ranks among the top ``k`` of the step, scored by
  ``sum_logprob / generated_length ** length_penalty`` (generated length includes the end token);
- ``early_stopping=True``: a row stops once it holds ``k`` finished hypotheses; ``False``: it stops when
  the best running beam, normalised at its current length, cannot beat the worst finished one;
  ``"never"``: like False, but with a positive length penalty the running score is normalised at the
  maximum length (the optimistic bound);
- ``min_new_tokens``: the end token's log-probability is -inf until that many tokens exist.
The returned hypothesis of each row is its best finished one; positions after its end token hold pad
(transformers fills them with the end token id instead; the tokens up to the end token are the same).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from lexilab.errors import LexilabError

NEG = -1.0e9  # "impossible" score, as in transformers (finite so that sums stay ordered)


def _check_args(max_new_tokens, num_beams, min_new_tokens, length_penalty, early_stopping) -> None:
    for name, value, low in (("max_new_tokens", max_new_tokens, 1), ("num_beams", num_beams, 1),
                             ("min_new_tokens", min_new_tokens, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise LexilabError(f"generate: {name}: must be an integer >= {low}, got {value!r}")
    if early_stopping not in (True, False, "never"):
        raise LexilabError(f"generate: early_stopping: must be true, false or 'never', got {early_stopping!r}")
    if not isinstance(length_penalty, (int, float)) or isinstance(length_penalty, bool):
        raise LexilabError(f"generate: length_penalty: must be a number, got {length_penalty!r}")


@torch.no_grad()
def generate(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
             max_new_tokens: int = 20, num_beams: int = 1, length_penalty: float = 1.0,
             min_new_tokens: int = 0, early_stopping: bool | str = True) -> torch.Tensor:
    """(B, 1 + n) ids starting with the decoder start token. Runs in eval mode (no dropout) and
    restores the model's mode afterwards."""
    _check_args(max_new_tokens, num_beams, min_new_tokens, length_penalty, early_stopping)
    model.check_ids(input_ids, "input_ids")
    attention_mask = model.check_mask(attention_mask, input_ids.shape, "input_ids")
    was_training = model.training
    model.eval()
    try:
        states = model._encode(input_ids, attention_mask)
        if num_beams == 1:
            return greedy_search(model, states, attention_mask, max_new_tokens, min_new_tokens)
        return beam_search(model, states, attention_mask, num_beams, max_new_tokens, min_new_tokens,
                           float(length_penalty), early_stopping)
    finally:
        model.train(was_training)


def _next_logprobs(model, last_tokens: torch.Tensor, cache, generated: int, min_new_tokens: int) -> torch.Tensor:
    logprobs = F.log_softmax(model.decode(last_tokens[:, None], cache=cache)[:, -1].float(), dim=-1)
    if generated < min_new_tokens:
        logprobs[:, model.config.eos_token_id] = -float("inf")
    return logprobs


def greedy_search(model, states: torch.Tensor, mask: torch.Tensor, max_new_tokens: int,
                  min_new_tokens: int = 0) -> torch.Tensor:
    """Argmax decoding; a row that produced the end token is padded until every row has ended."""
    cfg = model.config
    cache = model.new_cache(states, mask)
    tokens = torch.full((states.shape[0], 1), cfg.decoder_start_token_id, dtype=torch.long, device=states.device)
    running = torch.ones(states.shape[0], dtype=torch.bool, device=states.device)
    for step in range(max_new_tokens):
        # log_softmax does not move the argmax; it only keeps one code path with beam search
        next_tokens = _next_logprobs(model, tokens[:, -1], cache, step, min_new_tokens).argmax(-1)
        next_tokens = torch.where(running, next_tokens, cfg.pad_token_id)
        tokens = torch.cat([tokens, next_tokens[:, None]], dim=1)
        running &= next_tokens != cfg.eos_token_id
        if not running.any():
            break
    return tokens


def _take(tensor: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Select along dim 1 (the beam axis) of a (B, beams, ...) tensor."""
    while index.dim() < tensor.dim():
        index = index.unsqueeze(-1)
    return torch.take_along_dim(tensor, index, dim=1)


def beam_search(model, states: torch.Tensor, mask: torch.Tensor, num_beams: int, max_new_tokens: int,
                min_new_tokens: int = 0, length_penalty: float = 1.0,
                early_stopping: bool | str = True) -> torch.Tensor:
    """Beam search with transformers' semantics (module docstring); returns the best hypothesis per row."""
    cfg = model.config
    batch, k, device = states.shape[0], num_beams, states.device
    max_len = max_new_tokens + 1  # sequences include the start token
    # hypothesis (b, j) is cache row b * k + j; all hypotheses of a row read the same encoder states
    cache = model.new_cache(states.repeat_interleave(k, 0), mask.repeat_interleave(k, 0))
    running = torch.full((batch, k, max_len), cfg.pad_token_id, dtype=torch.long, device=device)
    running[:, :, 0] = cfg.decoder_start_token_id
    running_scores = torch.zeros(batch, k, device=device)
    running_scores[:, 1:] = NEG  # the k beams start identical: expand only the first at step one
    finished, finished_len = running.clone(), torch.zeros(batch, k, dtype=torch.long, device=device)
    finished_scores = torch.full((batch, k), NEG, device=device)
    is_finished = torch.zeros(batch, k, dtype=torch.bool, device=device)
    improvable = torch.ones(batch, dtype=torch.bool, device=device)
    row_offset = torch.arange(batch, device=device)[:, None] * k
    n_candidates = 2 * k  # at most k candidates end with the single end token, so >= k keep running
    in_top_k = torch.arange(n_candidates, device=device) < k

    for cur_len in range(1, max_len):  # cur_len tokens exist; the new one goes to index cur_len
        logprobs = _next_logprobs(model, running[:, :, cur_len - 1].reshape(-1), cache, cur_len - 1,
                                  min_new_tokens)
        vocab = logprobs.shape[-1]
        totals = (logprobs.view(batch, k, vocab) + running_scores[:, :, None]).view(batch, k * vocab)
        cand_scores, flat = totals.topk(n_candidates, dim=1)
        cand_beam, cand_token = flat // vocab, flat % vocab
        cand_seqs = _take(running, cand_beam)
        cand_seqs[:, :, cur_len] = cand_token
        ended = (cand_token == cfg.eos_token_id) | (cur_len + 1 >= max_len)

        # running beams for the next step: the k best candidates that did not end
        open_scores = cand_scores + ended.float() * NEG
        keep = open_scores.topk(k, dim=1).indices
        running, running_scores = _take(cand_seqs, keep), _take(open_scores, keep)
        cache.reorder((_take(cand_beam, keep) + row_offset).view(-1), same_encoder_rows=True)

        # finished hypotheses: merge the newly ended top-k candidates into the row's k best
        row_full = is_finished.all(dim=1) & (early_stopping is True)
        eligible = ended & in_top_k & improvable[:, None] & ~row_full[:, None]
        normalised = torch.where(eligible, cand_scores / (cur_len ** length_penalty), NEG)
        merged = torch.cat([finished_scores, normalised], dim=1)
        best = merged.topk(k, dim=1).indices
        finished = _take(torch.cat([finished, cand_seqs], dim=1), best)
        finished_scores = _take(merged, best)
        finished_len = _take(torch.cat([finished_len, torch.full_like(cand_beam, cur_len)], dim=1), best)
        is_finished = _take(torch.cat([is_finished, eligible], dim=1), best)

        # can a running beam still beat the worst finished hypothesis? (rows with < k finished: yes)
        bound_len = max_len - 1 if (early_stopping == "never" and length_penalty > 0) else cur_len
        best_possible = running_scores[:, :1] / (bound_len ** length_penalty)
        worst = torch.where(is_finished, finished_scores.min(dim=1, keepdim=True).values, NEG)
        improvable &= (best_possible > worst).any(dim=1)
        if not improvable.any() or (early_stopping is True and is_finished.all()) or ended.all():
            break

    length = int(finished_len[:, 0].max())
    return finished[:, 0, : 1 + length]
