"""Command line: ``evallib run PARAMS...``, ``evallib demo``, ``evallib notebooks`` and ``evallib compare OLD NEW``.

Quiet by default: one progress bar per model, then a summary table (model, data, images, the
headline metrics with their 95% intervals, status). ``-v`` adds per-model details, the notebook
kernels' log messages and the tracebacks of failed models.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from ._messages import skipped_files
from .data import describe_class_order
from .errors import EvallibError
from .metrics.stats import format_interval

# headline metrics of the summary table, as metrics.json names them
SUMMARY_METRICS = ("accuracy", "macro_f1", "auc", "tar_at_far", "eer")


def _metric_cell(h: dict | None) -> str:
    if h is None:
        return "-"
    value, iv = h.get("value"), h.get("interval")
    if value is None or value != value:  # NaN
        return "n/a"
    return f"{value:.3f}" + (f" {format_interval(*iv, digits=3)}" if iv else "")


def summary_rows(results: list[dict], out_root: str | Path) -> tuple[list[str], list[list[str]]]:
    """The summary table of a run: a header and one row per model.

    Parameters
    ----------
    results : list of dict
        Run facts, as :func:`evallib.run.run_many` returns them.
    out_root : str or Path
        The output folder, where each model's ``metrics.json`` is read (metrics written for other
        predictions than this run's are not shown).

    Returns
    -------
    header : list of str
    rows : list of list of str
    """
    from .outputs import load_metrics

    metrics = {}
    for r in results:
        m = load_metrics(Path(out_root) / r["name"], arrays=False) if r["status"] == "ok" else None
        if m is not None and m.get("run", {}).get("predictions_key", r.get("predictions_key")) == \
                r.get("predictions_key"):
            metrics[r["name"]] = m.get("headline", {})
    shown = [k for k in SUMMARY_METRICS if any(k in h for h in metrics.values())]
    header = ["model", "data", "n", *shown, "status"]
    rows = []
    for r in results:
        if r["status"] != "ok":
            rows.append([r["name"], "-", "-", *["-"] * len(shown), "FAILED"])
            continue
        ds, inf = r["dataset"], r["inference"]
        status = "ok (cached predictions)" if inf.get("cached") else "ok"
        if r["name"] not in metrics:
            status += ", no metrics"
        h = metrics.get(r["name"], {})
        rows.append([r["name"], Path(ds["root"]).name, str(inf.get("images", ds["images"])),
                     *[_metric_cell(h.get(k)) for k in shown], status])
    return header, rows


def format_table(header: list[str], rows: list[list[str]]) -> str:
    """Plain-text table: columns padded to their widest cell, a rule under the header."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]

    def line(cells):
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def _details(r):
    inf = r["inference"]
    speed = inf.get("images_per_second")
    how = "cached predictions" if inf.get("cached") else f"{speed:.0f} images/s" if speed else ""
    report = r.get("report_seconds")
    if r.get("report_cached"):
        how += ", report unchanged"
    elif report is not None:
        how += f", report {report:.1f} s"
    return f"ok      {r['name']}: {r['dataset']['images']} images, {how}"


def _report(results, out_root, verbose):
    """Print the summary table (stdout) and the failures (stderr); 1 when a model failed."""
    failed = [r for r in results if r["status"] != "ok"]
    if verbose:
        for r in results:
            if r["status"] == "ok":
                print(_details(r))
    for r in results:
        if r["status"] == "ok":
            ds = r["dataset"]
            if ds.get("class_order"):
                print(f"{r['name']}: class order: {describe_class_order(ds['classes'], ds['class_order'])}")
            for w in r.get("warnings", []):
                print(f"WARNING {r['name']}: {w}", file=sys.stderr)
            if ds.get("skipped"):
                count, first = skipped_files(ds["skipped"])
                print(f"WARNING {r['name']}: {count} left out of the metrics: {first} "
                      f"(all in {Path(out_root) / r['name'] / 'run.json'})", file=sys.stderr)
    if results:
        print(format_table(*summary_rows(results, out_root)))
    for r in failed:
        print(f"FAILED  {r['name']}: {r['error']}", file=sys.stderr)
        if verbose and r.get("traceback"):
            print(r["traceback"], file=sys.stderr)
    return 1 if failed else 0


def _evaluate(files: list[Path], args: argparse.Namespace) -> int:
    from .run import check_label_overrides, check_unique_names, render_index, run_many

    check_unique_names(files)  # before a cluster starts or a model runs
    check_label_overrides(files)

    if args.cluster:
        from .cluster import connect, run_on_cluster

        client, cluster = connect(args.cluster)
        try:
            print(f"cluster {client.scheduler.address}, dashboard {client.dashboard_link}", file=sys.stderr)
            results = run_on_cluster(files, args.out, client, render=not args.no_report, show_code=args.show_code,
                                     verbose=args.verbose, progress=not args.quiet)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    else:
        results = run_many(files, args.out, jobs=args.jobs, progress=not args.quiet, render=not args.no_report,
                           show_code=args.show_code, verbose=args.verbose)
    status = _report(results, args.out, args.verbose)
    if not args.no_report:
        try:
            index = render_index(args.out, primary_metric=args.primary_metric, show_code=args.show_code,
                                 verbose=args.verbose)
            print(f"index   {index}")
        except Exception as exc:  # noqa: BLE001 -- the per-model reports are already written
            from .run import error_text

            print(f"FAILED  index page: {error_text(exc)}", file=sys.stderr)
            status = 1
    return status


def cmd_run(args: argparse.Namespace) -> int:
    from .params import find_params

    return _evaluate(find_params(args.params), args)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import build_demo

    build_demo(args.build, force=args.rebuild)
    return _evaluate(sorted(Path(args.params).glob("*.yaml")), args)


def cmd_notebooks(args: argparse.Namespace) -> int:
    from .report.render import copy_notebooks

    for path, what in copy_notebooks(args.dest, overwrite=args.force):
        print(f"{what:<14}{path}")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare two versions; 0 when the gate passes (or none is asked), 1 when it fails."""
    from .report.versions import floor_line, gate_message, pairs_line, write_version_comparison

    cmp, failing, folder = write_version_comparison(
        args.old, args.new, out_root=args.out, max_nfr=args.max_nfr, max_nfr_over_floor=args.max_nfr_over_floor,
        floor=args.floor, far=args.far, n_boot=args.n_boot, seed=args.seed, alpha=args.alpha,
        max_flips=args.gallery, page=not args.no_page)
    if cmp.result is not None:
        o = cmp.result.overall
        print(f"{cmp.old} -> {cmp.new}: {o.n:,} images, {o.negative_flips:,} negative flips, NFR {o.nfr:.4f} "
              f"{format_interval(*o.intervals['nfr'])}, {o.positive_flips:,} positive flips, "
              f"PFR {o.pfr:.4f}; {len(cmp.result.flagged())} row(s) flagged as regressions")
    else:
        print(f"{cmp.old} -> {cmp.new}: {len(cmp.y):,} images, embedding models (no class scores, no NFR)")
    if cmp.floor is not None:
        print(f"{cmp.old} -> {cmp.new}: {floor_line(cmp)}")
    if cmp.pairs is not None:
        print(f"{cmp.old} -> {cmp.new}: {pairs_line(cmp)}")
    print(f"compare {folder}")
    gate = cmp.gate(max_nfr=args.max_nfr, max_nfr_over_floor=args.max_nfr_over_floor)
    if gate is None:
        return 0
    print(gate_message(cmp, args.max_nfr, failing, max_nfr_over_floor=args.max_nfr_over_floor),
          file=sys.stdout if gate["passed"] else sys.stderr)
    return 0 if gate["passed"] else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="evallib", description="Evaluate ONNX image models into reports.")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="evaluate models described by params files")
    run.add_argument("params", nargs="+", help="params YAML files or folders of them")
    demo = sub.add_parser("demo", help="build the embedded digits demo and evaluate its models")
    demo.add_argument("--build", default="build/demo", help="where the demo data and models go")
    demo.add_argument("--params", default="params", help="folder of the demo params files")
    demo.add_argument("--rebuild", action="store_true", help="rebuild even if the build is up to date")
    for p in (run, demo):
        p.add_argument("--out", default="outputs", help="output folder (default: outputs/)")
        p.add_argument("--jobs", type=int, default=1, help="models evaluated in parallel")
        p.add_argument("--cluster", default=None, metavar="local[:N]|tcp://HOST:PORT",
                       help="run each model as a task on a Dask cluster: a local one of N worker processes, or "
                            "the scheduler at that address (the output folder must be shared; see docs/cluster.md)")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.add_argument("-v", "--verbose", action="store_true",
                       help="per-model details, the notebook kernels' log messages, tracebacks of failures")
        p.add_argument("--no-report", action="store_true", help="predictions and run.json only, no HTML")
        p.add_argument("--show-code", action="store_true", help="include the notebooks' code cells in the HTML")
        p.add_argument("--primary-metric", default=None,
                       help="leaderboard metric: macro_f1 (default for classification), accuracy, top_5, "
                            "roc_auc_macro, auc (default for verification), tar_at_far, lfw_accuracy")
    nbs = sub.add_parser("notebooks", help="copy the report and comparison notebooks to open them in JupyterLab")
    nbs.add_argument("dest", nargs="?", default="notebooks", help="folder for the copies (default: notebooks/)")
    nbs.add_argument("--force", action="store_true", help="replace copies that were edited")
    cmp = sub.add_parser("compare", help="what a new model version breaks: negative flips against an old version",
                         description="Compare two evaluated models image by image. Exit codes: 0 done (and the "
                                     "gate passed), 1 the gate failed (--max-nfr, --max-nfr-over-floor), 2 an error "
                                     "(a model not found, evaluated on other data, a floor on other data...).")
    cmp.add_argument("old", help="the old model: its folder name under --out, its output folder, or its params file")
    cmp.add_argument("new", help="the new model, the same way")
    cmp.add_argument("--out", default="outputs", help="output folder (default: outputs/); the comparison goes to "
                                                      "OUT/compare/OLD__NEW/")
    cmp.add_argument("--max-nfr", type=float, default=None, metavar="RATE",
                     help="gate: exit 1 when the upper bound of NFR's 95%% interval is above RATE, overall or in a "
                          "class or slice flagged as a regression (Benjamini-Hochberg)")
    cmp.add_argument("--floor", nargs=2, default=None, metavar=("A", "B"),
                     help="two runs of one recipe (another seed), named like OLD and NEW and evaluated on the same "
                          "data: their NFR is the noise floor the NFR of OLD -> NEW is shown against")
    cmp.add_argument("--max-nfr-over-floor", type=float, default=None, metavar="MARGIN",
                     help="gate: exit 1 when the upper bound of the 95%% interval of NFR minus the floor's NFR is "
                          "above MARGIN (needs --floor)")
    cmp.add_argument("--far", type=float, default=1e-3,
                     help="false accept rate of the pair flips at a matched FAR and of BCT's cross-test, for "
                          "embedding models (default 1e-3)")
    cmp.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    cmp.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    cmp.add_argument("--alpha", type=float, default=0.05, help="false discovery rate of the flagged rows")
    cmp.add_argument("--gallery", type=int, default=24, metavar="N", help="negative flips shown on the page")
    cmp.add_argument("--no-page", action="store_true", help="compare.json and flips.csv only, no HTML page")
    args = parser.parse_args(argv)
    if getattr(args, "verbose", False):
        logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    try:
        return {"run": cmd_run, "demo": cmd_demo, "notebooks": cmd_notebooks,
                "compare": cmd_compare}[args.command](args)
    except EvallibError as exc:
        print(f"evallib: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("evallib: interrupted: models not finished keep their previous outputs; run the same command "
              "again to finish (finished work is reused)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
