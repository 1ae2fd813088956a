"""Fixed-baseline view: every model against one baseline, scored as AlpacaEval scores it.

AlpacaEval (github.com/tatsu-lab/alpaca_eval, ``metrics/winrate.py`` and ``metrics/helpers.py``)
reads one *preference* per instruction on its scale: 1 = the baseline's answer is better, 2 = the
model's, 1.5 (or 0) = a draw, anything between = a soft judgement. Per model, with
``p = preference - 1`` after 0 -> 1.5 and values outside [1, 2] dropped:

* ``win_rate`` = mean(p) * 100; ``standard_error`` = sem(p) * 100 (sample SD, ddof 1, / sqrt n);
* ``n_wins`` = #(p > 0.5), ``n_wins_base`` = #(p < 0.5), ``n_draws`` = #(preference in {0, 1.5}),
  ``n_total`` = #valid;
* ``discrete_win_rate``: the same mean after each preference is rounded to 1 or 2 (1.5 stays a
  draw, worth 0.5);
* ``avg_length``: int(mean characters of the model's answers);
* ``length_controlled_winrate`` (:func:`length_controlled`): AlpacaEval's
  ``length_controlled_minimal`` GLM, the win rate the model would have if its answers were as
  long as the baseline's.

The preference of a vote comes from its stored raw AlpacaEval ``preference`` (imports of format
``alpaca-eval``) or else from its winner (model_a 1, model_b 2, tie or both-bad 1.5), turned so
that 2 always means "the model beat the baseline" whichever side the baseline sat on.

The baseline itself gets AlpacaEval's row by construction: win rate 50, standard error 0, every
instruction a draw. A dataset has a fixed baseline when one model is in every vote
(:func:`fixed_baseline`).
"""

from __future__ import annotations

import math

import duckdb
import numpy as np
import pandas as pd
import sklearn
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import make_scorer
from sklearn.model_selection import GroupKFold

from .battles import NO_FILTERS, Filters, checked_battles_query
from .errors import ArenatreeError
from .leaderboards import subtree_prompt_ids
from .queries import records
from .tree.read import resolve_tree

DRAW = 1.5
LC_FOLDS = 5  # AlpacaEval's GroupKFold(n_splits=5)
LC_SEED = 123  # AlpacaEval's random_state
LC_MIN_VOTES = 2 * LC_FOLDS  # fewer: no cross-validated fit
COLUMNS = (
    "model",
    "win_rate",
    "standard_error",
    "n_wins",
    "n_wins_base",
    "n_draws",
    "n_total",
    "discrete_win_rate",
    "length_controlled_winrate",
    "avg_length",
)
WINNER_PREFERENCE = {"model_a": 1.0, "model_b": 2.0, "tie": DRAW, "tie_bothbad": DRAW}


def fixed_baseline(con: duckdb.DuckDBPyConnection, dataset: str, filters: Filters = NO_FILTERS) -> str | None:
    """The model that plays in every vote of ``dataset`` (passing ``filters``), or None.

    With only two models both are in every vote; the one always on side a is the baseline (it is
    where AlpacaEval writes its reference), else there is none."""
    sql, params = checked_battles_query(con, dataset, filters, ("model_a", "model_b"), ordered=False)
    rows = con.execute(
        f"""
        WITH v AS ({sql}),
        sides AS (SELECT model_a AS model, 1 AS on_a FROM v UNION ALL SELECT model_b, 0 FROM v)
        SELECT model, sum(on_a) = (SELECT count(*) FROM v) AS always_a,
               (SELECT count(DISTINCT model) FROM sides)
        FROM sides GROUP BY model HAVING count(*) = (SELECT count(*) FROM v) ORDER BY model
        """,  # noqa: S608 - sql is battles_query's, values are parameters
        params,
    ).fetchall()
    if not rows or rows[0][2] < 2:
        return None
    if len(rows) == 1:
        return rows[0][0]
    always_a = [m for m, a, _ in rows if a]
    return always_a[0] if len(always_a) == 1 else None


def baseline_votes(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    baseline: str,
    filters: Filters = NO_FILTERS,
    prompt_ids: list[str] | None = None,
) -> pd.DataFrame:
    """One row per vote between ``baseline`` and another model: model, prompt_id, preference (AlpacaEval's
    scale, 2 = the model won; float), len_model and len_base (characters of the two answers,
    NaN when not stored), index (AlpacaEval's instruction index where imported, else NaN), in
    AlpacaEval's order (index, then battle id). ``prompt_ids``: only votes on these prompts."""
    sql, params = checked_battles_query(
        con, dataset, filters, ("battle_id", "model_a", "model_b", "winner", "prompt_id"), ordered=False
    )
    scope = "AND list_contains(?, v.prompt_id)" if prompt_ids is not None else ""
    df = con.execute(
        f"""
        SELECT v.battle_id, v.prompt_id, v.model_a, v.model_b, v.winner,
               CASE WHEN i.format = 'alpaca-eval' THEN TRY_CAST(b.metadata->>'preference' AS DOUBLE) END
                   AS raw_preference,
               TRY_CAST(b.metadata->>'index' AS BIGINT) AS "index",
               length(ra.text) AS len_a, length(rb.text) AS len_b
        FROM ({sql}) v
        JOIN battles b ON b.dataset = ? AND b.battle_id = v.battle_id
        JOIN imports i ON i.import_id = b.import_id
        LEFT JOIN responses ra ON ra.dataset = b.dataset AND ra.response_id = b.response_a
        LEFT JOIN responses rb ON rb.dataset = b.dataset AND rb.response_id = b.response_b
        WHERE (v.model_a = ? OR v.model_b = ?) {scope}
        ORDER BY "index" NULLS LAST, v.battle_id
        """,  # noqa: S608 - sql is battles_query's, values are parameters
        [*params, dataset, baseline, baseline, *([prompt_ids] if prompt_ids is not None else [])],
    ).df()
    pref = df["raw_preference"].where(df["raw_preference"].notna(), df["winner"].map(WINNER_PREFERENCE))
    pref = pref.astype(float).replace({0.0: DRAW})
    base_is_a = (df["model_a"] == baseline).to_numpy()
    return pd.DataFrame(
        {
            "model": np.where(base_is_a, df["model_b"], df["model_a"]),
            "prompt_id": df["prompt_id"],
            "preference": np.where(base_is_a, pref, 3.0 - pref),
            "len_model": np.where(base_is_a, df["len_b"], df["len_a"]).astype(float),
            "len_base": np.where(base_is_a, df["len_a"], df["len_b"]).astype(float),
            "index": df["index"].astype(float),
        }
    )


def head_to_head(preference: np.ndarray) -> dict[str, float]:
    """AlpacaEval's ``get_winrate`` of one model: win_rate, standard_error, n_wins, n_wins_base,
    n_draws, n_total (of the valid preferences) and discrete_win_rate, rates in percent.

    ``preference``: float array (n,) on AlpacaEval's scale (0 and 1.5 draws; values outside
    [1, 2] and NaN are dropped, as AlpacaEval drops them)."""
    raw = np.asarray(preference, dtype=float)
    pref = np.where(raw == 0.0, DRAW, raw)
    p = pref[(pref >= 1.0) & (pref <= 2.0)] - 1.0
    n = len(p)
    # AlpacaEval's zero-one rule rounds the raw preference (half to even) after 1.5 -> 0, then
    # keeps what lands in [1, 2] (so 2.5 counts as a win there, though the soft rate drops it)
    rounded = np.round(np.where(raw == DRAW, 0.0, raw))
    rounded = np.where(rounded == 0.0, DRAW, rounded)
    discrete = rounded[(rounded >= 1.0) & (rounded <= 2.0)] - 1.0
    return {
        "win_rate": float(p.mean() * 100) if n else math.nan,
        "standard_error": float(p.std(ddof=1) / math.sqrt(n) * 100) if n > 1 else math.nan,
        "n_wins": int((p > 0.5).sum()),
        "n_wins_base": int((p < 0.5).sum()),
        "n_draws": int((p == 0.5).sum()),
        "n_total": n,
        "discrete_win_rate": float(discrete.mean() * 100) if len(discrete) else math.nan,
    }


def _logloss_continuous(y_true, y_pred, true_prob, true_sample_weight=None) -> float:
    """AlpacaEval's scorer: log loss against the soft labels the duplicated rows stand for."""
    target = np.where(y_true == 1, true_prob, 1 - true_prob)
    y_pred = np.clip(y_pred, 1e-15, 1 - 1e-15)
    loss = target * np.log(y_pred) + (1 - target) * np.log(1 - y_pred)
    if true_sample_weight is not None:
        loss = loss * true_sample_weight
    return float(-np.mean(loss))


def length_controlled(p: np.ndarray, len_model: np.ndarray, len_base: np.ndarray) -> float | None:
    """AlpacaEval's ``length_controlled_minimal`` win rate in percent, or None when the data
    cannot fit it (a length missing, fewer than :data:`LC_MIN_VOTES` votes, or equal lengths).

    ``p``: (n,) preferences minus 1, in [0, 1] (1 = the model won); ``len_model``, ``len_base``:
    (n,) answer lengths in characters, in the same order (the order sets the folds). The GLM is
    ``logit P(model wins) = w1 * tanh((len_base - len_model) / sd) + w0`` with soft labels (each
    vote twice, as label 1 weighted p and label 0 weighted 1 - p), an L1 penalty chosen by
    5-fold grouped cross-validation on the continuous log loss, no free intercept. The
    length-controlled win rate is the prediction at zero length difference: logistic(w0)."""
    p, len_model, len_base = (np.asarray(x, dtype=float) for x in (p, len_model, len_base))
    n = len(p)
    if n < LC_MIN_VOTES or np.isnan(len_model).any() or np.isnan(len_base).any():
        return None
    delta = len_base - len_model
    sd = delta.std(ddof=1)
    if not sd > 0:
        return None
    x = np.column_stack([np.tanh(delta / sd), np.ones(n)])
    true_prob = np.concatenate([p, 1 - p])
    groups = np.tile(np.arange(n), 2)
    scorer = make_scorer(_logloss_continuous, response_method="predict_proba", greater_is_better=False)
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = scorer.set_score_request(true_prob=True, true_sample_weight=True)
        model = LogisticRegressionCV(
            cv=GroupKFold(n_splits=LC_FOLDS),
            scoring=scorer,
            l1_ratios=(1.0,),
            solver="liblinear",
            fit_intercept=False,
            random_state=LC_SEED,
            use_legacy_attributes=False,
        ).set_fit_request(sample_weight=True)
        model.fit(
            np.vstack([x, x]),
            np.concatenate([np.ones(n), np.zeros(n)]),
            sample_weight=true_prob,
            groups=groups,
            true_prob=true_prob,
            true_sample_weight=None,
        )
    return float(100 / (1 + math.exp(-model.coef_[0][1])))


def baseline_table(votes: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """AlpacaEval's leaderboard of ``votes`` (from :func:`baseline_votes`): one row per model
    with :data:`COLUMNS`, the baseline's row by construction, sorted by win rate (best first)."""
    rows = []
    for model, g in votes.groupby("model", sort=True):
        row = {"model": model, **head_to_head(g["preference"].to_numpy())}
        valid = g[(g["preference"] >= 1) & (g["preference"] <= 2)]
        row["length_controlled_winrate"] = length_controlled(
            valid["preference"].to_numpy() - 1, valid["len_model"].to_numpy(), valid["len_base"].to_numpy()
        )
        row["avg_length"] = int(g["len_model"].mean()) if g["len_model"].notna().all() else None
        rows.append(row)
    base = votes.drop_duplicates("prompt_id")  # the baseline answers each prompt once
    n_base = len(base)
    rows.append(
        {
            "model": baseline,
            "win_rate": 50.0,
            "standard_error": 0.0,
            "n_wins": 0,
            "n_wins_base": 0,
            "n_draws": n_base,
            "n_total": n_base,
            "discrete_win_rate": 50.0,
            "length_controlled_winrate": 50.0,
            "avg_length": int(base["len_base"].mean()) if base["len_base"].notna().all() else None,
        }
    )
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    return table.sort_values(["win_rate", "model"], ascending=[False, True], ignore_index=True)


def baseline_leaderboard(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    baseline: str,
    filters: Filters = NO_FILTERS,
    prompt_ids: list[str] | None = None,
) -> pd.DataFrame:
    """:func:`baseline_table` of the dataset's votes against ``baseline``; ArenatreeError when
    the baseline is not a model of the dataset or not in every vote."""
    votes = baseline_votes(con, dataset, baseline, filters, prompt_ids)
    if votes.empty:
        raise ArenatreeError(
            f"model {baseline!r} plays no vote of dataset {dataset!r}; --vs takes one of its models"
        )
    sql, params = checked_battles_query(con, dataset, filters, ("model_a", "model_b"), ordered=False)
    others = con.execute(
        f"SELECT count(*) FROM ({sql}) WHERE model_a <> ? AND model_b <> ?",  # noqa: S608
        [*params, baseline, baseline],
    ).fetchone()[0]
    if others:
        raise ArenatreeError(
            f"{others:,} votes of dataset {dataset!r} do not involve {baseline!r}: it is not a fixed "
            "baseline; the fixed-baseline view needs one model in every vote (use the ratings instead)"
        )
    return baseline_table(votes, baseline)


def extreme_change(win_rate: float, lc: float, abs_diff: float = 10, rel_diff: float = 4) -> bool:
    """AlpacaEval's ``get_is_extreme_changes``: the length-controlled rate ``lc`` left the band
    it trusts around the raw ``win_rate`` (both in percent), "a sign of failure of the GLM"."""
    low = min(win_rate - win_rate / rel_diff, win_rate - abs_diff)
    high = max(win_rate + (100 - win_rate) / rel_diff, win_rate + abs_diff)
    return lc < low or lc > high


def baseline_notes(table: pd.DataFrame, baseline: str) -> list[str]:
    """Sentences to show beside a :func:`baseline_table`: what the baseline row and the
    length-controlled column are, and which models' length control AlpacaEval would distrust."""
    others = table[table["model"] != baseline]
    notes = [
        f"{baseline} is in every vote: each model is scored against it as AlpacaEval scores it; its own "
        "row is AlpacaEval's by construction (50%, every instruction a draw).",
    ]
    lc = others.dropna(subset=["length_controlled_winrate"])
    if len(lc):
        notes.append(
            "Length-controlled win rates are AlpacaEval's length_controlled_minimal GLM (the rate at equal "
            "answer length); its published length_controlled_v1 adds each instruction's difficulty, which "
            "AlpacaEval fits on its own annotations and which these files do not carry."
        )
        wild = [r.model for r in lc.itertuples() if extreme_change(r.win_rate, r.length_controlled_winrate)]
        if wild:
            notes.append(
                f"For {', '.join(wild)} the length-controlled rate is further from the raw one than "
                "AlpacaEval trusts (it warns of a failed GLM there): read it as a sign of strong length "
                "preference, not as a rate."
            )
    missing = others[others["length_controlled_winrate"].isna()]["model"].tolist()
    if missing:
        notes.append(
            f"No length-controlled rate for {', '.join(missing)}: it needs both answers' texts and at least "
            f"{LC_MIN_VOTES} votes with different answer lengths."
        )
    return notes


def baseline_view(
    con: duckdb.DuckDBPyConnection,
    dataset: str,
    baseline: str,
    filters: Filters = NO_FILTERS,
    node: int | None = None,
    tree_id: str | None = None,
) -> dict:
    """The fixed-baseline view as a JSON-ready dict: dataset, baseline, node, node_description,
    n_votes, table (records of :func:`baseline_table`) and notes; ``node`` scopes it to the
    prompts under that node of the dataset's tree (default: the newest)."""
    prompt_ids, description = None, None
    if node is not None:
        tree_id = resolve_tree(con, dataset, tree_id)
        prompt_ids, description = subtree_prompt_ids(con, tree_id, node)
    table = baseline_leaderboard(con, dataset, baseline, filters, prompt_ids)
    return {
        "dataset": dataset,
        "baseline": baseline,
        "node": node,
        "node_description": description,
        "tree_id": tree_id,
        "n_votes": int(table.loc[table["model"] != baseline, "n_total"].sum()),
        "table": records(table),
        "notes": baseline_notes(table, baseline),
    }
