"""The comparison report as the notebook, the CLI, MLflow and promotion see it."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from workbench.evaluation.stats import compare, compare_all
from workbench.evaluation.stats.report import ComparisonReport

from .test_stats import binary_pair, frame

METRICS = {"exact_match": "binary", "rouge": "continuous"}


def two_metric_frame(names=("concise", "detailed"), n=80, seed=1):
    a, b = binary_pair(n=n, p_a=0.4, p_b=0.8, seed=seed)
    df = frame({names[0]: a, names[1]: b})
    rng = np.random.default_rng(seed)
    base = rng.normal(0.5, 0.2, n)
    df["score.rouge"] = np.concatenate([base, base + rng.normal(0.02, 0.1, n)])
    return df


@pytest.fixture(scope="module")
def report() -> ComparisonReport:
    return compare(two_metric_frame(), "concise", "detailed", METRICS, primary="exact_match")


def test_text_shows_verdict_per_variant_table_and_differences(report):
    text = report.to_text()
    assert "A = concise, B = detailed" in text
    assert " ".join(text.split()).count(report.verdict) == 1  # wrapped, not altered
    assert "Holm correction over 2 tests" in text
    for header in ("exact_match", "rouge", "p_adj", "McNemar exact", "paired t", "discordant"):
        assert header in text
    assert "latency_p95" in text and "cost_per_call" in text
    assert "nan" not in text.lower()
    assert str(report) == text


def test_html_has_tables_and_an_inline_png_forest_plot(report):
    page = report._repr_html_()
    assert page.count("<table") == 3
    match = re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert match, "forest plot missing"
    assert base64.b64decode(match.group(1)).startswith(b"\x89PNG\r\n\x1a\n")


def test_html_escapes_variant_names():
    df = two_metric_frame(names=("<b>x</b>", "y&z"))
    page = compare(df, "<b>x</b>", "y&z", METRICS, primary="exact_match")._repr_html_()
    assert "<b>x</b>" not in page.split("<img")[0]
    assert "&lt;b&gt;x&lt;/b&gt;" in page


def test_forest_plot_has_one_panel_per_metric(report):
    fig = report.forest_plot()
    assert isinstance(fig, Figure)
    assert len(fig.axes) == len(METRICS)
    assert fig.axes[0].get_title(loc="left").startswith("exact_match (primary)")


def test_to_dict_is_strict_json_and_complete(report):
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["verdict"] == report.verdict
    assert data["winner"] == report.winner == "detailed"
    pm = data["pairs"][0]["metrics"]["exact_match"]
    assert pm["p_value"] == report.primary.p_value
    assert pm["p_adj"] == report.primary.p_adj
    assert pm["ci_low"] == report.primary.ci_low
    assert {r["variant"] for r in data["summary"]} == {"concise", "detailed"}


def test_mlflow_metrics_keys_and_values(report):
    m = report.mlflow_metrics()
    r = report.primary
    prefix = "ab/exact_match/concise_vs_detailed"
    assert m[f"{prefix}/diff"] == r.diff
    assert m[f"{prefix}/ci_low"] == r.ci_low
    assert m[f"{prefix}/ci_high"] == r.ci_high
    assert m[f"{prefix}/p_value"] == r.p_value
    assert m[f"{prefix}/p_adj"] == r.p_adj
    assert len(m) == 5 * len(METRICS)
    assert all(isinstance(v, float) for v in m.values())


def test_mlflow_keys_are_sanitised_for_model_style_names():
    df = two_metric_frame(names=("openai/gpt-4o", "ollama:llama3"))
    m = compare(df, "openai/gpt-4o", "ollama:llama3", METRICS, primary="exact_match")
    keys = m.mlflow_metrics()
    assert "ab/rouge/openai_gpt-4o_vs_ollama_llama3/diff" in keys
    assert all(re.fullmatch(r"[0-9A-Za-z_\-. /]+", k) and k.count("/") == 3 for k in keys)


def test_multi_pair_report_requires_choosing_a_pair():
    df = two_metric_frame()
    extra = df[df["variant"] == "concise"].assign(variant="terse")

    rep = compare_all(pd.concat([df, extra]), METRICS, primary="exact_match")
    with pytest.raises(ValueError, match="covers 3 pairs"):
        _ = rep.primary
    assert rep.pair("detailed", "concise").primary.metric == "exact_match"
    assert "pair" in rep.to_text()
    assert len(rep.mlflow_metrics()) <= 5 * 2 * 3
    assert len(rep.forest_plot().axes) == 2


def test_reports_for_edge_cases_render_without_nan_or_errors():
    frames = {
        "only errors": frame({"A": np.ones(12), "B": np.full(12, np.nan)}),
        "identical": frame({"A": np.ones(12), "B": np.ones(12)}),
        "tiny": frame({"A": [1.0, 0.0], "B": [1.0, 1.0]}),
    }
    for name, df in frames.items():
        rep = compare(df, "A", "B", {"exact_match": "binary"}, primary="exact_match")
        text = rep.to_text()
        assert "nan" not in text.lower(), name
        assert "<img" in rep._repr_html_(), name
        json.dumps(rep.to_dict(), allow_nan=False)
        m = rep.mlflow_metrics()
        assert all(np.isfinite(v) for v in m.values()), name
    assert rep.mlflow_metrics()["ab/exact_match/A_vs_B/p_value"] == 1.0


def test_text_shows_consistency_when_examples_were_repeated():
    a = np.array([[1, 1, 0], [0, 0, 0], [1, 1, 1], [1, 0, 1], [0, 1, 1], [1, 1, 1]], dtype=float)
    rep = compare(
        frame({"A": a, "B": 1 - a}), "A", "B", {"exact_match": "binary"}, primary="exact_match"
    )
    assert "Consistency across repeats" in rep.to_text()
    assert rep.consistency.loc[("A", "exact_match"), "all_agree"] == pytest.approx(0.5)


def test_non_inferiority_margin_is_drawn_and_reported():
    rng = np.random.default_rng(0)
    x = rng.normal(0.7, 0.1, 400)
    df = frame({"base": x, "cheap": x - 0.005 + rng.normal(0, 0.02, 400)}, "rouge")
    rep = compare(
        df, "base", "cheap", {"rouge": "continuous"}, primary="rouge", non_inferiority_margin=0.02
    )
    assert rep.pairs[0].non_inferior
    ax = rep.forest_plot().axes[0]
    assert any(
        line.get_linestyle() == "--" and line.get_xdata()[0] == -0.02 for line in ax.get_lines()
    )
    assert rep.to_dict()["pairs"][0]["metrics"]["rouge"]["ni"]["non_inferior"] is True


def test_discordant_pair_counts_appear_in_text_html_and_frame(report):
    r = report.primary
    counts = f"{r.discordant_a}/{r.discordant_b}"
    assert counts in report.to_text()
    assert f"<td>{counts}</td>" in report._repr_html_()
    row = report.to_frame().set_index("metric").loc["exact_match"]
    assert (row["discordant_a"], row["discordant_b"]) == (r.discordant_a, r.discordant_b)
    assert f"discordant pairs concise {r.discordant_a} / detailed {r.discordant_b}" in (
        report.verdict
    )


def test_caveats_render_in_text_html_frame_and_dict(report):
    import dataclasses

    assert report.caveats == ()
    assert "Caveat" not in report.to_text()
    rep = dataclasses.replace(report, caveats=report.caveats + ("detailed answers <one> label",))
    assert "Caveat: detailed answers <one> label" in rep.to_text()
    assert "<b>Caveat:</b> detailed answers &lt;one&gt; label" in rep._repr_html_()
    assert rep.to_frame().attrs["caveats"] == ["detailed answers <one> label"]
    assert rep.to_dict()["caveats"] == ["detailed answers <one> label"]


def test_error_rate_is_shown_per_variant():
    a, b = np.ones(20), np.ones(20)
    b[:5] = np.nan
    rep = compare(frame({"A": a, "B": b}), "A", "B", {"exact_match": "binary"})
    assert rep.summary.loc["B", "error_rate"] == 0.25
    assert "5 (25.0%)" in rep.to_text()
    assert "25.0%" in rep._repr_html_()


def test_importing_the_report_does_not_load_matplotlib():
    code = (
        "import sys, workbench.evaluation.stats, workbench.evaluation.stats.report; "
        "assert 'matplotlib' not in sys.modules; assert 'mlflow' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_terminal_summary_shows_the_error_rate_next_to_the_metric():
    from workbench.results import format_summary

    a, b = np.ones(10), np.ones(10)
    b[:3] = np.nan
    metrics = {"exact_match": "binary"}
    table = format_summary(compare(frame({"A": a, "B": b}), "A", "B", metrics).summary, metrics)
    row = next(line for line in table.splitlines() if line.startswith("B "))
    assert "3 (30.0%)" in row and row.index("3 (30.0%)") < row.index("1.000 [")
