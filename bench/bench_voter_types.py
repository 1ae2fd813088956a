"""Anomalous voter types (pipelines/audit/voter_types.py): precision and recall per planted type,
and the audit's wall time at a million votes.

Validity: for each seed (default 1, 2, 3) it simulates ``--votes`` votes (default 100,000)
between 12 models from 1,000 voters, 80% unbiased and 5% each of the four planted anomalies at
the strengths of ``pipelines.simulate.population.STRONG_ANOMALIES`` (always-left position voters,
length-loving voters, always-one-model fans, random clickers), runs ``voter_types`` (defaults: BH
at 0.05 over voters, >= 20 votes to be flagged) and prints, per planted type and pooled over the
seeds, for voters with >= ``--min-votes`` votes (default 20):

* detection: recall = share of the type's planted voters that are flagged (whatever the label);
  precision = share of the voters flagged with the type's label that are planted anomalies of
  any type (a flag on an unbiased voter is the error);
* labelling: recall = share of the type's planted voters flagged with the right label,
  precision = share of the voters given the label that are planted as that type;

plus the flag rate of the unbiased voters, and as peers the single-purpose audits run on the same
votes (position, concentrated voters, style, anomalous voters: each flagged-or-not against the
one planted type it targets, precision counting every other flag as an error). Then (unless
``--timing-votes 0``) it simulates ``--timing-votes`` votes (default 1,000,000) from 20,000
voters with the default voter mix and 20 models, as bench/bench_audit.py does, and times
``voter_types`` on them (best of ``--repeats``), with the anomalous- and concentrated-voter
audits on the same votes as a yardstick (the machine is shared: compare ratios).
No assertions (tests/test_voter_types.py asserts floors). Usage:
``python bench/bench_voter_types.py [--votes N] [--seeds 1,2,3] [--timing-votes N]``
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from pipelines.audit.anomalous import anomalous_voters
from pipelines.audit.concentrated import concentrated_voters
from pipelines.audit.run import audit_votes
from pipelines.audit.validity import detection, simulated_votes, voter_truth
from pipelines.audit.voter_types import voter_types
from pipelines.simulate.population import STRONG_ANOMALIES

MIX = {"unbiased": 0.80, "position": 0.05, "length": 0.05, "fan": 0.05, "random": 0.05}
# planted simulator type -> the label voter_types should give it
LABELS = {"position": "side", "fan": "one_model", "length": "length", "random": "random"}


# the single-purpose audits run on the same votes: audit key -> (planted type it targets)
PEERS = {
    "position": "position",
    "concentrated_voters": "fan",
    "style": "length",
    "anomalous_voters": "random",
}


def labelled(work: Path, seed: int, votes: int) -> tuple[pd.DataFrame, list[dict]]:
    """One simulated arena's voters (judge, votes, planted type, flagged, label) and the
    single-purpose audits' detection scores against their target type (rows of dicts)."""
    v, truth = simulated_votes(
        work / f"sim{seed}", votes=votes, models=12, voters=1000, seed=seed,
        voter_mix=MIX, voter_params=STRONG_ANOMALIES,
    )  # fmt: skip
    table = voter_types(v).tables["voters"][["judge", "flagged", "type"]]
    planted = voter_truth(truth)[["judge", "type", "votes"]].rename(columns={"type": "planted"})
    peers = []
    for finding in audit_votes(v, only=list(PEERS), rounds=1):
        target = PEERS[finding.audit]
        peers.append(
            {
                "audit": finding.audit,
                "planted": target,
                **detection(finding.tables["voters"], truth, (target,)),
            }
        )
    return planted.merge(table, on="judge", how="left").fillna({"flagged": False, "type": ""}), peers


def scores(voters: pd.DataFrame, min_votes: int) -> pd.DataFrame:
    """Per planted type: detection recall (flagged at all) and precision (of the voters given this
    type's label, the share that are planted anomalies of any kind), labelling recall and
    precision (right label), and the counts behind them."""
    v = voters[voters["votes"] >= min_votes]
    rows = []
    for planted, label in LABELS.items():
        mine = v["planted"] == planted
        given = v["flagged"].astype(bool) & (v["type"] == label)
        right = mine & given
        rows.append(
            {
                "planted": planted,
                "label": label,
                "voters": int(mine.sum()),
                "detect_recall": float((mine & v["flagged"]).sum() / max(mine.sum(), 1)),
                "detect_precision": float((given & (v["planted"] != "unbiased")).sum() / max(given.sum(), 1)),
                "label_recall": float(right.sum() / max(mine.sum(), 1)),
                "label_precision": float(right.sum() / max(given.sum(), 1)),
                "labelled": int(given.sum()),
            }
        )
    return pd.DataFrame(rows)


def timing(work: Path, votes: int, repeats: int) -> None:
    t0 = time.perf_counter()
    v, _ = simulated_votes(work / "timing", votes=votes, models=20, voters=votes // 50, seed=0)
    print(f"\ntiming arena: {v.n:,} votes, {len(v.judges):,} voters, {len(v.models)} models "
          f"(simulated in {time.perf_counter() - t0:.0f} s)")  # fmt: skip
    for name, fn in (("voter_types", voter_types), ("anomalous_voters", anomalous_voters),
                     ("concentrated_voters", concentrated_voters)):  # fmt: skip
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            finding = fn(v)
            best = min(best, time.perf_counter() - t0)
        print(f"{name}: {best:.2f} s (best of {repeats}); {finding.flagged:,} voters flagged")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--votes", type=int, default=100_000)
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--min-votes", type=int, default=20)
    ap.add_argument("--timing-votes", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    pd.set_option("display.width", 200)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        every, peers = [], []
        for seed in seeds:
            voters, peer = labelled(work, seed, args.votes)
            every.append(voters.assign(seed=seed))
            peers.extend(peer)
            print(f"seed {seed}:")
            print(scores(voters, args.min_votes).round(3).to_string(index=False))
        pooled = pd.concat(every, ignore_index=True)
        print(f"\npooled over seeds {args.seeds}, voters with >= {args.min_votes} votes:")
        print(scores(pooled, args.min_votes).round(3).to_string(index=False))
        honest = pooled[(pooled["planted"] == "unbiased") & (pooled["votes"] >= args.min_votes)]
        print(f"unbiased voters flagged: {int(honest['flagged'].sum())} of {len(honest)} "
              f"({100 * honest['flagged'].mean():.2f}%)")  # fmt: skip
        sums = pd.DataFrame(peers).groupby(["audit", "planted"])[["tp", "fp", "fn"]].sum()
        sums["recall"] = sums["tp"] / (sums["tp"] + sums["fn"])
        sums["precision"] = sums["tp"] / (sums["tp"] + sums["fp"])
        print("\nthe single-purpose audits on the same votes (flagged at all vs their target type, pooled):")
        print(sums.round(3).to_string())
        if args.timing_votes:
            timing(work, args.timing_votes, args.repeats)


if __name__ == "__main__":
    main()
