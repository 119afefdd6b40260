"""The only module that touches Optuna's private API. ``tests/test_optuna_internals.py`` pins it.

The worker loop needs a few things Optuna keeps private: a study's storage and id (to record
attributes on a trial that is not ours, e.g. when failing a stale one), a trial's storage id,
which RUNNING trials Optuna's heartbeat calls stale, and the database session of the thread
(to drop it after a connection was lost). Each is one small function here, so an Optuna
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
