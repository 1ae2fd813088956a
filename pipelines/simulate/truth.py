"""The simulator's truth files, written beside the votes.

``truth.json`` (schema ``arenatree-sim-truth/1``; rating points: 400 = 10x odds, mean 1000;
lists in the order given):

* ``schema``, ``generator`` {module, version};
* ``params``: every keyword of :func:`pipelines.simulate.simulate` as used (``voter_mix``
  normalised to sum 1, ranges as [min, max] lists, ``voter_params`` every voter parameter's
  range {position_logit, length_coef, refusal_penalty, random_tie, fan_loyalty, fan_presence:
  [min, max]} with the overrides applied, ``start`` as unix seconds, ``data_dir`` a
  string, ``id_prefix`` resolved);
* ``files`` {votes: file name inside the output folder, format, adapter:
  'arena-conversations', vote_truth: 'votes_truth.parquet' or null};
* ``counts`` {votes, models, voters, prompts (pool size), answers (distinct (model, prompt)
  answers shown), groups};
* ``scale`` {points_per_10x_odds: 400, logit_per_point: ln(10)/400, mean_rating: 1000};
* ``vote_model``: the formulas (strings) and coefficients: style_coefs {tokens, headers,
  lists, bold} (log-odds per unit of (x_a - x_b) / (x_a + x_b + 1)), refusal_penalty,
  tie_rate, bothbad_share, bothbad_refusal, bothbad_quality, voter_bias {type: formula};
* ``outcomes`` {'model_a', 'model_b', 'tie', 'tie (bothbad)': vote counts};
* ``models``: [{name, family, strength, popularity (appearance weight, sums to 1), style
  {mean_tokens, headers, lists, bold} (planned means per answer), refusal_rate,
  identity_leak_rate, offsets {group: points} (planted, non-zero only), expected_rating,
  expected_rating_unbiased, expected_rating_style_free (see :func:`.votes.expected_ratings`),
  battles, realised {answers, tokens, headers, lists, bold (means over its distinct answers
  shown), refusal_rate, identity_leak_rate}}];
* ``planted``: [{model, group, points, kind: 'weakness' | 'strength', n_prompts}];
* ``groups``: [{name, description, pattern (Python regex, searched case-insensitively in the
  prompt text; null for a language group), flags: 'IGNORECASE' (null for a language group),
  rule ('pattern', or "language != 'English'" for ``non_english``: the prompt's language as
  ``prompts.detect_language`` names it), eligible (size within params.group_size), n_prompts,
  n_votes, prompt_ids (sorted; every pool prompt matching, = text_hash(prompt text) as the
  importer computes it), question_ids (votes on those prompts, file order), expected_ratings
  {model: points or null} (plain BT on the expected outcomes of the group's votes)}];
* ``voter_mix`` {type: share};
* ``voters``: [{judge, type ('unbiased' | 'position' | 'length' | 'refusal_averse' | 'random' |
  'fan'), params (position: {position_logit}; length: {length_coef}; refusal_averse:
  {refusal_penalty}; random: {p_model_a, p_model_b, p_tie, p_tie_bothbad}; fan: {model,
  loyalty, presence (only when > 0: the probability that each of its battles was made to show
  `model`)}; unbiased: {}), activity (share of votes expected), votes, observed {outcome
  label: count}, expected {outcome label: mean probability over its votes}}];
* ``prompts``: [{prompt_id, source, source_id, language, groups [names], votes}] for the
  whole pool (``votes`` = 0 for prompts no vote used; only used prompts reach the store).

``votes_truth.parquet``: one row per vote in file order: question_id, prompt_id, model_a,
model_b, judge, voter_type, winner (the file's label), rating_a, rating_b (points on this
prompt: strength + offsets), logit_strength, logit_style (style + global refusal term),
logit_bias (voter term), p_model_a, p_model_b, p_tie, p_tie_bothbad (outcome probabilities),
and tokens, headers, lists, bold, refusal, identity_leak of each side (``_a``, ``_b``): exactly
what the importer computes from the texts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .votes import OUTCOMES

SCHEMA = "arenatree-sim-truth/1"
FEATURES = ("tokens", "headers", "lists", "bold", "refusal", "identity_leak")
COMPACT_LIST = 20  # string lists longer than this are written on one line


def dump_truth(path: Path, truth: dict) -> None:
    """Write ``truth`` as indented UTF-8 JSON, long string lists (ids) compact on one line."""
    lists: list[list] = []

    def strip(obj):
        if isinstance(obj, dict):
            return {k: strip(x) for k, x in obj.items()}
        if isinstance(obj, list):
            if len(obj) > COMPACT_LIST and all(isinstance(x, str) for x in obj):
                lists.append(obj)
                return f"\x00LIST{len(lists) - 1}\x00"
            return [strip(x) for x in obj]
        return obj

    text = json.dumps(strip(truth), indent=1, ensure_ascii=False, allow_nan=False)
    parts = text.split('"\\u0000LIST')
    out = [parts[0]]
    for part in parts[1:]:
        k, rest = part.split('\\u0000"', 1)
        out.append(json.dumps(lists[int(k)], ensure_ascii=False, separators=(",", ":")))
        out.append(rest)
    path.write_text("".join(out) + "\n", encoding="utf-8")


def write_vote_truth(
    path: Path,
    question_ids: list[str],
    battles: dict[str, np.ndarray],
    prompt_ids: list[str],
    models: list[str],
    judges: list[str],
    voter_type: list[str],
    rating_a: np.ndarray,
    rating_b: np.ndarray,
    parts: dict[str, np.ndarray],
    probs: np.ndarray,
    feats_a: dict[str, np.ndarray],
    feats_b: dict[str, np.ndarray],
) -> None:
    """Write votes_truth.parquet (columns in the module docstring). Arrays are shape (n_votes,)
    except ``probs`` (n_votes, 4); ``voter_type[j]`` is voter j's type name."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def dic(idx: np.ndarray, values: list[str]) -> pa.DictionaryArray:
        codes = pa.array(np.asarray(idx, dtype=np.int32))
        return pa.DictionaryArray.from_arrays(codes, pa.array(values, pa.string()))

    judge = battles["judge"]
    type_names = sorted(set(voter_type))
    type_code = np.array([type_names.index(t) for t in voter_type], dtype=np.int32)
    cols = {
        "question_id": pa.array(question_ids, pa.string()),
        "prompt_id": dic(battles["prompt"], prompt_ids),
        "model_a": dic(battles["a"], models),
        "model_b": dic(battles["b"], models),
        "judge": dic(judge, judges),
        "voter_type": dic(type_code[judge], type_names),
        "winner": dic(battles["winner"], list(OUTCOMES)),
        "rating_a": pa.array(rating_a),
        "rating_b": pa.array(rating_b),
        "logit_strength": pa.array(parts["strength"]),
        "logit_style": pa.array(parts["style"]),
        "logit_bias": pa.array(parts["bias"]),
    }
    for i, label in enumerate(("p_model_a", "p_model_b", "p_tie", "p_tie_bothbad")):
        cols[label] = pa.array(probs[:, i])
    for f in FEATURES:
        cols[f"{f}_a"] = pa.array(feats_a[f])
        cols[f"{f}_b"] = pa.array(feats_b[f])
    pq.write_table(pa.table(cols), path, compression="zstd", write_statistics=False)
