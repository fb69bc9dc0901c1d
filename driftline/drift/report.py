"""Self-contained HTML drift report: the test table, reference-vs-current plots per column (inline
SVG), and the trend of the share of drifted columns over past windows.

One file with no scripts and no external assets, so it opens from S3, e-mail or a laptop with no
network. jinja2 only (available in the drift Lambda).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import jinja2

from driftline.drift.engine import DriftResult
from driftline.drift.methods import INFO

TEMPLATES = Path(__file__).parent / "templates"
W, H, PAD_L, PAD_B, PAD_T = 560, 170, 44, 30, 12
REF_COLOR, CUR_COLOR = "#4c78a8", "#f58518"


def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
    )


def render_html(
    result: DriftResult,
    *,
    title: str | None = None,
    history: Sequence[Mapping[str, Any]] | None = None,
    window: Mapping[str, Any] | None = None,
    performance: Mapping[str, Any] | None = None,
    alarm: Mapping[str, Any] | None = None,
    quality: Mapping[str, Any] | None = None,
    estimated: Mapping[str, Any] | None = None,
) -> str:
    """The report as one HTML string.

    ``history`` is a list of past results (``to_dict()`` output, or any mapping with
    ``window_end`` and ``share_drifted``), oldest first; ``window`` may hold ``start``/``end``;
    ``performance`` is a :class:`driftline.monitoring.performance.PerformanceResult` dict and
    ``alarm`` the scheduled check's alarm state (``streak``, ``required``, ``alarm``, ``reasons``);
    ``quality`` a :class:`driftline.drift.quality.QualityResult` dict (the data-quality section);
    ``estimated`` the window's estimated performance (:mod:`driftline.estimation`, with ``realized``
    per metric when labels exist, so both stand side by side).
    """
    data = result.to_dict()
    meta = data["metadata"]
    if title is None:
        model = meta.get("model")
        title = f"Drift report: {model} v{meta.get('version', '?')}" if model else "Drift report"
    rows = []
    for name, col in sorted(data["columns"].items(), key=lambda kv: (not kv[1]["drifted"], kv[1]["role"], kv[0])):
        dist = result.distributions.get(name)
        rows.append(
            {
                "name": name,
                **col,
                "method_label": INFO[col["method"]].display if col["method"] else "",
                "rule": INFO[col["method"]].rule if col["method"] else "",
                "statistic_text": _num(
                    col["statistic"], inf_if_none=col["method"] == "chisquare" and col["status"] == "ok"
                ),
                "p_value_text": _num(col["p_value"]),
                "missing_ref": _pct(col["missing_rate_reference"]),
                "missing_cur": _pct(col["missing_rate_current"]),
                "svg": _column_svg(dist) if dist else "",
            }
        )
    current = {**data, "window_end": (window or {}).get("end") or "this window"} if history is not None else None
    trend = _trend_svg(history or [], data["share_threshold"], current=current)
    return (
        _env()
        .get_template("report.html.j2")
        .render(
            title=title,
            result=data,
            rows=rows,
            meta=meta,
            window=dict(window or {}),
            performance=_performance_rows(performance),
            mv=_multivariate_view(data.get("multivariate")),
            est=_estimated_view(estimated),
            quality=dict(quality or {}),
            quality_rows=_quality_rows(quality),
            segments=_segment_view(data.get("segments")),
            quality_limits={k: _pct(v) for k, v in ((quality or {}).get("thresholds") or {}).items()},
            perf=dict(performance or {}),
            alarm=dict(alarm or {}),
            trend_svg=trend,
            history=list(history or [])[-12:],
            generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            ref_color=REF_COLOR,
            cur_color=CUR_COLOR,
        )
    )


def save_html(result: DriftResult, path: str | Path, **kwargs: Any) -> Path:
    path = Path(path)
    path.write_text(render_html(result, **kwargs), encoding="utf-8")
    return path


def _performance_rows(performance: Mapping[str, Any] | None) -> list[dict[str, str]]:
    rows = []
    for name, m in (performance or {}).get("metrics", {}).items():
        rows.append(
            {
                "name": name,
                "current": _num(m.get("current")),
                "baseline": _num(m.get("baseline")),
                "delta": "" if m.get("delta") is None else f"{m['delta']:+.4f}",
                "degraded": "yes" if m.get("degraded") else "no",
            }
        )
    return rows


def _segment_view(segments: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """One table per segment column: each segment's rows, drift share and columns, data quality and
    estimated performance, drifted segments first."""
    out = []
    for column, res in (segments or {}).items():
        rows = []
        values = res.get("values") or {}
        for value, r in sorted(values.items(), key=lambda kv: (not kv[1].get("dataset_drifted"), -kv[1]["rows"])):
            q = r.get("quality") or {}
            est = r.get("estimated_performance") or {}
            metric = est.get("metric")
            m = (est.get("metrics") or {}).get(metric) or {} if est.get("status") == "ok" else {}
            rows.append(
                {
                    "value": value,
                    "rows": f"{r['rows']:,}",
                    "status": r["status"].replace("_", " "),
                    "message": r.get("message", ""),
                    "share": _pct(r.get("share_drifted")),
                    "drifted": bool(r.get("dataset_drifted")),
                    "columns": ", ".join(r.get("drifted_columns") or []),
                    "quality": (", ".join(f"{f['column']} {f['check'].replace('_', ' ')}" for f in q["failures"]))
                    if q.get("alarm")
                    else (q.get("status", "").replace("_", " ") if q.get("status") != "ok" else "passed"),
                    "estimate": (f"{metric} {_num(m.get('estimate'))}" + (" (degraded)" if est.get("degraded") else ""))
                    if m
                    else str(est.get("status", "")).replace("_", " "),
                }
            )
        out.append({"column": column, "status": res.get("status"), "message": res.get("message", ""), "rows": rows})
    return out


def _quality_rows(quality: Mapping[str, Any] | None) -> list[dict[str, str]]:
    """One row per column of the data-quality section, failed columns first."""
    cols = (quality or {}).get("columns") or {}
    rows = []
    for name, q in sorted(cols.items(), key=lambda kv: (not kv[1].get("failed"), kv[0])):
        bounds = q.get("bounds")
        rows.append(
            {
                "name": name,
                "missing": f"{_pct(q.get('missing_rate_reference'))} → {_pct(q.get('missing_rate'))}",
                "out_of_range": _pct(q.get("out_of_range_rate")) if q.get("kind") == "numerical" else "",
                "bounds": f"[{_num(bounds[0])}, {_num(bounds[1])}]" if bounds else "",
                "unseen": _pct(q.get("unseen_category_rate")) if q.get("kind") == "categorical" else "",
                "failed": ", ".join(c.replace("_", " ") for c in q.get("failed") or []),
            }
        )
    return rows


_ESTIMATION_METHODS = {
    "cbpe": "Confidence-based performance estimation (calibrated probabilities)",
    "dle": "Direct loss estimation (loss models fitted on the holdout)",
}


def _estimated_view(est: Mapping[str, Any] | None) -> dict[str, Any]:
    """The estimated-performance section: estimate, band, realized (when labels exist), holdout value."""
    if not est:
        return {}
    rows = []
    for name, m in (est.get("metrics") or {}).items():
        lo, hi = m.get("lower"), m.get("upper")
        rows.append(
            {
                "name": name,
                "estimate": _num(m.get("estimate")),
                "band": "" if lo is None or hi is None else f"{lo:.4f} to {hi:.4f}",
                "realized": _num(m.get("realized")),
                "reference": _num(m.get("reference")),
                "degraded": "yes" if m.get("degraded") else "no",
            }
        )
    return {**est, "rows": rows, "method_label": _ESTIMATION_METHODS.get(str(est.get("method")), "")}


def _multivariate_view(mv: Mapping[str, Any] | None) -> dict[str, Any]:
    """The multivariate section: what was measured, against which bounds, and the rule in words."""
    if not mv:
        return {}
    pca = mv.get("method") == "pca"
    if pca:
        label = f"PCA reconstruction error ({mv.get('n_components')} components"
        if mv.get("explained_variance") is not None:
            label += f", {mv['explained_variance']:.0%} of the reference variance"
        label += ")"
        rule = (
            "Drift when the window's mean reconstruction error leaves the reference's bounds: the mean of 10 "
            "reference chunks +/- 3 standard deviations (wider for windows smaller than a chunk). It rises "
            "when the relationship between features changes, even if every column looks unchanged."
        )
    else:
        label = "Domain classifier (cross-validated ROC AUC, reference sample vs this window)"
        rule = "Drift when a classifier tells the window from the reference above the upper bound (0.5: not at all)."
    return {
        **mv,
        "label": label,
        "measure": "mean reconstruction error" if pca else "ROC AUC",
        "rule": rule,
        "statistic_text": _num(mv.get("statistic")),
        "lower_text": _num(mv.get("lower")),
        "upper_text": _num(mv.get("upper")),
        "reference_text": _num(mv.get("reference_error")) if pca else "0.5",
    }


# ---------------------------------------------------------------- formatting
def _num(x: float | None, inf_if_none: bool = False) -> str:
    if x is None:
        return "inf" if inf_if_none else "n/a"
    if x == 0:
        return "0"
    if abs(x) < 1e-3 or abs(x) >= 1e5:
        return f"{x:.3g}"
    return f"{x:.4f}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _short(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-2:
        return f"{x:.2g}"
    return f"{x:.3g}"


# ---------------------------------------------------------------- SVG
def _svg(body: list[str], height: int = H) -> str:
    return (
        f'<svg viewBox="0 0 {W} {height}" width="{W}" height="{height}" '
        f'role="img" font-family="sans-serif" font-size="10">' + "".join(body) + "</svg>"
    )


def _axes(ymax: float, label: str) -> list[str]:
    x0, y0, y1 = PAD_L, H - PAD_B, PAD_T
    return [
        f'<line x1="{x0}" y1="{y0}" x2="{W - 6}" y2="{y0}" stroke="#888"/>',
        f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#888"/>',
        f'<text x="{x0 - 4}" y="{y1 + 8}" text-anchor="end">{escape(label.format(ymax))}</text>',
        f'<text x="{x0 - 4}" y="{y0}" text-anchor="end">0</text>',
    ]


def _column_svg(dist: Mapping[str, Any]) -> str:
    if dist["kind"] == "numerical":
        return _hist_svg(dist)
    return _bars_svg(dist)


def _hist_svg(dist: Mapping[str, Any]) -> str:
    """Overlaid reference/current histograms (shares) on the reference's equal-width bins; values
    outside the reference range go to the outer "below"/"above" bars."""
    ref, cur = list(dist["reference"]), list(dist["current"])
    edges = list(dist["edges"])
    rs, cs = sum(ref) or 1, sum(cur) or 1
    ref_s, cur_s = [r / rs for r in ref], [c / cs for c in cur]
    show_under = cur_s[0] > 0 or ref_s[0] > 0
    show_over = cur_s[-1] > 0 or ref_s[-1] > 0
    idx = [
        i
        for i in range(len(ref))
        if (0 < i < len(ref) - 1) or (i == 0 and show_under) or (i == len(ref) - 1 and show_over)
    ]
    ymax = max(*(ref_s[i] for i in idx), *(cur_s[i] for i in idx), 1e-9)
    plot_w = W - PAD_L - 8
    bw = plot_w / len(idx)
    body = _axes(ymax, "{:.0%}")
    for k, i in enumerate(idx):
        x = PAD_L + 1 + k * bw
        for share, color in ((ref_s[i], REF_COLOR), (cur_s[i], CUR_COLOR)):
            h = (H - PAD_B - PAD_T) * share / ymax
            body.append(
                f'<rect x="{x:.1f}" y="{H - PAD_B - h:.1f}" width="{max(bw - 1, 0.5):.1f}" '
                f'height="{h:.1f}" fill="{color}" fill-opacity="0.55"/>'
            )
    y = H - PAD_B + 12
    first = 1 if show_under else 0
    body.append(f'<text x="{PAD_L + first * bw:.1f}" y="{y}" text-anchor="middle">{escape(_short(edges[0]))}</text>')
    end_x = PAD_L + (first + len(edges) - 1) * bw
    body.append(f'<text x="{end_x:.1f}" y="{y}" text-anchor="middle">{escape(_short(edges[-1]))}</text>')
    if show_under:
        body.append(f'<text x="{PAD_L + bw / 2:.1f}" y="{y + 11}" text-anchor="middle">below</text>')
    if show_over:
        body.append(f'<text x="{W - 8 - bw / 2:.1f}" y="{y + 11}" text-anchor="middle">above</text>')
    return _svg(body, H + 12)


def _bars_svg(dist: Mapping[str, Any]) -> str:
    """Side-by-side reference/current shares per category (most common first)."""
    keys, ref, cur = list(dist["keys"]), list(dist["reference"]), list(dist["current"])
    if not keys:
        return ""
    ymax = max(*ref, *cur, 1e-9)
    plot_w = W - PAD_L - 8
    gw = plot_w / len(keys)
    bw = max(gw / 2 - 2, 1)
    body = _axes(ymax, "{:.0%}")
    for k, key in enumerate(keys):
        x = PAD_L + 2 + k * gw
        for j, (share, color) in enumerate(((ref[k], REF_COLOR), (cur[k], CUR_COLOR))):
            h = (H - PAD_B - PAD_T) * share / ymax
            body.append(
                f'<rect x="{x + j * bw:.1f}" y="{H - PAD_B - h:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{escape(str(key))}: {share:.1%}</title></rect>'
            )
        label = str(key) if len(str(key)) <= 12 else str(key)[:11] + "..."
        body.append(f'<text x="{x + bw:.1f}" y="{H - PAD_B + 12}" text-anchor="middle">{escape(label)}</text>')
    if dist.get("n_other"):
        body.append(f'<text x="{W - 8}" y="{PAD_T + 8}" text-anchor="end">+{int(dist["n_other"])} more</text>')
    return _svg(body)


def _trend_svg(history: Sequence[Mapping[str, Any]], threshold: float, current: Mapping[str, Any] | None) -> str:
    """Share of drifted columns per window, with the dataset-drift threshold."""
    points = [h for h in history if isinstance(h.get("share_drifted"), int | float)]
    if current is not None and current.get("status") == "ok":
        points = [*points, current]
    if len(points) < 2:
        return ""
    body = _axes(1.0, "{:.0%}")
    plot_w, plot_h = W - PAD_L - 16, H - PAD_B - PAD_T
    step = plot_w / (len(points) - 1)
    ty = H - PAD_B - plot_h * threshold
    body.append(f'<line x1="{PAD_L}" y1="{ty:.1f}" x2="{W - 6}" y2="{ty:.1f}" stroke="#c00" stroke-dasharray="4 3"/>')
    body.append(
        f'<text x="{W - 8}" y="{ty - 3:.1f}" text-anchor="end" fill="#c00">dataset drift at {threshold:.0%}</text>'
    )
    coords = [(PAD_L + 8 + i * step, H - PAD_B - plot_h * float(p["share_drifted"])) for i, p in enumerate(points)]
    body.append(
        '<polyline fill="none" stroke="#333" stroke-width="1.5" points="'
        + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
        + '"/>'
    )
    for (x, y), p in zip(coords, points, strict=True):
        color = "#c00" if p.get("dataset_drifted") else "#333"
        body.append(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{color}"><title>{escape(str(p.get("window_end")))}'
            f": {float(p['share_drifted']):.0%}</title></circle>"
        )
    for (x, _), p in ((coords[0], points[0]), (coords[-1], points[-1])):
        body.append(
            f'<text x="{x:.1f}" y="{H - PAD_B + 12}" text-anchor="middle">{escape(_when(p.get("window_end")))}</text>'
        )
    return _svg(body)


def _when(value: Any) -> str:
    text = str(value or "")
    return text[:16].replace("T", " ") if len(text) >= 16 else text
