"""The ``stgraph`` command: parses arguments and calls the library (no logic of its own)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence

from stgraph.errors import ConfigError, STGraphError

EXAMPLES = {
    "datasets": "stgraph datasets list\n  stgraph datasets info los-loop\n  stgraph datasets fetch chickenpox",
    "train": "stgraph train --config configs/train/forecast/los-loop-dcrnn.yaml --set train.epochs=5",
    "evaluate": "stgraph evaluate --checkpoint runs/los-loop-dcrnn\n  stgraph evaluate --checkpoint runs/los-loop-dcrnn --dataset los-loop",
    "quickstart": "stgraph quickstart --output quickstart-output",
    "build": "stgraph build --config configs/build/helsinki-roads.yaml\n"
    "  stgraph build --config configs/build/liverpool-bus.yaml --set sources.0.options.grid.cell_m=500",
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


def _add_set(p: argparse.ArgumentParser, example: str) -> None:
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config value, e.g. --set {example} (repeatable; values read as YAML)",
    )


def add_build_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the ``stgraph build`` options to ``parser`` (see :mod:`graph_builders.build`)."""
    parser.add_argument("--config", help="YAML build config (configs/build/NAME.yaml)")
    _add_set(parser, "fuse.max_dist_m=300 or sources.0.options.k=4")
    parser.add_argument(
        "--osm", help="OSM extract (.osm.pbf/.osm/.osm.bz2): the road graph sources are fused onto"
    )
    parser.add_argument(
        "--node",
        choices=("intersection", "segment"),
        default=None,
        help="road graph nodes (default intersection)",
    )
    sources = {
        "sensors": (
            "LOC.csv:READINGS.csv",
            "sensor locations (sensor_id, latitude, longitude) and wide readings",
        ),
        "raster": ("PATH", "netCDF/GRIB/zarr raster"),
        "trajectories": ("PATH", "GPS points table"),
        "events": ("PATH", "events table with longitude, latitude, time columns"),
        "moving": (
            "PATH",
            "moving-sensor reports (track id, time, lon, lat; speed derived): a kNN "
            "graph per step when alone, else interpolated onto the roads/grid",
        ),
    }
    for flag, (metavar, help_text) in sources.items():
        parser.add_argument(
            f"--{flag}", action="append", default=[], metavar=metavar, help=help_text
        )
    parser.add_argument("--interval", help="time step, e.g. 15min, 1h, 1D")
    parser.add_argument("--start", help="first time of sensor readings without a time column")
    parser.add_argument(
        "--cell-m",
        type=float,
        default=None,
        help="grid cell size (m) for trajectories/events/moving without --osm (default 500)",
    )
    parser.add_argument(
        "--bbox", help="grid extent W,S,E,N in degrees (default: the data's extent)"
    )
    parser.add_argument("-o", "--output", help="output directory (graph/, map.png, summary.json)")
    parser.add_argument("--color-by", help="variable (or node attribute) colouring the map")
    parser.add_argument("--name", help="build name (default: from the config or 'build')")
    parser.add_argument("--city", help="city name for the metadata")
    return parser


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
    _add_set(p, "train.lr=0.01")
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


def build_from_args(args: argparse.Namespace) -> int:
    """Run ``stgraph build`` from parsed arguments; a config error is one line and status 2."""
    try:
        from graph_builders.build import BuildFlags, config_from_flags, run_build
    except ImportError as exc:
        print(f"stgraph build: graph builders are not installed ({exc})", file=sys.stderr)
        return 2
    flags = BuildFlags(**{f.name: getattr(args, f.name) for f in dataclasses.fields(BuildFlags)})
    try:
        config = config_from_flags(args.config, flags, overrides=args.overrides)
        run_build(config, output=args.output, color_by=args.color_by)
    except ConfigError as exc:
        print(f"stgraph build: {exc}", file=sys.stderr)
        return 2
    return 0


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
    "build": build_from_args,
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
