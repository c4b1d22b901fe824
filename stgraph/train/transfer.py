"""Zero-shot transfer: a pretrained backbone on a graph it never saw, with no gradient step.

``zero_shot(checkpoint, graph, ...)`` splits the target chronologically (default 70/10/20), runs
the pretrained weights on its test windows as they are, and scores historical average and last
value fitted on the target's training part in the same run and on the same windows, so every
figure of the report has its baselines beside it. The output directory holds::

    zero-shot.json      one result per model (per-horizon metrics, protocol, per-node MAE)
    zero-shot.md        the table
    zero-shot-horizon.png   MAE per horizon step, every model on one plot
    <model>-map.png     per-node MAE on the graph's coordinates (one colour scale for all)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from stgraph.data.stgraph import STGraph
from stgraph.tasks.registry import build_model
from stgraph.train import checkpoint as ckpt
from stgraph.train.assemble import pretrained_forecaster
from stgraph.train.evaluate import evaluate_model
from stgraph.train.protocols import Protocol, get_protocol
from stgraph.train.reports import metrics_table
from stgraph.utils.atomic import atomic_path, atomic_write_text

#: Baselines run beside every transfer result.
TRANSFER_BASELINES = ("historical_average", "last_value")


def transfer_protocol(
    name: str = "default",
    *,
    input_steps: int | None = None,
    horizon: int | None = None,
    ratios: tuple[float, float, float] | None = None,
) -> Protocol:
    """A registered protocol with the input length, horizon or split changed."""
    changes: dict[str, Any] = {}
    if input_steps is not None:
        changes["input_steps"] = input_steps
    if horizon is not None:
        changes["horizon"] = horizon
        base = get_protocol(name)
        keep = tuple(s for s in base.report_steps if s <= horizon)
        changes["report_steps"] = keep if keep else (horizon,)
    if ratios is not None:
        changes["ratios"] = tuple(ratios)
    base = get_protocol(name, **changes)
    if changes and name == "default":
        r = "/".join(str(round(100 * x)) for x in base.ratios)
        changes["description"] = (
            f"{r} chronological, {base.input_steps} -> {base.horizon}, masked metrics (mask only)"
        )
    return get_protocol(name, **changes)


def zero_shot(
    checkpoint: str | os.PathLike,
    graph: STGraph,
    *,
    dataset: str,
    protocol: Protocol,
    output: str | os.PathLike,
    baselines: tuple[str, ...] = TRANSFER_BASELINES,
    batch_size: int = 64,
    progress: bool = False,
) -> list[dict[str, Any]]:
    """Score the pretrained ``checkpoint`` on ``graph``'s test part with no gradient step.

    Returns:
        One result dict per model (the pretrained one first, then ``baselines``), as written
        to ``zero-shot.json``.
    """
    split, windows = protocol.windows(graph)
    if windows["train"] is None or windows["test"] is None:
        raise ValueError(
            f"{dataset}: protocol {protocol.name} leaves no training or test windows "
            f"({graph.num_steps} steps, {protocol.input_steps} in + {protocol.horizon} out)"
        )
    model = pretrained_forecaster(str(checkpoint), protocol, graph)
    model.fit(graph, split.train)  # writes the graph structure only: no readings, no gradient
    models: list[tuple[str, torch.nn.Module]] = [("stfm zero-shot", model)]
    for name in baselines:
        b = build_model(
            name,
            input_steps=protocol.input_steps,
            horizon=protocol.horizon,
            num_variables=graph.num_variables,
        )
        models.append((name, b.fit(graph, split.train)))
    results = []
    for label, m in models:
        with torch.no_grad():
            r = evaluate_model(
                m,
                windows["test"],
                protocol,
                batch_size=batch_size,
                progress=progress,
                node_errors=True,
                dataset=dataset,
            )
        r.update(model=label, dataset=dataset, split=split.as_dict(), checkpoint=str(checkpoint))
        results.append(r)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    ckpt.write_json(out / "zero-shot.json", results)
    atomic_write_text(
        out / "zero-shot.md", f"# Zero-shot on `{dataset}`\n\n" + metrics_table(results)
    )
    plot_horizons(results, out / "zero-shot-horizon.png")
    plot_node_maps(results, graph, out)
    return results


def plot_horizons(results: list[dict[str, Any]], path: Path) -> Path:
    """MAE per horizon step of several models on one plot, the x axis in minutes or hours."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from stgraph.utils.plotting import lead_times

    x, xlabel = lead_times(len(results[0]["per_step"]["mae"]), results[0].get("interval_s"))
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for r in results:
        ax.plot(x, r["per_step"]["mae"], marker="o", markersize=3, label=r["model"])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"MAE ({results[0]['protocol']['units']})")
    ax.set_title(f"{results[0].get('dataset', '')}: test MAE by lead time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def plot_node_maps(results: list[dict[str, Any]], graph: STGraph, out: Path) -> list[Path]:
    """Per-node MAE of each model on the graph's coordinates, one colour scale shared by all."""
    if graph.pos is None:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    errs = [
        torch.tensor([float("nan") if v is None else v for v in r["node_mae"]]) for r in results
    ]
    finite = torch.cat([e[torch.isfinite(e)] for e in errs])
    if finite.numel() == 0:
        return []
    from stgraph.utils.plotting import map_figsize, style_map_axes

    vmin, vmax = float(finite.quantile(0.02)), float(finite.quantile(0.98))
    pos = graph.pos.double().numpy()
    paths = []
    for r, e in zip(results, errs, strict=True):
        fig, ax = plt.subplots(figsize=map_figsize(pos[:, 0], pos[:, 1], width=4.5))
        sc = ax.scatter(
            pos[:, 0], pos[:, 1], c=e.numpy(), s=14, cmap="viridis", vmin=vmin, vmax=vmax
        )
        fig.colorbar(sc, ax=ax, label=f"MAE ({r['protocol']['units']}), one scale for all")
        ax.set_title(f"{r['model']} on {r.get('dataset', '')}")
        style_map_axes(ax, pos[:, 0], pos[:, 1])
        fig.tight_layout()
        path = out / f"{r['model'].replace(' ', '-')}-map.png"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png", dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


__all__ = [
    "TRANSFER_BASELINES",
    "plot_horizons",
    "plot_node_maps",
    "transfer_protocol",
    "zero_shot",
]


def resolve_data(dataset: str | None = None, graph: str | os.PathLike | None = None):
    """``(graph, label, config section)`` of a registry name or a saved graph directory.

    A ``dataset`` that names an existing directory is read as a graph directory too, so every
    command that takes a registry name takes a built graph.
    """
    from stgraph.errors import ConfigError

    if (dataset is None) == (graph is None):
        raise ConfigError("give exactly one of a data set name or a graph directory")
    if graph is None and Path(str(dataset)).is_dir():
        dataset, graph = None, dataset
    if graph is not None:
        from stgraph.data.io import load
        from stgraph.train.config import DatasetConfig

        section = DatasetConfig(graph=str(graph))
        return load(graph), section.label, {"graph": str(graph)}
    from stgraph import datasets

    return datasets.load(str(dataset)), str(dataset), {"name": str(dataset)}


def finetune_raw(
    checkpoint: str,
    data: dict[str, str],
    *,
    mode: str = "full",
    budget: str | None = None,
    protocol: str = "default",
    input_steps: int = 12,
    horizon: int = 12,
    output: str = "runs/finetune",
    epochs: int = 10,
    lr: float = 5e-4,
    seed: int = 0,
) -> dict[str, Any]:
    """The training config of ``stgraph finetune`` (a plain mapping, validated by
    :func:`~stgraph.train.config.load_config` like any config file)."""
    base = get_protocol(protocol)
    report = [s for s in base.report_steps if s <= horizon] or [horizon]
    return {
        "seed": seed,
        "dataset": data,
        "model": {"name": "stfm"},
        "protocol": {
            "name": protocol,
            "overrides": {"input_steps": input_steps, "horizon": horizon, "report_steps": report},
        },
        "finetune": {"checkpoint": str(checkpoint), "mode": mode, "budget": budget},
        "train": {
            "epochs": epochs,
            "batch_size": 32,
            "lr": lr,
            "patience": 3,
            "loss": "huber",
            "ema_decay": None,
        },
        "output": {"dir": str(output)},
    }


def load_forecaster(
    checkpoint: str | os.PathLike, graph: STGraph, *, input_steps: int, horizon: int
) -> torch.nn.Module:
    """A model ready to forecast ``graph`` from any checkpoint: a pretrained one (directory
    with ``model.yaml`` or a shipped name), or a ``stgraph train`` / ``stgraph finetune`` run
    directory (rebuilt from its ``config.yaml``, statistics fitted on the graph's training part
    of that run's protocol, then its weights loaded)."""
    from stgraph.train.assemble import make_model, make_protocol, prepare_finetune
    from stgraph.train.config import load_config

    run = Path(checkpoint)
    if (run / ckpt.CONFIG_FILE).is_file() and not (run / "model.yaml").is_file():
        cfg = load_config(run / ckpt.CONFIG_FILE)
        protocol = make_protocol(cfg)
        model = make_model(cfg, graph, protocol)
        model.fit(graph, protocol.split(graph).train)
        prepare_finetune(cfg, model)
        ckpt.load_weights(model, run / ckpt.MODEL_FILE)
        if (model.horizon, model.input_steps) != (horizon, input_steps):
            from stgraph.errors import ConfigError
            from stgraph.tasks.stfm_forecaster import STFMForecaster

            if not isinstance(model, STFMForecaster):  # only the backbone takes any lengths
                raise ConfigError(
                    f"{run}: {cfg.model.name} was trained for {model.input_steps} input steps "
                    f"and horizon {model.horizon}; got {input_steps} and {horizon}"
                )
            model.horizon, model.input_steps = horizon, input_steps
        return model.eval()
    protocol = transfer_protocol(input_steps=input_steps, horizon=horizon)
    model = pretrained_forecaster(str(checkpoint), protocol, graph)
    model.fit(graph, (0, graph.num_steps))
    return model.eval()


__all__ = [
    "TRANSFER_BASELINES",
    "finetune_raw",
    "load_forecaster",
    "plot_horizons",
    "plot_node_maps",
    "resolve_data",
    "transfer_protocol",
    "zero_shot",
]
