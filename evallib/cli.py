"""Command line: ``evallib run PARAMS...``, ``evallib demo`` and ``evallib notebooks``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import EvallibError


def _summary(results):
    failed = 0
    for r in results:
        if r["status"] == "ok":
            inf = r["inference"]
            speed = inf.get("images_per_second")
            how = "cached predictions" if inf.get("cached") else f"{speed:.0f} images/s" if speed else ""
            print(f"ok      {r['name']}: {r['dataset']['images']} images, {how}")
        else:
            failed += 1
            print(f"FAILED  {r['name']}: {r['error']}", file=sys.stderr)
    return 1 if failed else 0


def _evaluate(files, args):
    from .run import render_index, run_many

    status = _summary(run_many(files, args.out, jobs=args.jobs, progress=not args.quiet,
                               render=not args.no_report, show_code=args.show_code))
    if not args.no_report:
        try:
            index = render_index(args.out, primary_metric=args.primary_metric, show_code=args.show_code)
            print(f"index   {index}")
        except Exception as exc:  # noqa: BLE001 -- the per-model reports are already written
            print(f"FAILED  index page: {type(exc).__name__}: {exc}", file=sys.stderr)
            status = 1
    return status


def cmd_run(args):
    from .params import find_params

    return _evaluate(find_params(args.params), args)


def cmd_demo(args):
    from .demo import build_demo

    build_demo(args.build, force=args.rebuild)
    return _evaluate(sorted(Path(args.params).glob("*.yaml")), args)


def cmd_notebooks(args):
    from .render import copy_notebooks

    for path, what in copy_notebooks(args.dest, overwrite=args.force):
        print(f"{what:<14}{path}")
    return 0


def main(argv=None):
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
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        p.add_argument("--no-report", action="store_true", help="predictions and run.json only, no HTML")
        p.add_argument("--show-code", action="store_true", help="include the notebooks' code cells in the HTML")
        p.add_argument("--primary-metric", default=None,
                       help="leaderboard metric: macro_f1 (default for classification), accuracy, top_5, "
                            "roc_auc_macro, auc (default for verification), tar_at_far, lfw_accuracy")
    nbs = sub.add_parser("notebooks", help="copy the report and comparison notebooks to open them in JupyterLab")
    nbs.add_argument("dest", nargs="?", default="notebooks", help="folder for the copies (default: notebooks/)")
    nbs.add_argument("--force", action="store_true", help="replace copies that were edited")
    args = parser.parse_args(argv)
    try:
        return {"run": cmd_run, "demo": cmd_demo, "notebooks": cmd_notebooks}[args.command](args)
    except EvallibError as exc:
        print(f"evallib: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
