"""The pretraining corpus: held-out sets are never drawn, only training parts are read."""

from __future__ import annotations

import pytest
import torch

from stgraph import datasets
from stgraph.errors import ConfigError
from stgraph.tasks.corpus import Corpus, WindowRange, node_half, parse_source


@pytest.fixture(scope="module")
def graphs():
    return {"los-loop[east]": datasets.load("los-loop"), "chickenpox": datasets.load("chickenpox")}


def _corpus(graphs, **kw):
    sources = [
        parse_source({"dataset": "los-loop", "nodes": "east", "weight": 1}, "sources[0]"),
        parse_source("chickenpox", "sources[1]"),
    ]
    held = [
        parse_source({"dataset": "los-loop", "nodes": "west"}, "held_out[0]"),
        parse_source("melbourne-pedestrian", "held_out[1]"),
    ]
    return Corpus(sources, held_out=held, graphs=graphs, **kw)


def test_halves_are_disjoint_and_cover_the_graph(graphs):
    g = graphs["los-loop[east]"]
    east, west = node_half(g, "east"), node_half(g, "west")
    assert not bool((east & west).any()) and bool((east | west).all())
    assert abs(int(east.sum()) - int(west.sum())) <= 1
    assert bool((g.pos[east, 0] >= g.pos[west, 0].max()).all())


def test_held_out_nodes_and_test_steps_are_never_drawn(graphs):
    corpus = _corpus(graphs, windows=WindowRange((8, 12), (1, 6)), batch_size=4)
    full = graphs["los-loop[east]"]
    west_pos = full.pos[node_half(full, "west")]
    train_end = {name: cg.train_steps for name, cg in zip(corpus.names, corpus.graphs, strict=True)}
    assert train_end["los-loop[east]"] == int(0.7 * full.num_steps)
    last_train_time = {
        n: int(cg.graph.time[-1]) for n, cg in zip(corpus.names, corpus.graphs, strict=True)
    }
    gen = torch.Generator().manual_seed(0)
    seen = set()
    for _ in range(60):
        i, batch = corpus.sample(gen)
        name = corpus.names[i]
        seen.add(name)
        assert int(batch.y_time.max()) <= last_train_time[name]  # nothing after the train part
        if name == "los-loop[east]":
            # no west sensor in any batch: every position is an eastern one
            d = torch.cdist(batch.pos.double(), west_pos.double()).min(1).values
            assert bool((d > 0).all())
            assert batch.num_nodes == batch.num_graphs * 104
    assert seen == {"los-loop[east]", "chickenpox"}


def test_a_source_overlapping_a_held_out_entry_is_refused(graphs):
    held = [parse_source({"dataset": "los-loop", "nodes": "west"}, "held_out[0]")]
    for bad in (
        {"dataset": "los-loop"},
        {"dataset": "los-loop", "nodes": "west"},
        {"dataset": "los-loop", "nodes": "north"},
    ):
        with pytest.raises(ConfigError, match="overlaps held-out"):
            Corpus([parse_source(bad, "sources[0]")], held_out=held, graphs=graphs)


def test_per_graph_batches_and_loss_scale(graphs):
    corpus = _corpus(graphs, windows=WindowRange((4, 16), (1, 4)), batch_size=8)
    gen = torch.Generator().manual_seed(3)
    lengths = set()
    for _ in range(20):
        i, batch = corpus.sample(gen)
        n = corpus.graphs[i].graph.num_nodes
        assert batch.num_nodes == batch.num_graphs * n  # one graph per batch
        lengths.add(batch.x.size(1))
    assert len(lengths) > 3  # input lengths vary between batches
    cg = corpus.graphs[corpus.names.index("los-loop[east]")]
    x = cg.graph.x[cg.graph.mask]
    assert torch.allclose(cg.loss_scale, x.double().std(unbiased=False).float().view(1), rtol=1e-4)


@pytest.mark.parametrize(
    "raw, match",
    [
        ({"dataset": "a", "graph": "b"}, "exactly one"),
        ({"dataset": "a", "weight": 0}, "weight"),
        ({"dataset": "a", "nodes": "up"}, "nodes"),
        ({"dataset": "a", "split": [0.5, 0.6]}, "split"),
        ({"dataset": "a", "colour": 1}, "unknown keys"),
    ],
)
def test_bad_entries_name_the_field(raw, match):
    with pytest.raises(ConfigError, match=match):
        parse_source(raw, "sources[3]")
