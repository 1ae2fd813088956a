"""Arena-scale statistics: interval coverage on simulated arenas, and speed against arena-rank.

1. **Coverage** (``--arenas`` simulated arenas per setting, the project's simulator,
   :func:`pipelines.simulate.simulate`): each method's 95% interval for each model's rating
   (centred on the models' mean, as shown) against the truth ``expected_rating`` (the BT fit on
   the expected outcome counts of the simulated battles: the estimand of a plain BT fit).
   Settings: ``clean`` (unbiased voters, no style or planted weakness effects) and ``default``
   (the simulator's defaults: biased voter types, style and refusal effects, planted weaknesses;
   BT is then misspecified and the sandwich's robustness is what is tested). Methods: bootstrap
   (100 rounds), sandwich, and both with LMArena's inverse-frequency reweighting on the clean
   setting only (reweighting changes the estimand of a misspecified fit, so its truth is
   ``expected_rating`` only where BT holds). Prints coverage with a Wilson interval and the
   mean half-width per method.
2. **Speed**, 1,000,000 simulated battles over 100 models (``bench_ratings.simulate``): global BT
   + 95% intervals, ours (aggregate + fit + sandwich, and + 100-round bootstrap) against
   arena-rank's ``BradleyTerry`` sandwich (its JAX compile in the first call, then a second
   call), evalica's BT point fit (no interval) and FastChat's ``compute_elo_mle_with_tie`` on a
   ``--fastchat-battles`` subsample, extrapolated linearly to 1M (stated in the row). Ratios
   are against our sandwich row of the same run. Also the max rating and half-width difference
   to arena-rank on those battles.

No assertions. Usage::

    python bench/bench_arena_scale.py [--arenas 100] [--votes 20000] [--models 12]
        [--skip-coverage] [--skip-speed] [--fastchat-battles 100000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_ratings import simulate as bt_battles  # noqa: E402
from bench_ratings import timed  # noqa: E402

from pipelines import ratings  # noqa: E402
from pipelines.simulate import simulate  # noqa: E402
from pipelines.stats import wilson_interval  # noqa: E402

CLEAN = {"voter_mix": {"unbiased": 1.0}, "weak_share": 0.0, "strong_share": 0.0, "style_coefs": {}}
METHODS = {
    "bootstrap (100 rounds)": {"ci": "bootstrap"},
    "sandwich": {"ci": "sandwich"},
    "bootstrap, reweighted": {"ci": "bootstrap", "reweight": True},
    "sandwich, reweighted": {"ci": "sandwich", "reweight": True},
}


def coverage(arenas: int, votes: int, models: int) -> pd.DataFrame:
    """One row per (setting, method, arena, model): covered (bool), half-width (points)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="arenatree-coverage-") as tmp:
        for setting, extra in (("clean", CLEAN), ("default", {})):
            t0 = time.perf_counter()
            for arena in range(arenas):
                voters = max(100, votes // 100)
                made = simulate(
                    Path(tmp) / f"{setting}{arena}", votes=votes, models=models, voters=voters,
                    seed=10_000 + arena, vote_truth=False, **extra,
                )  # fmt: skip
                battles = pd.read_parquet(made["files"]["votes"], columns=["model_a", "model_b", "winner"])
                battles["winner"] = battles["winner"].astype(str).replace({"tie (bothbad)": "tie_bothbad"})
                truth = json.loads(Path(made["files"]["truth"]).read_text())["models"]
                target = pd.Series({m["name"]: m["expected_rating"] for m in truth})
                for method, kw in METHODS.items():
                    if setting != "clean" and kw.get("reweight"):
                        continue
                    table = ratings.leaderboard(battles, rounds=100, seed=arena, **kw).set_index("model")
                    t = target.loc[table.index]
                    rows += [
                        {
                            "setting": setting,
                            "method": method,
                            "arena": arena,
                            "model": m,
                            # the truth is rounded to 0.01 points: count a bound within that as covering
                            "covered": bool(table.lower[m] - 0.005 <= t[m] <= table.upper[m] + 0.005),
                            "half_width": float(table.upper[m] - table.lower[m]) / 2,
                        }
                        for m in table.index
                    ]
            print(f"  {setting}: {arenas} arenas in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return pd.DataFrame(rows)


def print_coverage(frame: pd.DataFrame) -> None:
    print("| setting | method | intervals | covered | Wilson 95% | mean half-width (points) |")
    print("|---|---|---|---|---|---|")
    for (setting, method), g in frame.groupby(["setting", "method"], sort=False):
        k, n = int(g.covered.sum()), len(g)
        lo, hi = (float(v) for v in wilson_interval(np.array(k), np.array(n)))
        print(
            f"| {setting} | {method} | {n:,} | {k / n:.1%} | {lo:.1%}–{hi:.1%} | {g.half_width.mean():.1f} |"
        )


def speed(n_battles: int, n_models: int, fastchat_battles: int) -> None:
    from arena_rank.models.bradley_terry import BradleyTerry
    from arena_rank.utils.data_utils import PairDataset

    battles = bt_battles(n_models, n_battles, seed=0)
    rows = []
    ours, t_sw, c_sw = timed(lambda: ratings.leaderboard(battles, ci="sandwich"))
    rows.append(("ours: aggregate + BT + sandwich CIs", "measured", t_sw, c_sw))
    _, t, c = timed(lambda: ratings.leaderboard(battles, rounds=100, ci="bootstrap"))
    rows.append(("ours: aggregate + BT + 100-round bootstrap CIs", "measured", t, c))

    def arena_rank():
        data = PairDataset.from_pandas(battles)
        return BradleyTerry(n_competitors=len(data.competitors)).compute_ratings_and_cis(data)

    _, t, c = timed(arena_rank)
    rows.append(
        ("arena-rank: PairDataset + BradleyTerry sandwich, first call (JAX compile)", "measured", t, c)
    )
    theirs, t, c = timed(arena_rank)
    rows.append(("arena-rank: the same, second call", "measured", t, c))

    import evalica

    wmap = {"model_a": evalica.Winner.X, "model_b": evalica.Winner.Y}
    winners = [wmap.get(w, evalica.Winner.Draw) for w in battles["winner"]]
    _, t, c = timed(lambda: evalica.bradley_terry(battles["model_a"], battles["model_b"], winners))
    rows.append(("evalica: BT point fit only (no interval)", "measured", t, c))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastchat.serve.monitor.elo_analysis import compute_elo_mle_with_tie

        sub = battles.sample(fastchat_battles, random_state=0)
        _, t, c = timed(lambda: compute_elo_mle_with_tie(sub))
    f = n_battles / fastchat_battles
    rows.append(
        (
            f"FastChat compute_elo_mle_with_tie, point only ({fastchat_battles:,} timed, x{f:.0f})",
            "scaled",
            t * f,
            c * f,
        )
    )

    print(f"\n{n_battles:,} battles, {n_models} models: global Bradley–Terry with 95% intervals")
    print("| job | how | wall s | CPU s | wall / ours (sandwich) |")
    print("|---|---|---|---|---|")
    for name, how, wall, cpu in rows:
        print(f"| {name} | {how} | {wall:.2f} | {cpu:.2f} | {wall / t_sw:.1f}x |")
    theirs = pd.DataFrame(theirs).set_index("competitors").astype(float)
    mine = ours.set_index("model").loc[theirs.index]
    d_rating = (mine.rating - theirs.ratings).abs().max()
    width = ((mine.upper - mine.lower) / (theirs.rating_upper - theirs.rating_lower) - 1).abs().max()
    print(
        f"against arena-rank on the same battles: max |Δrating| {d_rating:.2e} points, "
        f"max relative Δ half-width {width:.2e}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arenas", type=int, default=100)
    ap.add_argument("--votes", type=int, default=20_000)
    ap.add_argument("--models", type=int, default=12)
    ap.add_argument("--battles", type=int, default=1_000_000)
    ap.add_argument("--speed-models", type=int, default=100)
    ap.add_argument("--fastchat-battles", type=int, default=100_000)
    ap.add_argument("--skip-coverage", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    if not args.skip_coverage:
        print(
            f"Coverage of 95% intervals: {args.arenas} simulated arenas per setting, "
            f"{args.votes:,} votes, {args.models} models"
        )
        print_coverage(coverage(args.arenas, args.votes, args.models))
    if not args.skip_speed:
        speed(args.battles, args.speed_models, args.fastchat_battles)


if __name__ == "__main__":
    main()
