"""Pins the Optuna internals that ``yaml2torch.scale._optuna`` uses, against real storages.

When an Optuna release changes them, this file fails first and says which helper to fix.
"""

from __future__ import annotations

import time
import warnings

import optuna
import pytest
from optuna.storages import JournalStorage, RDBStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from yaml2torch.scale import _optuna

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_the_installed_optuna_is_one_the_helpers_were_checked_against():
    assert optuna.__version__.startswith(_optuna.CHECKED_OPTUNA), (
        f"optuna {optuna.__version__}: re-check yaml2torch/scale/_optuna.py against it, then widen CHECKED_OPTUNA "
        "and the bound in pyproject.toml"
    )


@pytest.fixture(params=["journal", "sqlite"])
def study(request, tmp_path):
    if request.param == "journal":
        storage = JournalStorage(JournalFileBackend(str(tmp_path / "s.log")))
    else:
        storage = RDBStorage(f"sqlite:///{tmp_path}/s.db")
    return optuna.create_study(storage=storage, study_name="s")


def test_trial_ids_attributes_and_failing_a_trial(study):
    trial = study.ask()
    trial_id = _optuna.trial_id_of(trial)
    assert isinstance(trial_id, int) and _optuna.study_id_of(study) >= 0
    assert _optuna.trial_id_of(study.get_trials()[0]) == trial_id
    _optuna.set_trial_user_attr(study, trial_id)("note", [1, "two"])
    assert _optuna.get_trial(study, trial_id).user_attrs["note"] == [1, "two"]
    assert _optuna.fail_trial(study, trial_id) is True
    assert _optuna.fail_trial(study, trial_id) is False  # already finished: another worker was first
    assert _optuna.get_trial(study, trial_id).state == TrialState.FAIL
    assert not _optuna.has_optuna_heartbeats(study)
    _optuna.session_reset(study)()  # a no-op or a real session reset; never an error


def test_rdb_heartbeats_stale_ids_grace_period_and_session_reset(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = RDBStorage(f"sqlite:///{tmp_path}/h.db", heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(storage=storage, study_name="h")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "heartbeat is supposed to be used with Study.optimize"
        trial = study.ask()
    trial_id = _optuna.trial_id_of(trial)
    assert _optuna.has_optuna_heartbeats(study)
    assert _optuna.heartbeat_grace_period(study) == 1
    _optuna.record_optuna_heartbeat(study, trial_id)
    assert _optuna.optuna_stale_trial_ids(study) == set()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and trial_id not in _optuna.optuna_stale_trial_ids(study):
        time.sleep(0.2)
    assert _optuna.optuna_stale_trial_ids(study) == {trial_id}
    reset = _optuna.session_reset(study)
    assert getattr(reset, "__name__", "") == "remove_session"  # unwrapped to the RDB storage's own call
    reset()
    assert _optuna.get_trial(study, trial_id).state == TrialState.RUNNING  # the storage still works


def test_the_journal_file_shares_format_and_lock_with_optunas_own(tmp_path):
    """``scale/journal.py`` writes the records Optuna's backend reads (and reads Optuna's), under the
    same lock file; every record starts with ``RECORD_PREFIX``, which the storage check relies on."""
    from yaml2torch.scale.journal import RECORD_PREFIX, JournalFile

    path = tmp_path / "s.log"
    ours = JournalStorage(JournalFile(str(path)))
    optuna.create_study(storage=ours, study_name="a").optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    theirs = JournalStorage(JournalFileBackend(str(path)))
    assert [t.state for t in optuna.load_study(study_name="a", storage=theirs).trials] == [TrialState.COMPLETE] * 2
    optuna.create_study(storage=theirs, study_name="b").optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    again = JournalStorage(JournalFile(str(path)))
    assert len(optuna.load_study(study_name="b", storage=again).trials) == 1
    assert all(line.startswith(RECORD_PREFIX) for line in path.read_bytes().splitlines())
    assert JournalFile(str(path))._append_lock._lock_file == JournalFileBackend(str(path))._lock._lock_file


@pytest.mark.parametrize("backend", ["journal", "sqlite"])
def test_ga_generations_fill_with_the_pruned_trials_they_count_and_optunas_do_not(tmp_path, backend):
    """Optuna's NSGA-II counts COMPLETE trials only towards a generation; the counting wrapper
    also counts the PRUNED trials its predicate accepts, under Optuna's own generation key."""
    from optuna.distributions import FloatDistribution

    def generations(sampler: optuna.samplers.BaseSampler) -> list[int]:
        path = tmp_path / f"{type(sampler).__module__}-{id(sampler)}"
        storage = (
            JournalStorage(JournalFileBackend(f"{path}.log")) if backend == "journal" else RDBStorage(f"sqlite:///{path}.db")
        )
        study = optuna.create_study(storage=storage, directions=["maximize", "minimize"], sampler=sampler)
        space = {"x": FloatDistribution(0.0, 1.0)}
        # complete, stopped by the rule, pruned for another reason
        outcomes = ("complete", "stopped", "other", "stopped", "complete", "complete", "stopped", "stopped", "stopped", "complete")
        for outcome in outcomes:
            trial = study.ask(space)
            if outcome == "complete":
                study.tell(trial, [trial.params["x"], 1.0])
            else:
                if outcome == "stopped":
                    trial.set_user_attr("early_stop", {"epoch": 2})
                study.tell(trial, state=TrialState.PRUNED)
        key = optuna.samplers.NSGAIISampler._get_generation_key()
        return [t.system_attrs[key] for t in study.get_trials()]

    counting = _optuna.ga_generation_counting(optuna.samplers.NSGAIISampler, lambda t: "early_stop" in t.user_attrs)
    assert counting.__name__ == "NSGAIISampler" and issubclass(counting, optuna.samplers.NSGAIISampler)
    # population 3. The wrapper counts the stopped trials 1 and 3 but keeps generation 0 open
    # until it holds two COMPLETE trials (the crossover's parents): trial 4 is still generation 0,
    # trial 5 starts generation 1, and the stopped trials 6-8 fill it. Optuna waits for three
    # COMPLETE trials (0, 4, 5) and never counts a stopped one.
    assert generations(counting(population_size=3, seed=0)) == [0, 0, 0, 0, 0, 1, 1, 1, 2, 2]
    assert generations(optuna.samplers.NSGAIISampler(population_size=3, seed=0)) == [0, 0, 0, 0, 0, 0, 1, 1, 1, 1]


def test_crossover_parents_reads_the_samplers_crossover():
    """The generation-0 guard of the counting sampler reads NSGA-II's private crossover."""
    from optuna.samplers.nsgaii import SPXCrossover, UniformCrossover

    assert _optuna.crossover_parents(optuna.samplers.NSGAIISampler(crossover=UniformCrossover())) == 2
    assert _optuna.crossover_parents(optuna.samplers.NSGAIISampler(crossover=SPXCrossover())) == 3
