"""How close the training-step memory estimate (stgraph.train.step_memory) is to the real peak.

    python experiments/step_memory.py

For each case (data set, model config, batch, input steps) a fresh process builds the STFM
training setup, estimates one step, then runs two real steps; the peak resident memory they add
is read from ``VmHWM`` after resetting it (``/proc/self/clear_refs``; Linux only). Writes
``experiments/results/step_memory.{json,md}``: estimate, measured growth and their ratio.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from stgraph.utils.atomic import atomic_write_text

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "experiments" / "results"
CASES = [
    ("los-loop", "small", 8, 12),
    ("los-loop", "small", 32, 12),
    ("los-loop", "small", 64, 24),
    ("hangzhou-metro", "small", 32, 12),
]

_MEASURE = """
import ctypes, gc, json, sys, torch
torch.set_num_threads(1)
from torch_geometric.data import Batch
from torch_geometric.loader import DataLoader
from stgraph.train import load_config
from stgraph.train.assemble import load_graph, make_model, make_protocol, make_task
from stgraph.train.step_memory import estimate_step
cfg = load_config(raw=json.loads(sys.argv[1]))
graph = load_graph(cfg); protocol = make_protocol(cfg)
split, windows = protocol.windows(graph)
task = make_task(cfg, protocol); model = make_model(cfg, graph, protocol)
model.fit(graph, split.train)
bs = cfg.train.batch_size
probe = Batch.from_data_list([windows["train"][0]])
batch = next(iter(DataLoader(windows["train"], batch_size=bs)))
opt = torch.optim.Adam(model.parameters())
est = estimate_step(model, lambda b: task.loss(model, b), probe, bs)
def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
gc.collect()
ctypes.CDLL("libc.so.6").malloc_trim(0)
open("/proc/self/clear_refs", "w").write("5")
base = status("VmRSS")
for _ in range(2):
    opt.zero_grad(); task.loss(model, batch).backward(); opt.step()
print(json.dumps({"estimate": est.total, "grown": status("VmHWM") - base}))
"""


def measure(dataset: str, model: str, batch: int, steps: int) -> dict:
    raw = {
        "seed": 0,
        "dataset": {"name": dataset},
        "protocol": {"name": "default", "overrides": {"input_steps": steps, "horizon": 12}},
        "model": {
            "name": "stfm",
            "config": str(REPO / "configs" / "model" / f"{model}.yaml"),
            "options": {"season": "anomaly"},
        },
        "train": {"batch_size": batch},
        "output": {"dir": str(REPO / "runs" / "step-memory"), "tensorboard": False},
    }
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, json.dumps(raw)],
        capture_output=True,
        text=True,
        check=True,
    )
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return {
        "dataset": dataset,
        "model": model,
        "batch": batch,
        "input_steps": steps,
        "estimate_mib": round(got["estimate"] / 2**20, 1),
        "measured_mib": round(got["grown"] / 2**20, 1),
        "ratio": round(got["estimate"] / max(got["grown"], 1), 3),
    }


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__).parse_args(argv)
    rows = [measure(*case) for case in CASES]
    cols = list(rows[0])
    md = [
        "# Training-step memory: estimate against the measured peak",
        "",
        "Command: `python experiments/step_memory.py`; two real steps per case in a fresh "
        "process, one torch thread; measured = growth of the peak resident memory (VmHWM).",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "---|" * len(cols),
        *("| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows),
        "",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_text(RESULTS / "step_memory.json", json.dumps(rows, indent=1) + "\n")
    atomic_write_text(RESULTS / "step_memory.md", "\n".join(md))
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
