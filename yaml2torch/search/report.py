"""``yaml2torch report``: one self-contained HTML file (plotly.js inlined: no network when viewed)."""

from __future__ import annotations

import html
from typing import Any

from yaml2torch.search.config import SearchConfig
from yaml2torch.search.export import pick
from yaml2torch.search.progress import format_metric, trial_seconds, trial_values
from yaml2torch.study_record import TrialRecord


def _figures(study, config: SearchConfig) -> list[tuple[str, Any]]:
    """(title, figure or a note why it is missing)."""
    import optuna.visualization as vis

    from yaml2torch.search.export import completed

    done = completed(study)
    figures: list[tuple[str, Any]] = []  # a plotly figure (untyped) or a note (str)
    names = [o.metric for o in config.objectives]
    for i, name in enumerate(names):
        target = None if len(names) == 1 else (lambda t, i=i: t.values[i])
        try:
            figures.append(
                (f"Optimization history: {name}", vis.plot_optimization_history(study, target=target, target_name=name))
            )
        except (ValueError, RuntimeError) as exc:
            figures.append((f"Optimization history: {name}", f"not available: {exc}"))
    if len(names) > 1:
        try:
            figures.append(("Pareto front", vis.plot_pareto_front(study, target_names=names)))
        except (ValueError, RuntimeError) as exc:
            figures.append(("Pareto front", f"not available: {exc}"))
    for i, name in enumerate(names):
        title = f"Parameter importances for {name}"
        if len(done) < 2 or not any(t.params for t in done):
            figures.append((title, "needs at least two completed trials with sampled parameters"))
            continue
        target = None if len(names) == 1 else (lambda t, i=i: t.values[i])
        try:
            figures.append((title, vis.plot_param_importances(study, target=target, target_name=name)))
        except (ValueError, RuntimeError, ZeroDivisionError) as exc:
            figures.append((title, f"not available: {exc}"))
    figures.append(("Score against parameters", _score_vs_params(done, config)))
    return figures


def _score_vs_params(done: list, config: SearchConfig):
    import plotly.graph_objects as go

    metric = config.pick.metric
    fig = go.Figure(
        go.Scatter(
            x=[TrialRecord.of(t).params for t in done],
            y=[TrialRecord.of(t).value(metric) for t in done],
            mode="markers",
            text=[f"trial {t.number}" for t in done],
        )
    )
    fig.update_layout(xaxis_title="params", yaxis_title=f"validation {metric}", xaxis_type="log")
    return fig


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


def render_report(study, config: SearchConfig) -> str:
    import warnings

    best, rule = pick(study, config)
    picked = None if best is None else best.number
    parts = []
    plotly_included = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # importance estimators warn about tiny studies
        figures = _figures(study, config)
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
        record = TrialRecord.of(best)
        summary += (
            f" Picked trial {best.number}, architecture {html.escape((record.arch_hash or '')[:12])},"
            f" {record.params or 0:,} params.</p>"
        )
        summary += f"<h2>Picked spec</h2><pre>{html.escape(record.spec_yaml or '')}</pre>"
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
