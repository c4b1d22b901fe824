"""Copy a finished pretraining run into the package as a shipped checkpoint, with its model card.

    stgraph pretrain --config configs/pretrain/small.yaml
    python experiments/ship_checkpoint.py runs/pretrain-small --name stgraph-small \
        --command "stgraph pretrain --config configs/pretrain/small.yaml"

Writes ``stgraph/checkpoints/<name>/``: ``model.yaml``, ``model.safetensors``, ``loss_curves.png``,
``sources.json`` and ``MODEL_CARD.md`` (corpus with sizes, held-out sets, objective mix, steps,
wall time, the command that regenerates it). Refuses a run that has not finished.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
from pathlib import Path

import yaml

from stgraph.pretrained import CHECKPOINTS_DIR, from_pretrained
from stgraph.utils.atomic import atomic_write_text


def _card(run: Path, name: str, command: str, run_label: str) -> str:
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    sources = json.loads((run / "sources.json").read_text())
    state = json.loads((run / "resume" / "trainer_state.json").read_text())
    with (run / "log.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    seconds = float(rows[-1]["seconds"]) if rows else float("nan")
    model = from_pretrained(run)
    params = sum(p.numel() for p in model.parameters())
    held = cfg["corpus"]["held_out"]
    lines = [
        f"# {name}",
        "",
        "The small stgraph backbone (`stgraph.nn.STFM`, configs/model/small.yaml"
        + (
            f", with its seasonal reference (`season: {model.seasonal.mode}`)"
            if model.seasonal is not None
            else ""
        )
        + f", {params:,} parameters) pretrained on the corpus below with masked reconstruction "
        "and forecasting mixed per batch. No parameter depends on the number of nodes, node "
        "identity, the variables or the city: the same weights run on any graph.",
        "",
        'Load it offline: `stgraph.from_pretrained("' + name + '")`.',
        "",
        "## Corpus",
        "",
        "Each source is drawn only from the training part of its own chronological split (the "
        "first share of its steps named below); no validation or test period of any data set "
        "was read.",
        "",
        "| source | domain | nodes | training steps | interval | variables (units) | weight | "
        "batches drawn |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in sources:
        var = ", ".join(f"{v} ({u})" for v, u in zip(s["variables"], s["units"], strict=True))
        lines.append(
            f"| {s['name']} | {s['domain']} | {s['nodes']} | {s['train_steps']} | "
            f"{s['interval_s']} s | {var} | {s['weight']} | {s['batches']} |"
        )
    lines += [
        "",
        "Split of every source: "
        + ", ".join(
            sorted(
                {
                    str(e.get("split", [0.7, 0.1, 0.2]))
                    for e in cfg["corpus"]["sources"]
                    if isinstance(e, dict)
                }
            )
        )
        + " (train, val, test).",
        "",
        "## Held out (never drawn)",
        "",
        *[
            f"- `{h['dataset'] if isinstance(h, dict) else h}`"
            + (f", nodes {h['nodes']}" if isinstance(h, dict) and h.get("nodes") else "")
            for h in held
        ],
        "",
        "## Objectives and schedule",
        "",
        f"- masks (weight per strategy; `none` = forecasting only): {cfg['objectives']['masks']}",
        f"- mask ratio drawn in {cfg['objectives']['mask_ratio']}; reconstruction weight "
        f"{cfg['objectives']['reconstruction_weight']}, forecast weight "
        f"{cfg['objectives']['forecast_weight']}; Huber loss, threshold "
        f"{cfg['objectives']['huber_delta']} per-variable std",
        f"- windows: input steps {cfg['windows']['input_steps']}, lead steps "
        f"{cfg['windows']['horizon']}, at most {cfg['windows']['batch_size']} windows and "
        f"{cfg['windows']['node_budget']} node-windows per batch",
        f"- {state['step']} AdamW steps, lr {cfg['train']['lr']} (warm-up "
        f"{cfg['train']['warmup_steps']}, cosine to lr/10), weight decay "
        f"{cfg['train']['weight_decay']}, weights averaged with decay {cfg['train']['ema_decay']}"
        f" (the shipped weights are the average), seed {cfg['seed']}",
        f"- wall time {seconds / 60:.1f} min on the 2-core development CPU at "
        f"{cfg['train']['num_threads']} torch thread(s), while other jobs ran",
        "",
        "## Regenerate",
        "",
        "```bash",
        command,
        f"python experiments/ship_checkpoint.py {run_label} --name {name}",
        "```",
        "",
        "Training is deterministic on CPU under the seed: the same command gives the same weights.",
        "",
        "## Loss curves",
        "",
        "![loss per source](loss_curves.png)",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("run", type=Path, help="a finished `stgraph pretrain` run directory")
    ap.add_argument("--name", default="stgraph-small")
    ap.add_argument(
        "--command",
        default="stgraph pretrain --config configs/pretrain/small.yaml -o runs/fold-a",
    )
    args = ap.parse_args(argv)
    state = json.loads((args.run / "resume" / "trainer_state.json").read_text())
    if not state.get("finished"):
        raise SystemExit(f"{args.run}: the run has not finished (step {state.get('step')})")
    card = _card(args.run, args.name, args.command, str(args.run))
    target = CHECKPOINTS_DIR / args.name
    target.mkdir(parents=True, exist_ok=True)
    for f in ("model.yaml", "model.safetensors", "loss_curves.png", "sources.json"):
        shutil.copyfile(args.run / f, target / f)
    atomic_write_text(target / "MODEL_CARD.md", card)
    from_pretrained(args.name)  # loads back, tensors checked
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
