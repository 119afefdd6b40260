"""The only module that touches Optuna's private API. ``tests/test_optuna_internals.py`` pins it.

The worker loop needs a few things Optuna keeps private: a study's storage and id (to record
attributes on a trial that is not ours, e.g. when failing a stale one), a trial's storage id,
which RUNNING trials Optuna's heartbeat calls stale, and the database session of the thread
(to drop it after a connection was lost). The search also needs NSGA-II's generation logic and
crossover (so that trials the Dominance rule stopped fill a generation). Each is one small function here, so an Optuna
release that changes them breaks one file and one test, loudly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

# The versions these helpers were checked against (the test fails outside them).
CHECKED_OPTUNA = ("4.", "5.0.")


def storage_of(study: optuna.Study) -> BaseStorage:
    return study._storage


def study_id_of(study: optuna.Study) -> int:
    return study._study_id


def trial_id_of(trial: optuna.Trial | FrozenTrial) -> int:
    return trial._trial_id


def get_trial(study: optuna.Study, trial_id: int) -> FrozenTrial:
    """A fresh copy of one trial from the storage (another worker may have changed it)."""
    return storage_of(study).get_trial(trial_id)


def set_trial_user_attr(study: optuna.Study, trial_id: int) -> Callable[[str, Any], None]:
    """``set_user_attr`` for a trial this process holds no ``Trial`` object for."""
    storage = storage_of(study)
    return lambda key, value: storage.set_trial_user_attr(trial_id, key, value)


def fail_trial(study: optuna.Study, trial_id: int) -> bool:
    """Set a RUNNING trial to FAIL; False when another process finished it first."""
    from optuna.trial import TrialState

    try:
        return bool(storage_of(study).set_trial_state_values(trial_id, TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def has_optuna_heartbeats(study: optuna.Study) -> bool:
    """RDB storages opened with a heartbeat interval track liveness themselves."""
    from optuna.storages._heartbeat import is_heartbeat_enabled

    return is_heartbeat_enabled(storage_of(study))


def heartbeat_grace_period(study: optuna.Study) -> float | None:
    storage = storage_of(study)
    backend = getattr(storage, "_backend", storage)
    return getattr(backend, "grace_period", None)


def optuna_stale_trial_ids(study: optuna.Study) -> set[int]:
    """Ids of RUNNING trials whose Optuna heartbeat is older than the storage's grace period."""
    return set(storage_of(study)._get_stale_trial_ids(study_id_of(study)))  # type: ignore[attr-defined]  # RDB/cached storages have it (tests/test_optuna_internals.py)


def record_optuna_heartbeat(study: optuna.Study, trial_id: int) -> None:
    storage: Any = storage_of(study)
    storage.record_heartbeat(trial_id)


def session_reset(study_or_storage: optuna.Study | BaseStorage) -> Callable[[], None]:
    """The call that drops this thread's database session after a lost connection (a no-op
    for storages without sessions). Optuna's cache wrapper does not pass it on, hence the unwrap."""
    from optuna.storages import _CachedStorage

    storage = storage_of(study_or_storage) if isinstance(study_or_storage, optuna.Study) else study_or_storage
    inner = storage._backend if isinstance(storage, _CachedStorage) else storage
    return getattr(inner, "remove_session", lambda: None)


def ga_generation_counting(
    sampler_class: type[optuna.samplers.NSGAIISampler], counts: Callable[[FrozenTrial], bool]
) -> type[optuna.samplers.NSGAIISampler]:
    """``sampler_class`` (NSGA-II) whose generations fill with the finished trials ``counts`` accepts.

    Optuna's genetic samplers move to the next generation once ``population_size`` trials of
    the current one are COMPLETE; a trial the Dominance rule stopped (PRUNED) never counts, so
    with most children stopped a generation waits for three times the trials. This is
    ``BaseGASampler.get_trial_generation`` (Optuna 4.2-5.0) with PRUNED trials that ``counts``
    accepts counted too. Parents still come from COMPLETE trials only (``get_population``), so
    generation 0 also needs as many COMPLETE trials as the crossover takes parents: with fewer,
    NSGA-II's crossover has nothing to pick from (a ValueError). Each later generation's parents
    are the elite of its population and the previous parents, never fewer.
    """
    from optuna.trial import TrialState

    base: Any = sampler_class  # a base class given at run time: mypy checks the body, not the base

    class CountingSampler(base):
        def get_trial_generation(self, study: optuna.Study, trial: FrozenTrial) -> int:
            key = self._get_generation_key()
            generation = trial.system_attrs.get(key, None)
            if generation is not None:
                return int(generation)
            finished = study._get_trials(deepcopy=False, states=[TrialState.COMPLETE, TrialState.PRUNED], use_cache=True)
            max_generation, max_generation_count, max_generation_complete = 0, 0, 0
            for t in reversed(finished):
                g = t.system_attrs.get(key, -1)
                if g < 0 or g < max_generation or (t.state == TrialState.PRUNED and not counts(t)):
                    continue
                if g > max_generation:
                    max_generation, max_generation_count, max_generation_complete = g, 0, 0
                max_generation_count += 1
                max_generation_complete += t.state == TrialState.COMPLETE
            full = max_generation_count >= self._population_size
            if max_generation == 0:
                full = full and max_generation_complete >= crossover_parents(self)
            generation = max_generation + 1 if full else max_generation
            storage_of(study).set_trial_system_attr(trial_id_of(trial), key, generation)
            return generation

    # Optuna keys a subclass's attributes by its class name: keep the wrapped sampler's, so the
    # study records its generations and parents as Optuna's own sampler does.
    CountingSampler._GENERATION_KEY = sampler_class._get_generation_key()
    CountingSampler._PARENT_CACHE_KEY_PREFIX = sampler_class._get_parent_cache_key_prefix()
    CountingSampler.__name__ = CountingSampler.__qualname__ = sampler_class.__name__
    return CountingSampler


def crossover_parents(sampler: optuna.samplers.NSGAIISampler) -> int:
    """How many parents one NSGA-II child is bred from (2 for Optuna's default crossover)."""
    strategy = getattr(sampler, "_child_generation_strategy", None)
    crossover = getattr(strategy, "_crossover", None)
    return max(2, int(getattr(crossover, "n_parents", 2)))
