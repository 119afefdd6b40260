"""``yaml2torch report``: one self-contained HTML file (plotly.js inlined: no network when viewed)."""

from __future__ import annotations

import html
from typing import Any

from yaml2torch.search.config import SearchConfig
from yaml2torch.search.export import pick
from yaml2torch.search.progress import format_metric, trial_seconds, trial_values
from yaml2torch.study_record import TrialRecord

MIN_TRIALS_FOR_IMPORTANCES = 10  # fewer completed trials: the estimate is noise, so say so


def _figures(study: Any, config: SearchConfig, picked: int | None) -> list[tuple[str, Any]]:
    """(title, figure or a note why it is missing)."""
    import optuna.visualization as vis

    from yaml2torch.search.export import completed

    done = completed(study)
    figures: list[tuple[str, Any]] = []
    names = [o.metric for o in config.objectives]
    for i, name in enumerate(names):
        target = None if len(names) == 1 else (lambda t, i=i: t.values[i])
        if not done:  # Optuna would log a warning of its own and draw an empty plot
            figures.append((f"Optimization history: {name}", "not available: no trial completed"))
            continue
        try:
            figures.append(
                (f"Optimization history: {name}", vis.plot_optimization_history(study, target=target, target_name=name))
            )
        except (ValueError, RuntimeError) as exc:
            figures.append((f"Optimization history: {name}", f"not available: {exc}"))
    if len(names) > 1:
        figures.append(("Pareto front", _pareto_figure(study, config, done, picked)))
    for i, name in enumerate(names):
        figures.append((f"Parameter importances for {name}", _importances(study, done, names, i)))
    for axis in ("params", "macs"):
        figures.append((f"Trained {config.pick.metric} against {axis}", _metric_against(done, config, axis, picked)))
    return figures


def _importances(study: Any, done: list[Any], names: list[str], i: int) -> Any:
    import optuna.visualization as vis

    if len(done) < MIN_TRIALS_FOR_IMPORTANCES or not any(t.params for t in done):
        return (
            f"{len(done)} completed trials: too few for parameter importances to mean anything "
            f"(shown from {MIN_TRIALS_FOR_IMPORTANCES} completed trials with sampled parameters)"
        )
    target = None if len(names) == 1 else (lambda t: t.values[i])
    try:
        return vis.plot_param_importances(study, target=target, target_name=names[i])
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:
        return f"not available: {exc}"


def _hover(trial: Any) -> str:
    values = trial_values(trial)
    shown = ", ".join(f"{k} {format_metric(k, v)}" for k, v in values.items() if v is not None and k != "latency")
    return f"trial {trial.number}: {shown}"


def _pareto_figure(study: Any, config: SearchConfig, done: list[Any], picked: int | None) -> Any:
    """Every completed trial (grey), the whole front (blue, none hidden), the picked trial (star)."""
    import plotly.graph_objects as go

    from yaml2torch.search.export import pareto_trials

    x_name, y_name = config.objectives[0].metric, config.objectives[1].metric
    front = {t.number for t in pareto_trials(study, config)}
    fig = go.Figure()
    for label, trials, style in (
        ("trials", [t for t in done if t.number not in front], {"color": "#bbb", "size": 7}),
        ("Pareto front", [t for t in done if t.number in front], {"color": "#1f77b4", "size": 10}),
        ("picked", [t for t in done if t.number == picked], {"color": "#d62728", "size": 18, "symbol": "star"}),
    ):
        fig.add_trace(
            go.Scatter(
                x=[t.values[0] for t in trials],
                y=[t.values[1] for t in trials],
                mode="markers",
                name=label,
                marker=style,
                text=[_hover(t) for t in trials],
                hoverinfo="text",
            )
        )
    fig.update_layout(xaxis_title=x_name, yaxis_title=y_name)
    for axis, name in (("xaxis", x_name), ("yaxis", y_name)):
        if name in ("params", "macs"):
            fig.update_layout({axis: {"type": "log"}})  # sizes span decades: a linear axis hides the small ones
    return fig


def _metric_against(done: list[Any], config: SearchConfig, axis: str, picked: int | None) -> Any:
    import plotly.graph_objects as go

    metric = config.pick.metric
    points = [t for t in done if TrialRecord.of(t).value(axis) is not None]
    if not points:
        return f"no completed trial has a known {axis} count"
    fig = go.Figure()
    for label, trials, style in (
        ("trials", [t for t in points if t.number != picked], {"size": 8}),
        ("picked", [t for t in points if t.number == picked], {"color": "#d62728", "size": 16, "symbol": "star"}),
    ):
        fig.add_trace(
            go.Scatter(
                x=[TrialRecord.of(t).value(axis) for t in trials],
                y=[TrialRecord.of(t).value(metric) for t in trials],
                mode="markers",
                name=label,
                marker=style,
                text=[_hover(t) for t in trials],
                hoverinfo="text",
            )
        )
    fig.update_layout(xaxis_title=axis, yaxis_title=f"validation {metric}", xaxis_type="log")
    return fig


def _test_section(record: Any, picked: int | None) -> str:
    """The picked model's test metrics, per-class scores and confusion matrix (from the export)."""
    test = (record.picked_test or {}) if record is not None else {}
    metrics = test.get("metrics")
    if picked is None or test.get("trial") != picked or not metrics:
        return "<p class='note'>No test score recorded for the picked trial (run yaml2torch best to export it).</p>"
    classes = metrics.get("classes") or [str(i) for i in range(len(metrics.get("per_class", [])))]
    head = (
        f"<p>Test split ({metrics.get('samples', '?')} samples): accuracy {metrics['accuracy']:.4f}, "
        f"macro F1 {metrics['f1']:.4f}, loss {metrics['loss']:.4f}.</p>"
    )
    rows = "".join(
        f"<tr><td>{html.escape(str(name))}</td><td>{c['precision']:.4f}</td><td>{c['recall']:.4f}</td>"
        f"<td>{c['f1']:.4f}</td><td>{c['support']}</td></tr>"
        for name, c in zip(classes, metrics.get("per_class", []))
    )
    per_class = f"<table><tr><th>class</th><th>precision</th><th>recall</th><th>F1</th><th>support</th></tr>{rows}</table>"
    confusion = metrics.get("confusion") or []
    header = "".join(f"<th>{html.escape(str(c))}</th>" for c in classes)
    body = "".join(
        f"<tr><th>{html.escape(str(name))}</th>" + "".join(f"<td>{n}</td>" for n in row) + "</tr>"
        for name, row in zip(classes, confusion)
    )
    matrix = f"<p>Confusion matrix (rows: true class, columns: predicted)</p><table><tr><th></th>{header}</tr>{body}</table>"
    return head + per_class + matrix


def _note(trial, retry_number: int | None) -> str:
    """The reason, plus the retry links of yaml2torch.scale (a killed or interrupted trial is run again)."""
    record = TrialRecord.of(trial)
    parts = [f"retry of trial {record.retry_of}"] if record.retry_of is not None else []
    parts += [record.reason] if record.reason else []
    parts += [f"retried as trial {retry_number}"] if retry_number is not None else []
    return "; ".join(parts)


def _trial_rows(study, config: SearchConfig, picked: int | None) -> str:
    metrics = [o.metric for o in config.objectives]
    columns = [
        "#",
        "state",
        "status",
        *dict.fromkeys(metrics + ["accuracy", "f1", "params", "macs"]),
        "duration (s)",
        "params sampled",
        "note",
    ]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    rows = []
    trials = study.get_trials(deepcopy=False)
    records = {t.number: TrialRecord.of(t) for t in trials}
    retried_as = {r.retry_of: number for number, r in records.items() if r.retry_of is not None}
    for trial in trials:
        record = records[trial.number]
        values = trial_values(trial)
        seconds = trial_seconds(trial)
        sampled = ", ".join(f"{k}={v}" for k, v in trial.params.items())
        cells = [
            f"{trial.number}{' (picked)' if trial.number == picked else ''}",
            trial.state.name.lower(),
            record.status or "",
            *(format_metric(m, values.get(m)) for m in dict.fromkeys(metrics + ["accuracy", "f1", "params", "macs"])),
            "-" if seconds is None else f"{seconds:.1f}",
            sampled,
            _note(trial, retried_as.get(trial.number)),
        ]
        style = ' class="picked"' if trial.number == picked else ""
        rows.append(f"<tr{style}>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_report(study: Any, config: SearchConfig) -> str:
    import warnings

    from yaml2torch.errors import StudyError
    from yaml2torch.study_record import StudyRecord

    best, rule = pick(study, config)
    picked = None if best is None else best.number
    try:
        study_record: StudyRecord | None = StudyRecord.read(study)
    except StudyError:
        study_record = None
    parts = []
    plotly_included = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # importance estimators warn about tiny studies
        figures = _figures(study, config, picked)
    for title, figure in figures:
        parts.append(f"<h2>{html.escape(title)}</h2>")
        if isinstance(figure, str):
            parts.append(f"<p class='note'>{html.escape(figure)}</p>")
            continue
        # plotly.js goes inline once (about 3.5 MB) so the file opens without a network.
        parts.append(figure.to_html(full_html=False, include_plotlyjs=not plotly_included))
        plotly_included = True
    objectives = ", ".join(f"{o.metric} ({o.direction})" for o in config.objectives)
    summary = f"<p>Objectives: {html.escape(objectives)}. Pick rule: {html.escape(rule)}."
    if best is not None:
        chosen = TrialRecord.of(best)
        summary += (
            f" Picked trial {best.number}, architecture {html.escape((chosen.arch_hash or '')[:12])},"
            f" {chosen.params or 0:,} params, {format_metric('macs', chosen.macs)} MACs.</p>"
        )
        summary += f"<h2>Picked model on the test split</h2>{_test_section(study_record, picked)}"
        summary += f"<h2>Picked spec</h2><pre>{html.escape(chosen.spec_yaml or '')}</pre>"
    else:
        summary += "</p>"
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>yaml2torch study {html.escape(study.study_name)}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:3px 6px}} tr.picked{{background:#efe}} .note{{color:#777}}</style></head>
<body><h1>Study {html.escape(study.study_name)}</h1>
{summary}
{''.join(parts)}
<h2>Trials</h2>
{_trial_rows(study, config, picked)}
</body></html>
"""
