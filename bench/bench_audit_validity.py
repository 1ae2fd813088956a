"""Voter-audit validity on the simulator: recall and precision of each per-voter detector against
the planted voter types, estimated vs planted effect sizes, planted nodes, and a null arena.

For each seed (default 1, 2, 3) it simulates ``--votes`` votes (default 100,000) between 12
models from 1,000 voters with the default voter mix (70% unbiased; position, length,
refusal-averse, random and fan voters) and a planted extra refusal penalty of 2 log-odds on the
'health_medicine' prompts, runs every audit (``pipelines.audit.run.audit_votes``, default
parameters: BH at 0.05, voters need >= 20 votes to be flagged) and prints, pooled over seeds:

1. per detector and minimum votes per voter (20, 50, 100, 150, 200): recall = planted voters of
   the detector's type that are flagged, precision = flagged voters that are of that type
   (``pipelines.audit.validity.detection``);
2. effect sizes: the mean planted parameter of the planted voters with >= 100 votes next to the
   mean per-voter estimate, the global style coefficients (per unit of normalised difference) and
   refusal penalty next to the simulator's;
3. nodes: is the planted refusal node flagged (and how many others are), and how many of the
   nodes flagged for ranking inversions hold a planted offset of >= 100 points;
4. a null arena (only unbiased voters, no offsets) per seed: flags per detector.

No assertions (tests/test_audit_*.py assert floors). Usage:
``python bench/bench_audit_validity.py [--votes N] [--seeds 1,2,3]``
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from pipelines.audit.run import audit_votes
from pipelines.audit.validity import detection, simulated_votes, voter_truth

REFUSAL_GROUP = "health_medicine"
REFUSAL_EXTRA = 2.0
THRESHOLDS = (20, 50, 100, 150, 200)
# detector -> (audit key, table, planted types that are true positives)
DETECTORS = {
    "anomalous voters (random clickers)": ("anomalous_voters", "voters", ("random",)),
    "anomalous voters (random, fan, position)": ("anomalous_voters", "voters", ("random", "fan", "position")),
    "concentrated voters (fans)": ("concentrated_voters", "voters", ("fan",)),
    "position preference (left/right voters)": ("position", "voters", ("position",)),
    "length preference (length voters)": ("style", "voters", ("length",)),
    "refusal aversion (refusal-averse voters)": ("refusal", "voters", ("refusal_averse",)),
}
# planted parameter -> (audit key, table, estimate column)
EFFECTS = {
    "position_logit": ("position", "voters", "left_logit"),
    "length_coef": ("style", "voters", "length_coef"),
    "refusal_penalty": ("refusal", "voters", "refusal_extra"),
}


def run_seed(work: Path, seed: int, votes: int) -> dict:
    v, truth = simulated_votes(
        work / f"sim{seed}", votes=votes, models=12, voters=1000, seed=seed,
        refusal_groups={REFUSAL_GROUP: REFUSAL_EXTRA},
    )  # fmt: skip
    findings = {f.audit: f for f in audit_votes(v, seed=seed)}
    null_v, _ = simulated_votes(
        work / f"null{seed}", votes=votes, models=12, voters=1000, seed=seed,
        voter_mix={"unbiased": 1.0}, weak_share=0.0, strong_share=0.0,
    )  # fmt: skip
    null = {f.audit: f for f in audit_votes(null_v, seed=seed)}
    return {"v": v, "truth": truth, "findings": findings, "null": null}


def detection_rows(runs: list[dict]) -> pd.DataFrame:
    rows = []
    for name, (key, table, types) in DETECTORS.items():
        for t in THRESHOLDS:
            tp = fp = fn = 0
            for r in runs:
                d = detection(r["findings"][key].tables[table], r["truth"], types, min_votes=t)
                tp, fp, fn = tp + d["tp"], fp + d["fp"], fn + d["fn"]
            rows.append({
                "detector": name, "min votes": t, "planted": tp + fn, "flagged": tp + fp,
                "recall": tp / (tp + fn) if tp + fn else np.nan,
                "precision": tp / (tp + fp) if tp + fp else np.nan,
            })  # fmt: skip
    return pd.DataFrame(rows)


def effect_rows(runs: list[dict]) -> pd.DataFrame:
    rows = []
    for param, (key, table, column) in EFFECTS.items():
        planted, estimated = [], []
        for r in runs:
            truth = voter_truth(r["truth"])
            truth = (
                truth[(truth["votes"] >= 100) & truth[param].notna()] if param in truth else truth.iloc[:0]
            )
            est = r["findings"][key].tables[table].set_index("judge")[column].rename("estimate")
            both = truth.join(est, on="judge").dropna(subset=["estimate"])
            planted += both[param].tolist()
            estimated += both["estimate"].tolist()
        rows.append({
            "effect": f"per-voter {param} (voters >= 100 votes)", "planted": np.mean(planted),
            "estimated": np.mean(estimated), "n": len(planted),
            "correlation": np.corrcoef(planted, estimated)[0, 1] if len(planted) > 2 else np.nan,
        })  # fmt: skip
    truth = runs[0]["truth"]
    for feature, planted in truth["vote_model"]["style_coefs"].items():
        tables = [r["findings"]["style"].tables["coefficients"].set_index("feature") for r in runs]
        coefs = [t.loc[feature, "coef_per_unit"] for t in tables]
        rows.append({"effect": f"global style {feature} (per unit)", "planted": planted,
                     "estimated": float(np.mean(coefs)), "n": len(runs)})  # fmt: skip
    pen = [
        r["findings"]["refusal"].tables["overall"].set_index("model").loc["strength + style", "coef"]
        for r in runs
    ]
    planted = -truth["params"]["refusal_penalty"]
    rows.append({"effect": "global refusal penalty (strength + style)", "planted": planted,
                 "estimated": float(np.mean(pen)), "n": len(runs)})  # fmt: skip
    return pd.DataFrame(rows)


def node_rows(runs: list[dict]) -> pd.DataFrame:
    rows = []
    for r in runs:
        groups = [g["name"] for g in r["truth"]["groups"]]
        node_of = {name: i + 1 for i, name in enumerate(groups)}  # validity.group_tree numbering
        ref = r["findings"]["refusal"].tables["nodes"]
        flagged = set(ref.loc[ref["flagged"], "node_id"])
        big = {node_of[p["group"]] for p in r["truth"]["planted"] if abs(p["points"]) >= 100}
        inv = r["findings"]["inversions"].tables["nodes"]
        inv_flagged = set(inv.loc[inv["flagged"], "node_id"])
        rows.append({
            "seed": r["truth"]["params"]["seed"],
            "refusal node flagged": node_of[REFUSAL_GROUP] in flagged,
            "other refusal nodes flagged": len(flagged - {node_of[REFUSAL_GROUP]}),
            "inversion nodes flagged": len(inv_flagged),
            "... with a planted offset >= 100 pts": len(inv_flagged & big),
            "nodes tested for inversions": len(inv),
        })  # fmt: skip
    return pd.DataFrame(rows)


def null_rows(runs: list[dict]) -> pd.DataFrame:
    rows = []
    for r in runs:
        row = {"seed": r["truth"]["params"]["seed"]}
        for key, f in r["null"].items():
            flags = sum(int(t["flagged"].sum()) for t in f.tables.values() if "flagged" in t)
            row[key] = flags
        rows.append(row)
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--votes", type=int, default=100_000)
    ap.add_argument("--seeds", default="1,2,3")
    args = ap.parse_args()
    pd.set_option("display.width", 200)
    with tempfile.TemporaryDirectory() as tmp:
        runs = [run_seed(Path(tmp), int(s), args.votes) for s in args.seeds.split(",")]
    print(f"\n1. detection ({args.votes:,} votes, 12 models, 1,000 voters; seeds {args.seeds}; pooled)")
    print(detection_rows(runs).to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    print("\n2. effect sizes")
    print(effect_rows(runs).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print(f"\n3. nodes (planted refusal penalty +{REFUSAL_EXTRA} log-odds on '{REFUSAL_GROUP}')")
    print(node_rows(runs).to_string(index=False))
    print("\n4. null arena (unbiased voters only, no planted offsets): flagged rows per audit")
    print(null_rows(runs).to_string(index=False))


if __name__ == "__main__":
    main()
