"""Evaluation protocols: how a series is split, windowed and scored, stated next to every number.

A protocol fixes the split (ratios of steps, or of windows as PyG Temporal does), the window
lengths, the reported horizon steps, the null value and the scaler. :meth:`Protocol.describe`
gives the dictionary written into every results file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from stgraph.data.splits import Split, chronological_split
from stgraph.data.stgraph import STGraph
from stgraph.data.windows import SlidingWindows, windows_for_split


@dataclass(frozen=True)
class Protocol:
    """A forecasting evaluation protocol.

    Args:
        name: short name used in configs and results files.
        description: one line a reader of a results table needs.
        ratios: (train, val, test) shares; a share may be 0.
        input_steps: steps fed to the model.
        horizon: steps predicted.
        report_steps: 1-based horizon steps reported separately.
        split_on: ``"steps"`` (ratios of the ``T`` steps; every window inside one part) or
            ``"windows"`` (ratios of the windows, PyG Temporal's ``temporal_signal_split``: the
            first ``floor(ratio * W)`` windows train, the rest test; test inputs may reach into
            the training steps, targets never do).
        null_value: target value treated as missing (``None``: the mask only).
        scaler: input scaler fitted on the training steps (``standard``, ``minmax``, ``none``).
        stride: steps between window starts.
        val_from_train: share at the end of the training part held out for validation (model
            selection, early stopping); the test part stays exactly as the published protocol's.
        units: what the metric values are measured in.
        reference: published figures to compare with, e.g. ``{"T-GCN rmse@3": 5.1264}``.
        reference_dataset: the data set the reference figures were published on; on any other
            graph they are left out of the report (:meth:`for_graph`).
    """

    name: str
    description: str
    ratios: tuple[float, float, float] = (0.7, 0.1, 0.2)
    input_steps: int = 12
    horizon: int = 12
    report_steps: tuple[int, ...] = (3, 6, 12)
    split_on: str = "steps"
    null_value: float | None = None
    scaler: str = "standard"
    stride: int = 1
    val_from_train: float = 0.0
    units: str = "data units"
    reference: dict[str, float] = field(default_factory=dict)
    reference_dataset: str | None = None

    def __post_init__(self) -> None:
        if self.split_on not in ("steps", "windows"):
            raise ValueError(f"split_on must be 'steps' or 'windows', got {self.split_on!r}")
        if any(not 1 <= s <= self.horizon for s in self.report_steps):
            raise ValueError(f"report_steps {self.report_steps} must lie in 1..{self.horizon}")

    def split(self, graph: STGraph) -> Split:
        """Step ranges of train / val / test for ``graph``."""
        split = self._split(graph)
        if self.val_from_train <= 0:
            return split
        if split.val[1] > split.val[0]:
            raise ValueError(f"protocol {self.name}: val_from_train needs a validation ratio of 0")
        a = split.train[1]
        if self.split_on == "steps":
            cut = a - int(a * self.val_from_train + 1e-9)
        else:  # hold out whole windows: the last int(share * W_train) training windows
            span = self.input_steps + self.horizon
            w_train = a - span + 1
            cut = a - int(w_train * self.val_from_train + 1e-9)
        return Split(train=(0, cut), val=(cut, a), test=split.test)

    def _split(self, graph: STGraph) -> Split:
        t = graph.num_steps
        if self.split_on == "steps":
            return chronological_split(t, ratios=self.ratios)
        span = self.input_steps + self.horizon
        n_windows = t - span + 1
        if n_windows < 1:
            raise ValueError(
                f"protocol {self.name}: window of {span} steps is longer than the {t}-step series"
            )
        w_train = int(n_windows * self.ratios[0] + 1e-9)
        w_val = int(n_windows * self.ratios[1] + 1e-9)
        # A part of w windows of span s covers w + s - 1 steps; later parts start at their first target.
        a = w_train + span - 1 if w_train else 0
        b = a + w_val if w_val else a
        return Split(train=(0, a), val=(a, b), test=(b, t))

    def windows(self, graph: STGraph) -> tuple[Split, dict[str, SlidingWindows | None]]:
        """The split and one :class:`SlidingWindows` per non-empty part."""
        split = self.split(graph)
        wins = windows_for_split(
            graph,
            split,
            self.input_steps,
            self.horizon,
            stride=self.stride,
            history=self.split_on == "windows",
        )
        return split, wins

    def with_overrides(self, **changes: Any) -> Protocol:
        """A copy with some fields changed (e.g. ``horizon=3``)."""
        for key in ("ratios", "report_steps"):
            if key in changes and changes[key] is not None:
                changes[key] = tuple(changes[key])
        return replace(self, **changes)

    def for_graph(self, graph: STGraph, dataset: str | None) -> Protocol:
        """This protocol as reported on ``graph``: metrics in the graph's own units (never the
        units of the data a model was trained on), references only on their own data set."""
        units = sorted({u for u in graph.units if u}) if graph.meta is not None else []
        changes: dict[str, Any] = {"units": ", ".join(units) if units else "data units"}
        if self.reference and dataset != self.reference_dataset:
            changes["reference"] = {}
        return replace(self, **changes)

    def describe(self) -> dict[str, Any]:
        """The protocol as a JSON-ready dict, written next to every metric."""
        d = asdict(self)
        d["ratios"], d["report_steps"] = list(self.ratios), list(self.report_steps)
        return d


PROTOCOLS: dict[str, Protocol] = {
    p.name: p
    for p in [
        Protocol(
            name="tgcn",
            description="T-GCN (Zhao et al. 2019): first 80% of steps train, last 20% test, no "
            "validation (as published: selection on the test set), 12 steps in, 3/6/9/12 out",
            ratios=(0.8, 0.0, 0.2),
            input_steps=12,
            horizon=12,
            report_steps=(3, 6, 9, 12),
            units="mph",
            reference={"T-GCN rmse@3 (15 min), published": 5.1264},
            reference_dataset="los-loop",
        ),
        Protocol(
            name="tgcn-val",
            description="T-GCN split (same test part) with model selection on the last 10% of the "
            "training part (72/8/20), 12 steps in, 3/6/9/12 out",
            ratios=(0.8, 0.0, 0.2),
            val_from_train=0.1,
            input_steps=12,
            horizon=12,
            report_steps=(3, 6, 9, 12),
            units="mph",
            reference={"T-GCN rmse@3 (15 min), published": 5.1264},
            reference_dataset="los-loop",
        ),
        Protocol(
            name="pgt",
            description="PyG Temporal chickenpox case study: 4 lags -> next step, "
            "temporal_signal_split(train_ratio=0.2) over windows, MSE on the standardised values",
            ratios=(0.2, 0.0, 0.8),
            input_steps=4,
            horizon=1,
            report_steps=(1,),
            split_on="windows",
            scaler="none",
            units="standardised cases",
            reference={"PGT DCRNN mse, published": 0.7418},
            reference_dataset="chickenpox",
        ),
        Protocol(
            name="pgt-val",
            description="PyG Temporal chickenpox split (train_ratio=0.2 over windows, same test "
            "windows) with the last 20% of the training windows held out for early stopping",
            ratios=(0.2, 0.0, 0.8),
            input_steps=4,
            horizon=1,
            report_steps=(1,),
            split_on="windows",
            scaler="none",
            val_from_train=0.2,
            units="standardised cases",
            reference={"PGT DCRNN mse, published": 0.7418},
            reference_dataset="chickenpox",
        ),
        Protocol(
            name="pgt-80-20",
            description="4 lags -> next step, first 80% of windows train, last 20% test",
            ratios=(0.8, 0.0, 0.2),
            input_steps=4,
            horizon=1,
            report_steps=(1,),
            split_on="windows",
            scaler="none",
            units="standardised cases",
        ),
        Protocol(
            name="dcrnn",
            description="DCRNN (Li et al. 2018): 70/10/20 chronological, 12 -> 12, masked metrics "
            "with 0 as missing",
            ratios=(0.7, 0.1, 0.2),
            input_steps=12,
            horizon=12,
            report_steps=(3, 6, 12),
            null_value=0.0,
        ),
        Protocol(
            name="default",
            description="70/10/20 chronological, 12 -> 12, masked metrics (mask only)",
            ratios=(0.7, 0.1, 0.2),
            input_steps=12,
            horizon=12,
            report_steps=(3, 6, 12),
        ),
    ]
}


def get_protocol(name: str, **overrides: Any) -> Protocol:
    """A registered protocol by name, optionally with fields overridden."""
    if name not in PROTOCOLS:
        raise KeyError(f"unknown protocol {name!r}; choose one of {sorted(PROTOCOLS)}")
    p = PROTOCOLS[name]
    return p.with_overrides(**overrides) if overrides else p
