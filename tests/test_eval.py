"""Tests of spurnb.eval on hand-made cases (numbers worked out by hand in the comments)."""
import math

import matplotlib
matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest
import torch

from spurnb.eval import bootstrap_ci, group_metrics, metrics_table
from spurnb.experiment import group_accuracy_frame, plot_group_accuracy, plot_training_curves

WB = [3498, 184, 56, 1057]   # Waterbirds training counts


def case():
    # groups: 0 → 3 examples, 2 right; 1 → 1 example, right; 2 → empty; 3 → 2 examples, 0 right
    y = torch.tensor([0, 0, 0, 0, 1, 1])
    g = torch.tensor([0, 0, 0, 1, 3, 3])
    p = torch.tensor([0, 0, 1, 0, 0, 0])
    return p, y, g


def test_bootstrap_ci():
    gen = torch.Generator().manual_seed(0)
    g = torch.arange(4).repeat_interleave(torch.tensor([200, 50, 50, 200])); y = g // 2
    p = torch.where(torch.rand(len(g), generator=gen) < 0.8, y, 1 - y)
    m = group_metrics(p, y, g, 4, train_group_counts=WB)
    ci = bootstrap_ci(p, y, g, 4, train_group_counts=WB, n_boot=400, seed=1)
    assert ci == bootstrap_ci(p, y, g, 4, train_group_counts=WB, n_boot=400, seed=1)          # seeded
    assert ci != bootstrap_ci(p, y, g, 4, train_group_counts=WB, n_boot=400, seed=2)
    for k in ("avg_acc", "adj_avg_acc"):
        assert ci[f"{k}_lo"] < m[k] < ci[f"{k}_hi"]
    assert ci["worst_group_acc_lo"] < ci["worst_group_acc_hi"]
    # the average's interval is about ±2 standard errors of a proportion
    se = math.sqrt(m["avg_acc"] * (1 - m["avg_acc"]) / len(y))
    assert 2.5 * se < ci["avg_acc_hi"] - ci["avg_acc_lo"] < 5.5 * se
    un = bootstrap_ci(p, y, g, 4, n_boot=200, stratified=False)
    assert set(un) == {"avg_acc_lo", "avg_acc_hi", "worst_group_acc_lo", "worst_group_acc_hi"}
    perfect = bootstrap_ci(y, y, g, 4, n_boot=50)
    assert all(v == 1.0 for v in perfect.values())


def test_metrics_table_and_plots():
    p, y, g = case()
    m = group_metrics(p, y, g, 4, train_group_counts=WB); perfect = group_metrics(y, y, g, 4, train_group_counts=WB)
    t = metrics_table({"erm": m, "oracle": perfect})
    assert list(t.index) == ["erm", "oracle"]
    assert list(t.columns[:4]) == ["worst_group_acc", "avg_acc", "adj_avg_acc", "worst_class_acc"]
    s = metrics_table({"erm": [m, perfect, perfect]})
    assert s.loc["erm", "worst_group_acc"] == pytest.approx(2 / 3)
    assert s.loc["erm", "worst_group_acc_std"] == pytest.approx(np.std([0, 1, 1], ddof=1))
    assert s.loc["erm", "n_seeds"] == 3
    f = group_accuracy_frame({"erm": m})
    assert len(f) == 3 and set(f["group"]) == {"group 0", "group 1", "group 3"}    # empty group dropped
    ax = plot_group_accuracy({"erm": m, "oracle": [perfect, perfect]}, group_names=list("ABCD"))
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B", "D"]
    hist = pd.DataFrame([dict(epoch=e, split=sp, avg_acc=0.5, worst_group_acc=0.2) for e in range(3) for sp in ("val", "test")])
    ax = plot_training_curves(hist, splits=["val"])
    assert len(ax.lines) >= 2
    with pytest.raises(ValueError, match="history lacks column"):
        plot_training_curves(hist.drop(columns="epoch"))
