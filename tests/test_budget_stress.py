"""Stress: many workers, near-instant trials, every storage, many rounds; never more trials than the budget.

Not run by default (minutes of CPU). Run it with::

    Y2T_STRESS=1 .venv/bin/python -m pytest tests/test_budget_stress.py -q

``Y2T_STRESS_ROUNDS`` (default 5) and ``Y2T_STRESS_WORKERS`` (default 6) size it.
"""

from __future__ import annotations

import os
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from pg_server import postgres_server  # noqa: F401 - a fixture
from scale_helpers import SPACE, load, yaml2torch

from yaml2torch.scale.storage import journal_url

pytestmark = [
    pytest.mark.stress,
    pytest.mark.skipif(os.environ.get("Y2T_STRESS") != "1", reason="stress test: set Y2T_STRESS=1 to run"),
]
ROUNDS = int(os.environ.get("Y2T_STRESS_ROUNDS", "5"))
WORKERS = int(os.environ.get("Y2T_STRESS_WORKERS", "6"))
BUDGET = 3 * WORKERS + 1  # not a multiple of the workers: the last trials are raced for

optuna.logging.set_verbosity(optuna.logging.WARNING)

# One epoch on 150 samples of a one-conv model, trained in the worker: a trial takes milliseconds.
INSTANT = SPACE.replace("limit: 300", "limit: 150").replace("epochs: 2", "epochs: 1")


def hammer(tmp_path: Path, url_of: object) -> None:
    space = tmp_path / "instant.yaml"
    space.write_text(INSTANT)
    for round_ in range(ROUNDS):
        out = tmp_path / f"round{round_}"
        url = url_of(out) if callable(url_of) else url_of
        study = f"stress{round_}"
        args = ("--trials", BUDGET, "--storage", url, "--study", study, "--out", out, "--quiet", "--no-isolate")
        run = yaml2torch("search", space, "--workers", WORKERS, "--threads", 1, *args, timeout=600)
        assert run.returncode == 0, run.stderr
        trials = load(url, study)
        states = [(t.number, t.state.name, t.user_attrs.get("reason")) for t in trials]
        assert len(trials) == BUDGET, f"round {round_}: {states}"
        assert all(t.state == TrialState.COMPLETE for t in trials), f"round {round_}: {states}"
        assert len({t.user_attrs["trial_dir"] for t in trials}) == BUDGET  # no trial ran twice


def test_stress_journal(tmp_path):
    hammer(tmp_path, lambda out: journal_url(out / "study.log"))


def test_stress_sqlite(tmp_path):
    hammer(tmp_path, lambda out: f"sqlite:///{out / 'study.db'}")


@pytest.mark.postgres
def test_stress_postgres(postgres_server, tmp_path):  # noqa: F811
    hammer(tmp_path, postgres_server.url)
