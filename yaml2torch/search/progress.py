"""Rich progress while a search runs (trial n/N, epoch, best so far) and the closing table."""

from __future__ import annotations

import sys
from typing import Self

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from yaml2torch.scale.budget import counted_trials
from yaml2torch.study_record import TrialRecord, TrialStatus


def format_metric(name: str, value) -> str:
    if value is None:
        return "-"
    if name in ("accuracy", "f1"):
        return f"{value:.4f}"
    if name in ("params", "macs"):
        return f"{int(value):,}"
    if name == "latency":
        return f"{value:.3f} ms"
    return f"{value:.4g}"


def trial_values(trial) -> dict:
    """A trial's stored metrics plus its params and MACs, by name (for tables)."""
    record = TrialRecord.of(trial)
    return {**(record.metrics or {}), "params": record.params, "macs": record.macs}


def trial_seconds(trial) -> float | None:
    if trial.datetime_complete and trial.datetime_start:
        return (trial.datetime_complete - trial.datetime_start).total_seconds()
    return None


def trials_done(trials, total: int | None) -> int:
    """Finished trials as the budget counts them (a failure that was queued again counts through
    its retry, not twice), at most ``total``: the bar never shows more than its total."""
    done = sum(1 for t in counted_trials(trials) if t.state.is_finished())
    return done if total is None else min(done, total)


def _pareto_front(trials, config) -> list:
    """The trials no other trial dominates (as ``study.best_trials``, over these trials only)."""
    signs = [1 if o.direction == "maximize" else -1 for o in config.objectives]

    def scores(trial) -> list[float]:
        return [sign * value for sign, value in zip(signs, trial.values, strict=True)]

    def dominates(a: list[float], b: list[float]) -> bool:
        return all(x >= y for x, y in zip(a, b, strict=True)) and a != b

    points = [(t, scores(t)) for t in trials]
    return [t for t, p in points if not any(dominates(q, p) for _, q in points)]


def trial_outcome(trial, config, detail: bool = True) -> str:
    """How a finished trial ended, in a few words: ``trial 3 pruned at epoch 7: accuracy 0.9500``.
    ``detail`` adds an infeasible trial's reason (the log line has room; the bar does not)."""
    record = TrialRecord.of(trial)
    state = trial.state.name
    if state == "FAIL":
        status = record.status if record.status not in (None, "failed") else None
        return f"trial {trial.number} failed" + (f" ({status})" if status else "")  # the reason was said above
    if state == "PRUNED" and record.status == "infeasible":
        reason = (record.reason or "")[:80]
        return f"trial {trial.number} infeasible" + (f": {reason}" if detail and reason else "")
    values = ", ".join(
        f"{o.metric} {format_metric(o.metric, record.value(o.metric))}"
        for o in config.objectives
        if record.value(o.metric) is not None
    )
    if state == "PRUNED":
        epoch = max(trial.intermediate_values, default=None) or len(record.epoch_metrics or ()) or None
        what = f"trial {trial.number} pruned" + (f" at epoch {epoch}" if epoch else "")
    elif record.duplicate_of is not None:
        what = f"trial {trial.number} same as trial {record.duplicate_of}"
    else:
        what = f"trial {trial.number} complete"
    return f"{what}: {values}" if values else what


class SearchProgress:
    """Progress on stderr. On a terminal: two rich bars, trials and epochs of the current trial.
    Elsewhere (a pipe, a log file): one plain line per finished trial, as it finishes (rich draws
    nothing live there, so a CI log would stay silent until the end). Disabled: prints nothing."""

    def __init__(self, config, study, total: int | None, enabled: bool = True) -> None:
        self.config = config
        self.enabled = enabled
        self.total = total
        self.last = ""  # the last finished trial, shown after the best value
        # A log file or pipe gets wide lines rather than a table wrapped at 80 columns.
        self.console = Console(file=sys.stderr, width=None if sys.stderr.isatty() else 150)
        self.lines = enabled and not (self.console.is_terminal or self.console.is_jupyter)  # a notebook draws bars
        # Lines count and rank only the trials said so far: several workers' trials may finish
        # between two looks at the study, and each line reads as of its own trial.
        self.said = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()} if self.lines else set()
        # The info text (best, last trial) is cut to what the line leaves, else rich squeezes the
        # bar and the counts to nothing on an 80-column terminal.
        bar = 20 if self.console.width < 120 else 40
        info_width = max(12, self.console.width - (8 + bar + 7 + 7 + 4))  # name, bar, n/N, time, gaps
        self.progress = Progress(
            TextColumn("[bold]{task.description}", table_column=Column(min_width=8, no_wrap=True)),
            BarColumn(bar_width=bar),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[info]}", table_column=Column(no_wrap=True, overflow="ellipsis", max_width=info_width)),
            console=self.console,
            disable=not enabled or self.lines,
            transient=False,
        )
        self.trials = self.progress.add_task("trials", total=total, completed=0, info="")
        self.epochs = self.progress.add_task("epochs", total=1, completed=0, info="", visible=False)
        if not self.lines:
            self.show_study(study)

    def __enter__(self) -> Self:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def start_trial(self, number: int, epochs: int) -> None:
        self.progress.update(
            self.epochs, description=f"trial {number}", total=epochs, completed=0, info="", visible=True
        )

    def epoch(self, epoch: int, epochs: int, metrics: dict) -> None:
        metric = self.config.objectives[0].metric
        shown = metric if metric in metrics else "accuracy"
        self.progress.update(
            self.epochs, completed=epoch, info=f"val {shown} {format_metric(shown, metrics.get(shown))}"
        )

    def trial_done(self, study, trial) -> None:
        if not self.enabled:
            return
        if self.lines:
            self.said.add(trial.number)
            trials = [t for t in study.get_trials(deepcopy=False) if t.number in self.said or not t.state.is_finished()]
            done = trials_done(trials, self.total)
            count = f"{done}/{self.total}" if self.total is not None else f"{done}"
            print(f"[{count}] {trial_outcome(trial, self.config)}; {self.best_of(trials)}", file=sys.stderr, flush=True)
            return
        self.last = f"last: {trial_outcome(trial, self.config, detail=False)}"
        self.show_study(study)
        self.progress.update(self.epochs, visible=False)

    def show_study(self, study) -> None:
        """The trials bar from the study itself: its count as the budget counts, and the best so far."""
        if not self.enabled or self.lines:  # nothing is drawn: spare the storage reads (every trial, quiet runs too)
            return
        trials = study.get_trials(deepcopy=False)
        info = f"{self.best(study)}  {self.last}".rstrip()
        self.progress.update(self.trials, completed=trials_done(trials, self.total), info=info)

    def best(self, study) -> str:
        try:
            if not self.config.multi_objective:
                best = study.best_trial
                return f"best {format_metric(self.config.objectives[0].metric, best.value)} (trial {best.number})"
            return f"pareto {len(study.best_trials)} trials"
        except ValueError:
            return "best -"  # no completed trial yet

    def best_of(self, trials) -> str:
        """``best`` among these trials (Optuna's rule: the best value of a completed trial)."""
        complete = [t for t in trials if t.state.name == "COMPLETE"]
        if not complete:
            return "best -"
        if self.config.multi_objective:
            return f"pareto {len(_pareto_front(complete, self.config))} trials"
        sign = 1 if self.config.objectives[0].direction == "maximize" else -1
        best = max(complete, key=lambda t: (sign * t.value, -t.number))
        return f"best {format_metric(self.config.objectives[0].metric, best.value)} (trial {best.number})"

    def closing_table(self, study, config, summary: dict) -> None:
        if not self.enabled:
            return
        self.show_study(study)  # also when no trial ran here (the budget was reached before)
        self.progress.stop()
        self.console.print(trials_table(study, config, (summary.get("picked") or {}).get("number")))
        if summary.get("picked"):
            self.console.print(picked_line(summary["picked"], summary["out_dir"]), soft_wrap=True, highlight=False)


def picked_line(picked: dict, out_dir: object) -> str:
    """The picked trial in one line (search's closing line, ``best``)."""
    test = picked.get("test") or {}
    scores = (
        f"test accuracy {format_metric('accuracy', test.get('accuracy'))}, test f1 {format_metric('f1', test.get('f1'))}"
        if test
        else "no test score (no test split)"
    )
    return f"picked trial {picked['number']} ({picked['arch_hash'][:12]}): {scores}, params {picked['params']:,}; files in {out_dir}"


def scores_line(val: dict, test: dict | None, out_dir: object) -> str:
    """A training's scores in one line (``train``)."""
    shown = [f"val accuracy {format_metric('accuracy', val.get('accuracy'))}", f"val f1 {format_metric('f1', val.get('f1'))}"]
    if test:
        shown += [f"test accuracy {format_metric('accuracy', test.get('accuracy'))}", f"test f1 {format_metric('f1', test.get('f1'))}"]
    return f"{', '.join(shown)}; files in {out_dir}"


NOTE_WIDTH = 70  # characters of a trial's note in the closing table


def trials_table(study, config, picked: int | None = None, limit: int = 40) -> Table:
    metrics = [o.metric for o in config.objectives]
    extra = [m for m in ("accuracy", "f1", "params", "macs") if m not in metrics]
    table = Table(title=f"study {study.study_name}")
    for column in ["#", "state", *metrics, *extra, "time"]:
        table.add_column(column, justify="right" if column != "state" else "left", no_wrap=True)
    table.add_column("note", overflow="fold")
    trials = study.get_trials(deepcopy=False)
    cut = False
    shown = trials[-limit:]
    for trial in shown:
        record = TrialRecord.of(trial)
        values = trial_values(trial)
        seconds = trial_seconds(trial)
        shows_reason = trial.state.name != "COMPLETE" or record.duplicate_of is not None
        note = (record.reason or "") if shows_reason else ""
        if len(note) > NOTE_WIDTH:  # a stop's reason names its dominators: a few lines each
            note, cut = note[: NOTE_WIDTH - 1] + "…", True
        mark = "*" if trial.number == picked else ""
        infeasible = trial.state.name == "PRUNED" and record.status == TrialStatus.INFEASIBLE
        table.add_row(
            f"{trial.number}{mark}",
            "infeasible" if infeasible else trial.state.name.lower(),  # pruned untrained, by a constraint
            *(format_metric(m, values.get(m)) for m in metrics + extra),
            "-" if seconds is None else f"{seconds:.1f}s",
            note,
        )
    caption = [f"last {limit} of {len(trials)} trials"] if len(trials) > limit else []
    caption.append("* = picked")
    if cut:
        caption.append(f"notes cut to {NOTE_WIDTH} characters: yaml2torch report OUT_DIR shows them whole")
    table.caption = "; ".join(caption)
    return table
