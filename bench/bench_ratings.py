"""Ratings benchmark: our Bradley–Terry + bootstrap against evalica and FastChat, and style control.

Prints, in one run (wall and CPU seconds, ratios against our own row of the same job; on a shared
machine the CPU column is the steadier one):

1. 1,000,000 simulated battles over 100 models (Bradley–Terry truth, 10-20% ties):
   - ours: aggregate + point fit + 100 multinomial bootstrap rounds (batched Newton, warm start).
     Target: < 3 s wall. Also the same 100 rounds solved one by one with scipy L-BFGS on the same
     cells (cold start from 0, and warm start from the point fit), to show why the solver is Newton.
   - evalica ``bradley_terry`` on the raw battles: one fit measured; its ``bootstrap`` (scipy,
     resamples the 1M battles, percentile) measured for ``--evalica-resamples`` resamples and
     extrapolated to 100, stated in the row.
   - evalica ``bradley_terry`` on our aggregated cells (``weights`` = counts): point + 100 refits
     on the same multinomial draws, all measured.
   - FastChat ``compute_elo_mle_with_tie`` (sklearn LogisticRegression on a dense duplicated design,
     2N x 100): one fit on a ``--fastchat-battles`` subsample measured and extrapolated linearly
     to 1M battles and to 101 fits (point + 100 rounds), stated in the row.
   - online Elo: our ``online_elo`` vs FastChat ``compute_elo`` on all 1M battles (both measured).
2. Style control on 100,000 battles with style features, 100 bootstrap rounds (ours, measured),
   next to one LMArena-notebook-style fit (sklearn LogisticRegression, C=1, duplicated battles)
   extrapolated to 101 fits.

No assertions. Usage: ``python bench/bench_ratings.py [--evalica-resamples 3] [--fastchat-battles 100000]``
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipelines.ratings import (  # noqa: E402
    aggregate,
    bootstrap_fit,
    fit_pairwise,
    online_elo,
    outcome_weights,
    pairwise_loss,
    resample_counts,
)
from pipelines.style_control import style_control  # noqa: E402

ROUNDS = 100
TARGET_SECONDS = 3.0


def simulate(n_models: int, n_battles: int, seed: int = 0, style: bool = False) -> pd.DataFrame:
    """Battles from BT truth (sd 150 points) with symmetric ties; optional style columns."""
    rng = np.random.default_rng(seed)
    truth = rng.normal(0, 150, n_models)
    a = rng.integers(0, n_models, n_battles)
    b = (a + rng.integers(1, n_models, n_battles)) % n_models
    logit = (truth[a] - truth[b]) * math.log(10) / 400
    frame: dict[str, np.ndarray] = {}
    if style:
        mean_tokens = rng.uniform(150, 900, n_models)
        t_a = rng.poisson(mean_tokens[a] * rng.lognormal(0, 0.5, n_battles))
        t_b = rng.poisson(mean_tokens[b] * rng.lognormal(0, 0.5, n_battles))
        logit = logit + 0.7 * (t_a - t_b) / (t_a + t_b + 1)
        frame = {"tokens_a": t_a, "tokens_b": t_b}
        for name, scale in (("headers", 3), ("lists", 6), ("bold", 4)):
            rate = rng.uniform(0, scale, n_models)
            frame[f"{name}_a"], frame[f"{name}_b"] = rng.poisson(rate[a]), rng.poisson(rate[b])
    p = 1 / (1 + np.exp(-logit))
    tie = 0.3 * np.minimum(p, 1 - p) * 2
    u = rng.random(n_battles)
    winner = np.select(
        [u < p - tie / 2, u < p, u < p + tie / 2], ["model_a", "tie", "tie_bothbad"], "model_b"
    )
    names = np.array([f"model-{i:03d}" for i in range(n_models)])
    return pd.DataFrame({"model_a": names[a], "model_b": names[b], "winner": winner, **frame})


def timed(fn: Callable[[], object]) -> tuple[object, float, float]:
    """(result, wall seconds, CPU seconds of this process)."""
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - w0, time.process_time() - c0


def lbfgs_rounds(cells, n_models: int, draws: np.ndarray, start: np.ndarray | None) -> np.ndarray:
    """Each round fitted on its own by scipy L-BFGS on the same loss (FastChat's per-round scheme)."""
    out = []
    for counts in draws:
        score_a, score_b, tie_total = outcome_weights(counts[None])
        args = (cells.a, cells.b, score_a, score_b, tie_total, None, False, n_models)

        def fun(x: np.ndarray, args: tuple = args) -> tuple[float, np.ndarray]:
            loss, grad, _ = pairwise_loss(x[None], *args, derivatives=True)
            return float(loss[0]), grad[0]

        x0 = np.zeros(n_models) if start is None else start
        # the settings the previous L-BFGS implementation of bradley_terry used
        options = {"gtol": 1e-10, "ftol": 1e-15, "maxiter": 1000}
        out.append(minimize(fun, x0, jac=True, method="L-BFGS-B", options=options).x)
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--battles", type=int, default=1_000_000)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--evalica-resamples", type=int, default=3)
    parser.add_argument("--fastchat-battles", type=int, default=100_000)
    parser.add_argument("--style-battles", type=int, default=100_000)
    args = parser.parse_args()

    import evalica

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastchat.serve.monitor.elo_analysis import compute_elo, compute_elo_mle_with_tie

    battles = simulate(args.models, args.battles)
    rows: list[tuple[str, str, float, float]] = []

    # ---- ours
    (models, cells), t_agg, c_agg = timed(lambda: aggregate(battles))
    fit, t_fit, c_fit = timed(lambda: bootstrap_fit(models, cells, ROUNDS, seed=0))
    ours_wall, ours_cpu = t_agg + t_fit, c_agg + c_fit
    rows.append(("ours: aggregate + BT + 100 rounds", "measured", ours_wall, ours_cpu))
    n = len(models)
    _, t_pt, c_pt = timed(lambda: fit_pairwise(cells.a, cells.b, n, cells.counts))
    draws, t_rs, c_rs = timed(lambda: resample_counts(cells, ROUNDS, np.random.default_rng(0)))
    _, t_nw, c_nw = timed(lambda: fit_pairwise(cells.a, cells.b, n, draws, start=fit.point))
    rows.append(("  of which aggregate", "measured", t_agg, c_agg))
    rows.append(("  of which point fit (Newton from 0)", "measured", t_pt, c_pt))
    rows.append(("  of which multinomial resampling", "measured", t_rs, c_rs))
    rows.append(("  of which 100 rounds, batched Newton", "measured", t_nw, c_nw))
    cold, t_lc, c_lc = timed(lambda: lbfgs_rounds(cells, n, draws, None))
    warm, t_lw, c_lw = timed(lambda: lbfgs_rounds(cells, n, draws, fit.point))
    rows.append(("  100 rounds, per-round L-BFGS, cold", "measured", t_lc, c_lc))
    rows.append(("  100 rounds, per-round L-BFGS, warm", "measured", t_lw, c_lw))
    newton = fit.draws
    to_points = 400 / math.log(10)
    agree = [np.abs(x - newton).max() * to_points for x in (cold, warm)]

    # ---- evalica on raw battles
    winner_map = {"model_a": evalica.Winner.X, "model_b": evalica.Winner.Y}
    winners = [winner_map.get(w, evalica.Winner.Draw) for w in battles["winner"]]
    _, t_ev, c_ev = timed(lambda: evalica.bradley_terry(battles["model_a"], battles["model_b"], winners))
    k = args.evalica_resamples
    _, t_evb, c_evb = timed(
        lambda: evalica.bootstrap(
            evalica.bradley_terry, battles["model_a"], battles["model_b"], winners,
            n_resamples=k, bootstrap_method="percentile", random_state=0,
        )
    )  # fmt: skip
    per = (t_evb - t_ev) / k, (c_evb - c_ev) / k  # bootstrap() also makes one point fit
    rows.append(("evalica raw: one BT fit on 1M battles", "measured", t_ev, c_ev))
    how = f"{k} resamples measured, ->100"
    rows.append(("evalica raw: fit + bootstrap 100 (scipy, percentile)", how, t_ev + per[0] * ROUNDS,
                 c_ev + per[1] * ROUNDS))  # fmt: skip

    # ---- evalica on our aggregated cells, same draws
    names = np.asarray(models, dtype=object)
    xs = np.repeat(names[cells.a], 3)
    ys = np.repeat(names[cells.b], 3)
    wk = [evalica.Winner.X, evalica.Winner.Y, evalica.Winner.Draw] * len(cells.a)

    def evalica_cells() -> np.ndarray:
        point = evalica.bradley_terry(xs, ys, wk, weights=cells.counts.ravel())
        for counts in draws:
            evalica.bradley_terry(xs, ys, wk, weights=counts.ravel(), index=pd.Index(models))
        return 400 * np.log10(point.scores.reindex(models).to_numpy())

    ev_point, t_evc, c_evc = timed(evalica_cells)
    ours_point = fit.point * 400 / math.log(10)
    ev_gap = np.ptp((ev_point - ev_point.mean()) - (ours_point - ours_point.mean()))
    rows.append(("evalica on cells: point + 100 weighted refits", "measured", t_evc, c_evc))

    # ---- FastChat sklearn MLE
    sub = battles.iloc[: args.fastchat_battles].replace({"winner": {"tie_bothbad": "tie (bothbad)"}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, t_fc, c_fc = timed(lambda: compute_elo_mle_with_tie(sub))
    factor = args.battles / len(sub) * (ROUNDS + 1)
    rows.append((f"fastchat MLE: one fit on {len(sub):,} battles", "measured", t_fc, c_fc))
    rows.append(
        (
            "fastchat MLE: 1M battles, point + 100 rounds",
            f"extrapolated x{factor:,.0f}",
            t_fc * factor,
            c_fc * factor,
        )
    )

    # ---- online Elo
    _, t_oe, c_oe = timed(lambda: online_elo(battles))
    fc_battles = battles.replace({"winner": {"tie_bothbad": "tie (bothbad)"}})
    _, t_fe, c_fe = timed(lambda: compute_elo(fc_battles))

    # ---- style control
    style_battles = simulate(args.models, args.style_battles, seed=1, style=True)
    res, t_sc, c_sc = timed(lambda: style_control(style_battles, rounds=ROUNDS, seed=0))
    from sklearn.linear_model import LogisticRegression

    def sklearn_style_fit() -> None:
        # LMArena notebook: dense [+-ln10 model columns | z-scored features], duplicated battles, C=1
        idx = {m: i for i, m in enumerate(models)}
        m = len(style_battles)
        X = np.zeros((2 * m, n + 4))
        ia, ib = style_battles["model_a"].map(idx).to_numpy(), style_battles["model_b"].map(idx).to_numpy()
        for half in (0, m):
            X[half + np.arange(m), ia] = math.log(10)
            X[half + np.arange(m), ib] = -math.log(10)
        cols = [f"{f}_{s}" for f in ("tokens", "headers", "lists", "bold") for s in "ab"]
        raw = style_battles[cols].to_numpy(dtype=float)
        z = (raw[:, 0::2] - raw[:, 1::2]) / (raw[:, 0::2] + raw[:, 1::2] + 1)
        z = (z - z.mean(0)) / z.std(0)
        X[:, n:] = np.vstack([z, z])
        w = style_battles["winner"].to_numpy()
        y = np.concatenate([w == "model_a", (w == "model_a") | (w == "tie") | (w == "tie_bothbad")]).astype(
            float
        )
        LogisticRegression(fit_intercept=False).fit(X, y)

    _, t_sk, c_sk = timed(sklearn_style_fit)

    print(f"\n1) {args.battles:,} battles, {args.models} models, {len(cells.a):,} cells, {ROUNDS} rounds")
    print(f"{'job':52s} {'how':28s} {'wall s':>9s} {'CPU s':>9s} {'x wall':>8s} {'x CPU':>8s}")
    for name, how, wall, cpu in rows:
        print(f"{name:52s} {how:28s} {wall:9.2f} {cpu:9.2f} {wall / ours_wall:8.1f} {cpu / ours_cpu:8.1f}")
    verdict = "OK" if ours_wall < TARGET_SECONDS else "OVER"
    print(f"target: ours < {TARGET_SECONDS:.0f} s wall -> {verdict} ({ours_wall:.2f} s)")
    print(f"L-BFGS (cold, warm) vs batched Newton, max difference over all rounds: {agree[0]:.1e}, "
          f"{agree[1]:.1e} points")  # fmt: skip
    print(f"evalica (default tolerance 1e-6) vs ours on the point fit: max gap {ev_gap:.1e} points")
    print(f"\nonline Elo over {args.battles:,} battles: ours {t_oe:.2f} s, FastChat compute_elo {t_fe:.2f} s "
          f"(x{t_fe / t_oe:.1f})")  # fmt: skip
    print(f"\n2) style control, {len(style_battles):,} battles ({res.battles_used:,} used), {ROUNDS} rounds")
    print(f"ours: {t_sc:.2f} s wall, {c_sc:.2f} s CPU (point + 100 rounds + the plain leaderboard)")
    print(f"LMArena-notebook sklearn fit: one fit {t_sk:.2f} s wall, {c_sk:.2f} s CPU -> x101 = "
          f"{t_sk * 101:.0f} s wall (extrapolated), x{t_sk * 101 / t_sc:.0f} ours")  # fmt: skip
    print(res.coefficients.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
