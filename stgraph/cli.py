"""The ``stgraph`` command: parses arguments and calls the library (no logic of its own).

Conventions (every command):

- results (tables, listings, paths asked for) go to stdout; progress and information go through
  the ``stgraph`` :mod:`logging` logger to stderr (``-q``: warnings only, ``-v``: debug);
- a failure the library reports (:class:`~stgraph.errors.STGraphError`, or a file that cannot be
  read) is one line ``stgraph COMMAND: error: MESSAGE`` on stderr and exit status 1;
  ``--debug`` or ``STGRAPH_DEBUG=1`` shows the traceback instead; a usage error is argparse's,
  status 2;
- a command that writes takes ``-o/--output``;
- ``--help`` imports neither torch nor the builders: commands import the library when they run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence

from stgraph.errors import STGraphError

log = logging.getLogger("stgraph")

EXAMPLES = {
    "datasets": "stgraph datasets list\n  stgraph datasets info los-loop\n  stgraph datasets fetch chickenpox",
    "train": "stgraph train --config configs/train/forecast/los-loop-dcrnn.yaml --set train.epochs=5",
    "evaluate": "stgraph evaluate --checkpoint runs/los-loop-dcrnn\n  stgraph evaluate --checkpoint stgraph-small --dataset melbourne-pedestrian   # zero-shot\n  stgraph evaluate --checkpoint stgraph-small --graph build-output/mine/graph --horizon 6",
    "quickstart": "stgraph quickstart --output quickstart-output",
    "build": "stgraph build --config configs/build/helsinki-roads.yaml\n"
    "  stgraph build --config configs/build/liverpool-bus.yaml --set sources.0.options.grid.cell_m=500",
    "pretrain": "stgraph pretrain --config configs/pretrain/small.yaml --set train.steps=200",
    "finetune": "stgraph finetune --checkpoint stgraph-small --dataset melbourne-pedestrian --mode adapter --budget 1d --epochs 3",
    "predict": "stgraph predict --checkpoint stgraph-small --dataset melbourne-pedestrian --horizon 6 -o forecasts.parquet",
}


def _add_common(p: argparse.ArgumentParser, *, top: bool) -> None:
    """``-q``/``-v``/``--debug``: on the main parser with defaults, on each command suppressed
    (so ``stgraph -v train`` and ``stgraph train -v`` both work and neither resets the other)."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    g = p.add_argument_group("output and diagnostics")
    g.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default(False),
        help="warnings and errors only",
    )
    g.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default(0),
        help="more detail (debug messages of the stgraph logger)",
    )
    g.add_argument(
        "--debug",
        action="store_true",
        default=default(False),
        help="show the full traceback of an error (also: STGRAPH_DEBUG=1)",
    )


def _parser_for(
    sub: argparse._SubParsersAction, name: str, help_text: str
) -> argparse.ArgumentParser:
    p = sub.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog="example:\n  " + EXAMPLES[name],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(p, top=False)
    return p


def _add_output(p: argparse.ArgumentParser, help_text: str, default: str | None = None) -> None:
    p.add_argument("-o", "--output", default=default, metavar="DIR", help=help_text)


def _version() -> str:
    from stgraph import __version__

    return f"stgraph {__version__}"


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
        "--osm",
        help="OSM extract (.osm.pbf, .osm, .osm.bz2, .osm.gz): the road graph sources are fused "
        "onto",
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
            "sensor locations (sensor_id, latitude, longitude; names in any case; ids read as "
            "text) and readings: wide (a column per sensor id, a time column found or given by "
            "--time-col) or long (time, sensor_id, value)",
        ),
        "raster": ("PATH", "netCDF/GRIB/zarr raster"),
        "trajectories": ("PATH", "GPS points table"),
        "events": (
            "PATH",
            "events table with longitude, latitude and time columns (names in any case; the "
            "time from --time-col or --time, the type from --event-type)",
        ),
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
    parser.add_argument(
        "--time-col",
        metavar="COLUMN",
        help="time column of --sensors readings and of --events (default: sensors: the wide "
        "table's column of times, events: 'time'); with --time, of the sensors only",
    )
    parser.add_argument(
        "--time",
        dest="time_parts",
        metavar="PART=COL_OR_VALUE,...",
        help="events: the time composed from columns and constants, e.g. "
        "year=2017,month=Month,day=Day,hour=Hour (parts year, month, day, hour, minute, second)",
    )
    parser.add_argument(
        "--event-type",
        metavar="COLUMN",
        help="events: column of the event type (one variable each)",
    )
    parser.add_argument(
        "--tz",
        help="time zone of naive times of --sensors/--events, e.g. Europe/Madrid (default UTC)",
    )
    parser.add_argument("--start", help="first time of sensor readings without a time column")
    parser.add_argument(
        "--cell-m",
        type=float,
        default=None,
        help="grid cell size (m) for trajectories/events/moving without --osm (default 500)",
    )
    parser.add_argument(
        "--bbox",
        help="grid extent W,S,E,N in degrees (default: the 0.5-99.5 %% extent of the data's "
        "points, so that a few stray coordinates do not stretch the grid; the points outside "
        "are dropped as outside_regions and counted in the summary)",
    )
    _add_output(parser, "output directory (graph/, map.png, summary.json)")
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
    parser.add_argument("--version", action="version", version=_version())
    _add_common(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = _parser_for(sub, "datasets", "List, describe and fetch the registered real data sets.")
    dsub = p.add_subparsers(dest="action", metavar="ACTION")
    _add_common(dsub.add_parser("list", help="one line per data set"), top=False)
    pi = dsub.add_parser(
        "info", help="facts of one data set (N, T, interval, span, missing share, source)"
    )
    pi.add_argument("name")
    _add_common(pi, top=False)
    pf = dsub.add_parser(
        "fetch", help="make sure the files are local (download if missing), verify sha256"
    )
    pf.add_argument("name")
    _add_common(pf, top=False)
    _add_output(
        pf, "folder to download missing files into (default: $STGRAPH_CACHE or ~/.cache/stgraph)"
    )

    p = _parser_for(sub, "train", "Train (and test) a model from a YAML config.")
    p.add_argument("--config", required=True, help="YAML training config")
    _add_set(p, "train.lr=0.01")
    _add_output(p, "run directory (default: the config's output.dir); same as --set output.dir=DIR")
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
    p.add_argument(
        "--checkpoint",
        required=True,
        help="a `stgraph train`/`finetune` run directory, or a pretrained checkpoint (directory "
        "or shipped name, e.g. stgraph-small): then zero-shot, with no gradient step",
    )
    _add_data(p, required=False)
    _add_lengths(p)
    _add_output(p, "where a zero-shot report goes (default: zero-shot/<data set>)")

    p = _parser_for(
        sub,
        "quickstart",
        "The mission in one run: build Melbourne's sensor graph, run the shipped model on it "
        "zero-shot, fine-tune it on one day, predict, and print the table.",
    )
    _add_output(p, "directory for the report, plots and checkpoints", default="quickstart-output")
    p.add_argument(
        "--epochs", type=int, default=None, help="override the fine-tuning epochs (default 4)"
    )

    p = _parser_for(
        sub,
        "build",
        "Build an STGraph from raw city data (roads, sensors, rasters, trajectories, events).",
    )
    add_build_arguments(p)

    p = _parser_for(
        sub, "pretrain", "Pretrain the foundation model on a corpus of graphs from a YAML config."
    )
    p.add_argument(
        "--config", required=True, help="YAML pretraining config (configs/pretrain/NAME.yaml)"
    )
    _add_set(p, "train.steps=200")
    _add_output(p, "run directory (default: the config's output.dir); same as --set output.dir=DIR")

    p = _parser_for(
        sub, "finetune", "Fine-tune a pretrained checkpoint on a data set or a built graph."
    )
    p.add_argument("--checkpoint", required=True, help="pretrained checkpoint (dir or name)")
    _add_data(p, required=True)
    p.add_argument("--mode", choices=("full", "head", "adapter"), default="adapter")
    p.add_argument(
        "--budget",
        default=None,
        help="training data or steps: 1d, 12h, 1w (first span of the training part), 10%%, "
        "'500 steps' (default: the whole training part)",
    )
    p.add_argument("--epochs", type=int, default=10, help="most epochs (default 10)")
    p.add_argument("--lr", type=float, default=5e-4, help="learning rate (default 5e-4)")
    p.add_argument("--seed", type=int, default=0)
    _add_lengths(p)
    _add_set(p, "train.batch_size=16")
    _add_output(p, "run directory (default: runs/finetune-<data set>)")

    p = _parser_for(sub, "predict", "Write forecasts after a graph's last observation (parquet).")
    p.add_argument("--checkpoint", required=True, help="pretrained checkpoint or run directory")
    _add_data(p, required=True)
    p.add_argument(
        "--start", default=None, help="forecast from this time instead (e.g. 2012-03-07T08:00)"
    )
    _add_lengths(p)
    _add_output(p, "parquet file (default: forecasts.parquet)", default="forecasts.parquet")
    return parser


def _add_data(p: argparse.ArgumentParser, *, required: bool) -> None:
    g = p.add_mutually_exclusive_group(required=required)
    g.add_argument("--dataset", default=None, help="registry name (or a graph directory)")
    g.add_argument("--graph", default=None, help="a graph directory (stgraph build / STGraph.save)")


def _add_lengths(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input-steps", type=int, default=12, help="input steps (default 12)")
    p.add_argument("--horizon", type=int, default=12, help="steps ahead (default 12)")


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
    location = {} if args.output is None else {"cache_dir": args.output}
    paths = datasets.fetch(args.name, **location)
    for path in paths:
        print(path)
    log.info("%s: %d file(s) local, sha256 verified", args.name, len(paths))
    return 0


def _with_output(overrides: list[str], output: str | None) -> list[str]:
    """``-o DIR`` as the last ``--set output.dir=DIR`` (it wins over the config and ``--set``)."""
    return list(overrides) if output is None else [*overrides, f"output.dir={output}"]


def _cmd_train(args: argparse.Namespace) -> int:
    from stgraph.train import load_config, metrics_table, train

    cfg = load_config(args.config, overrides=_with_output(args.overrides, args.output))
    result = train(cfg, resume=not args.no_resume)
    print()
    print(metrics_table([result.metrics]))
    log.info("checkpoint and metrics: %s", result.run_dir)
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from pathlib import Path

    from stgraph.train import evaluate_checkpoint, metrics_table

    run = Path(args.checkpoint)
    if (run / "config.yaml").is_file() and not (run / "model.yaml").is_file():
        data = args.graph if args.graph is not None else args.dataset
        result = evaluate_checkpoint(args.checkpoint, dataset=data)
        print(metrics_table([result]))
        for kind, path in result["files"].items():
            log.info("%s: %s", kind, path)
        return 0
    from stgraph.pretrained import resolve_pretrained
    from stgraph.train.transfer import resolve_data, transfer_protocol, zero_shot

    resolve_pretrained(args.checkpoint)  # neither a run nor a pretrained checkpoint: say so
    if args.dataset is None and args.graph is None:
        raise ValueError("a pretrained checkpoint needs --dataset NAME or --graph DIR to run on")
    graph, label, _ = resolve_data(args.dataset, args.graph)
    protocol = transfer_protocol(input_steps=args.input_steps, horizon=args.horizon)
    out = args.output or str(Path("zero-shot") / label)
    results = zero_shot(args.checkpoint, graph, dataset=label, protocol=protocol, output=out)
    print(metrics_table(results))
    log.info("zero-shot report, plots and maps: %s", out)
    return 0


def _cmd_finetune(args: argparse.Namespace) -> int:
    from stgraph.train import load_config, metrics_table, train
    from stgraph.train.transfer import finetune_raw, resolve_data

    graph, label, data = resolve_data(args.dataset, args.graph)
    raw = finetune_raw(
        args.checkpoint,
        data,
        mode=args.mode,
        budget=args.budget,
        input_steps=args.input_steps,
        horizon=args.horizon,
        output=args.output or f"runs/finetune-{label}",
        epochs=args.epochs,
        lr=args.lr,
        seed=args.seed,
    )
    cfg = load_config(raw=raw, overrides=args.overrides)
    result = train(cfg, graph=graph)
    print(metrics_table([result.metrics]))
    log.info("fine-tuned run (resumable with the same command): %s", result.run_dir)
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from stgraph.tasks.predict import forecast_table, write_forecasts
    from stgraph.train.transfer import load_forecaster, resolve_data

    graph, _, _ = resolve_data(args.dataset, args.graph)
    model = load_forecaster(
        args.checkpoint, graph, input_steps=args.input_steps, horizon=args.horizon
    )
    table = forecast_table(
        model, graph, input_steps=args.input_steps, horizon=args.horizon, start=args.start
    )
    write_forecasts(table, args.output)
    print(table.head(10).to_string(index=False))
    log.info(
        "%d forecasts (%d nodes x %d steps x %d variables): %s",
        len(table),
        table["node"].nunique(),
        args.horizon,
        table["variable"].nunique(),
        args.output,
    )
    return 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from stgraph.quickstart import run_quickstart

    return run_quickstart(args.output, epochs=args.epochs)


def _cmd_pretrain(args: argparse.Namespace) -> int:
    from stgraph.train.pretrainer import load_pretrain_config, pretrain

    cfg = load_pretrain_config(args.config, overrides=_with_output(args.overrides, args.output))
    result = pretrain(cfg)
    print(f"pretrained {result.steps} steps in {result.seconds:.1f} s: {result.run_dir}")
    for source in result.sources:
        log.info("source: %s", json.dumps(source, default=str))
    return 0


def build_from_args(args: argparse.Namespace) -> int:
    """Run ``stgraph build`` from parsed arguments.

    Errors (:class:`~stgraph.errors.ConfigError` for a bad config or flags, other
    :class:`~stgraph.errors.STGraphError` for bad input files) propagate: :func:`main` prints them
    as one line and returns 1. Missing builders are one line and status 2.
    """
    try:
        from graph_builders.build import BuildFlags, config_from_flags, run_build
    except ImportError as exc:
        print(f"stgraph build: error: graph builders are not installed ({exc})", file=sys.stderr)
        return 2
    flags = BuildFlags(**{f.name: getattr(args, f.name) for f in dataclasses.fields(BuildFlags)})
    config = config_from_flags(args.config, flags, overrides=args.overrides)
    run_build(config, output=args.output, color_by=args.color_by)
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "datasets": _cmd_datasets,
    "train": _cmd_train,
    "evaluate": _cmd_evaluate,
    "quickstart": _cmd_quickstart,
    "build": build_from_args,
    "pretrain": _cmd_pretrain,
    "finetune": _cmd_finetune,
    "predict": _cmd_predict,
}

#: Errors shown as one line: the library's own, and what a bad path or file raises on the way
#: (a missing file, a directory given for a file, a file that is not text). Anything else is a
#: bug and keeps its traceback.
USER_ERRORS = (STGraphError, OSError, KeyError, ValueError)


def configure_logging(*, quiet: bool = False, verbose: int = 0) -> logging.Logger:
    """Send the ``stgraph`` logger to stderr: INFO by default, WARNING with ``quiet``, DEBUG with
    ``verbose``; messages as they are (``-v``: with level and logger name)."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    fmt = "%(levelname)s %(name)s: %(message)s" if verbose else "%(message)s"
    handler.setFormatter(logging.Formatter(fmt))
    for old in [h for h in log.handlers if getattr(h, "_stgraph_cli", False)]:
        log.removeHandler(old)
    handler._stgraph_cli = True  # type: ignore[attr-defined]
    log.addHandler(handler)
    log.setLevel(level)
    log.propagate = False
    return log


def error_message(exc: BaseException) -> str:
    """The one-line message of a user-facing error (a ``KeyError`` without its quotes; an
    ``OSError`` with its file name)."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    if isinstance(exc, OSError) and exc.filename is not None and str(exc.filename) not in str(exc):
        return f"{exc.filename}: {exc.strerror or exc}"
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.splitlines()) if "\n" in text and len(text) < 400 else text


def _debug_requested() -> bool:
    return os.environ.get("STGRAPH_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def _exit_on_broken_pipe() -> int:
    """stdout's reader went away (``stgraph datasets list | head -1``): stop quietly, as the
    Python docs advise (signal module, "Note on SIGPIPE"): point stdout at devnull so that the
    interpreter's final flush cannot raise again, and exit 1."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout without a file descriptor (captured in a test)
        pass
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``stgraph`` command line; returns the exit status."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        configure_logging(quiet=args.quiet, verbose=args.verbose)
        if args.command is None:
            parser.print_help()
            return 0
        return _run(args, debug=args.debug or _debug_requested())
    except BrokenPipeError:
        return _exit_on_broken_pipe()


def _run(args: argparse.Namespace, *, debug: bool) -> int:
    try:
        status = COMMANDS[args.command](args)
        sys.stdout.flush()  # a closed pipe surfaces here, inside the handler, not at exit
        return status
    except BrokenPipeError:
        raise
    except USER_ERRORS as exc:
        if debug:
            raise
        print(f"stgraph {args.command}: error: {error_message(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"stgraph {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
