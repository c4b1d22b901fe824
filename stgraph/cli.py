"""The ``stgraph`` command: parses arguments and calls the library (no logic of its own)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from stgraph.errors import STGraphError

EXAMPLES = {
    "datasets": "stgraph datasets list\n  stgraph datasets info los-loop\n  stgraph datasets fetch chickenpox",
    "train": "stgraph train --config configs/train/forecast/los-loop-dcrnn.yaml --set train.epochs=5",
    "evaluate": "stgraph evaluate --checkpoint runs/los-loop-dcrnn\n  stgraph evaluate --checkpoint runs/los-loop-dcrnn --dataset los-loop",
    "quickstart": "stgraph quickstart --output quickstart-output",
    "build": "stgraph build --config configs/build/helsinki-roads.yaml",
    "finetune": "stgraph finetune --checkpoint runs/pretrained --dataset chickenpox",
    "predict": "stgraph predict --checkpoint runs/los-loop-dcrnn --dataset los-loop",
}


def _parser_for(
    sub: argparse._SubParsersAction, name: str, help_text: str
) -> argparse.ArgumentParser:
    return sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog="example:\n  " + EXAMPLES[name],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stgraph",
        description="stgraph: spatio-temporal graphs and a graph-native foundation model on PyG.",
        epilog="examples:\n  "
        + "\n  ".join(EXAMPLES[k] for k in ("quickstart", "datasets", "train", "evaluate")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _parser_for(sub, "datasets", "List, describe and fetch the registered real data sets.")
    dsub = p.add_subparsers(dest="action", metavar="ACTION")
    dsub.add_parser("list", help="one line per data set")
    pi = dsub.add_parser(
        "info", help="facts of one data set (N, T, interval, span, missing share, source)"
    )
    pi.add_argument("name")
    pf = dsub.add_parser(
        "fetch", help="make sure the files are local (download if missing), verify sha256"
    )
    pf.add_argument("name")

    p = _parser_for(sub, "train", "Train (and test) a model from a YAML config.")
    p.add_argument("--config", required=True, help="YAML training config")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.lr=0.01 (repeatable)",
    )
    p.add_argument(
        "--no-resume",
        action="store_true",
        help="refuse to continue an unfinished run in output.dir",
    )

    p = _parser_for(
        sub,
        "evaluate",
        "Evaluate a checkpoint directory; writes metrics.json and a per-horizon table.",
    )
    p.add_argument("--checkpoint", required=True, help="run directory written by `stgraph train`")
    p.add_argument(
        "--dataset", default=None, help="evaluate on another registered data set (same protocol)"
    )

    p = _parser_for(
        sub,
        "quickstart",
        "Train and evaluate a small model on real data, build a road graph, show results.",
    )
    p.add_argument(
        "--output",
        default="quickstart-output",
        help="directory for the report, plots and checkpoints",
    )
    p.add_argument(
        "--epochs", type=int, default=None, help="override the number of training epochs"
    )

    p = _parser_for(
        sub,
        "build",
        "Build an STGraph from raw city data (roads, sensors, rasters, trajectories, events).",
    )
    try:
        from graph_builders.build import add_build_arguments
    except ImportError:
        add_build_arguments = None
    if add_build_arguments is not None:
        add_build_arguments(p)

    p = _parser_for(
        sub, "finetune", "Fine-tune a pretrained model on a new data set (not available yet)."
    )
    p.add_argument("args", nargs=argparse.REMAINDER)
    p = _parser_for(sub, "predict", "Predict with a checkpoint on new data (not available yet).")
    p.add_argument("args", nargs=argparse.REMAINDER)
    return parser


def _cmd_datasets(args: argparse.Namespace) -> int:
    from stgraph import datasets

    if args.action == "list" or args.action is None:
        for name in datasets.list_datasets():
            facts = datasets.info(name)
            print(f"{name:22s} {facts.get('summary', '')}")
        return 0
    if args.action == "info":
        print(json.dumps(datasets.info(args.name), indent=2, default=str))
        return 0
    paths = datasets.fetch(args.name)
    for path in paths:
        print(path)
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from stgraph.train import load_config, metrics_table, train

    cfg = load_config(args.config, overrides=args.overrides)
    result = train(cfg, resume=not args.no_resume)
    print()
    print(metrics_table([result.metrics]))
    print(f"checkpoint and metrics: {result.run_dir}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from stgraph.train import evaluate_checkpoint, metrics_table

    result = evaluate_checkpoint(args.checkpoint, dataset=args.dataset)
    print(metrics_table([result]))
    for kind, path in result["files"].items():
        print(f"{kind}: {path}")
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from stgraph.quickstart import run_quickstart

    return run_quickstart(args.output, epochs=args.epochs)


def _cmd_build(args: argparse.Namespace) -> int:
    try:
        from graph_builders.build import build_from_args
    except ImportError as exc:
        print(f"stgraph build: graph builders are not installed ({exc})", file=sys.stderr)
        return 2
    return int(build_from_args(args) or 0)


def _cmd_later(args: argparse.Namespace) -> int:
    print(
        f"stgraph {args.command}: arrives with the foundation pretraining and transfer issue; not available yet."
    )
    return 2


COMMANDS = {
    "datasets": _cmd_datasets,
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "quickstart": _cmd_quickstart,
    "build": _cmd_build,
    "finetune": _cmd_later,
    "predict": _cmd_later,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return COMMANDS[args.command](args)
    except (STGraphError, FileNotFoundError, KeyError, ValueError) as exc:
        msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"stgraph {args.command}: error: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
