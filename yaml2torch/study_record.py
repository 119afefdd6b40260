"""The study protocol: every name and type yaml2torch records on an Optuna study and its trials.

One home for all of it. The search writes here, and everything that reads a stored study (the
worker, ``best``, ``report``, stale-trial handling, the progress table) reads through the same
classes, so a worker on another machine needs only ``--storage`` and ``--study``.

Study user attributes (``StudyRecord``): the search file's text, hash and path, the objectives,
the output folder, the shared run settings (``RunSettings``) and the yaml2torch version.

Trial user attributes (``TrialRecord``): the sampled spec, its architecture hash, size and
training settings; the generated source and trial folder; metrics, timing and device; the
per-epoch metrics and the early stop of a multi-objective trial (``search/early_stop.py``); the
outcome (``status``/``reason``); duplicates and retries; the worker and its heartbeat; the
weights' artifact id. Retries also carry Optuna's own ``failed_trial``/``retry_history``
system attributes, so Optuna's retry helpers understand ours.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from yaml2torch.errors import StudyError

SetAttr = Callable[[str, Any], None]  # trial.set_user_attr, or a storage call bound to a trial id


class FrozenTrialLike(Protocol):
    """What the readers need of ``optuna.trial.FrozenTrial`` (kept structural: no optuna import)."""

    number: int

    @property
    def user_attrs(self) -> dict[str, Any]: ...

    @property
    def system_attrs(self) -> dict[str, Any]: ...


# --- study --------------------------------------------------------------------------------------

MAX_STUDY_NAME = 100


def study_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a study, or None. A study name is also a folder name: 1 to 100
    printable characters (no newline, tab or bidi control), no '/' or '\\', no leading '.'. The one
    rule for ``--study`` and a search file's ``study:``."""
    if not name or len(name) > MAX_STUDY_NAME:
        return f"must be 1 to {MAX_STUDY_NAME} characters"
    if "/" in name or "\\" in name or name.startswith(".") or not name.isprintable():
        return f"{name!r} is not a plain name (no '/', leading '.', or control characters)"
    return None


STUDY_SPACE_YAML = "space_yaml"
STUDY_SPACE_SHA256 = "space_sha256"
STUDY_SPACE_PATH = "space_path"
STUDY_OBJECTIVES = "objectives"
STUDY_OUT_DIR = "out_dir"
STUDY_SETTINGS = "settings"
STUDY_VERSION = "yaml2torch_version"
STUDY_PICKED_TEST = "picked_test"  # {"trial": N, "metrics": {...}}: the picked trial's test score


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class RunSettings:
    """The run options every worker of a study shares (``search`` records them, ``worker`` reads them)."""

    trials: int | None = None  # the study-wide budget (exact; see yaml2torch.scale.budget)
    timeout: float | None = None  # seconds each run may start trials for
    epochs: int | None = None  # train.epochs override (part of what a trial means)
    data_limit: int | None = None  # stratified subset size (part of what a trial means)
    time_limit: float | None = None  # per trial, seconds
    artifacts: str | None = None  # artifact store folder for weights

    def as_attr(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_attr(cls, value: Any) -> RunSettings:
        if not isinstance(value, Mapping):
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in value.items() if k in known})


@dataclass(frozen=True)
class StudyRecord:
    """What a study holds so that any machine can join, export or report from storage alone."""

    space_yaml: str
    space_path: str  # absolute path of the search file, or "<name>" when it had none
    objectives: tuple[tuple[str, str], ...] = ()
    out_dir: str | None = None
    settings: RunSettings = field(default_factory=RunSettings)
    version: str = ""
    picked_test: Mapping[str, Any] | None = None  # written by the export, read by the report

    @property
    def space_sha256(self) -> str:
        return sha256_text(self.space_yaml)

    def write(self, study: Any) -> None:
        for key, value in (
            (STUDY_SPACE_YAML, self.space_yaml),
            (STUDY_SPACE_SHA256, self.space_sha256),
            (STUDY_SPACE_PATH, self.space_path),
            (STUDY_OBJECTIVES, [list(o) for o in self.objectives]),
            (STUDY_OUT_DIR, self.out_dir),
            (STUDY_SETTINGS, self.settings.as_attr()),
            (STUDY_VERSION, self.version),
        ):
            study.set_user_attr(key, value)

    @classmethod
    def read(cls, study: Any) -> StudyRecord:
        """The record of a yaml2torch study; StudyError when the study was not made by yaml2torch."""
        attrs = study.user_attrs
        if STUDY_SPACE_YAML not in attrs:
            raise StudyError(
                f"study {study.study_name!r} has no yaml2torch search file recorded "
                "(was it created by 'yaml2torch search'?)"
            )
        record = cls(
            space_yaml=attrs[STUDY_SPACE_YAML],
            space_path=attrs.get(STUDY_SPACE_PATH, "<stored search file>"),
            objectives=tuple((str(m), str(d)) for m, d in attrs.get(STUDY_OBJECTIVES, [])),
            out_dir=attrs.get(STUDY_OUT_DIR),
            settings=RunSettings.from_attr(attrs.get(STUDY_SETTINGS)),
            version=attrs.get(STUDY_VERSION, ""),
            picked_test=attrs.get(STUDY_PICKED_TEST),
        )
        recorded = attrs.get(STUDY_SPACE_SHA256)
        if recorded is not None and recorded != record.space_sha256:
            raise StudyError(f"study {study.study_name!r}: its recorded search file does not match its recorded hash")
        return record

    def space_dir(self) -> Path:
        """The one rule for relative paths in a stored search file (data folders, python: files):
        the recorded file's folder when it exists on this machine, else the current folder."""
        if not self.space_path.startswith("<") and Path(self.space_path).parent.is_dir():
            return Path(self.space_path).parent
        return Path.cwd()

    def trials_root(self, override: Path | None = None, fallback: Path | None = None) -> Path:
        """The one rule for where a stored study's trial folders are: the folder given, else the
        output folder the study recorded when it exists here, else ``fallback``."""
        if override is not None:
            return override
        if self.out_dir is not None and Path(self.out_dir).is_dir():
            return Path(self.out_dir)
        return fallback if fallback is not None else Path(self.out_dir or ".")


def write_picked_test(study: Any, number: int, metrics: Mapping[str, Any] | None) -> None:
    """The picked trial's test metrics (per-class scores, confusion matrix), for the report."""
    study.set_user_attr(STUDY_PICKED_TEST, {"trial": number, "metrics": None if metrics is None else dict(metrics)})


def write_settings(study: Any, settings: RunSettings) -> None:
    study.set_user_attr(STUDY_SETTINGS, settings.as_attr())


def check_same_space(study: Any, space_yaml: str, space_path: str) -> None:
    """Refuse to run a study with a search file other than the one it was created from."""
    recorded = study.user_attrs.get(STUDY_SPACE_SHA256)
    if recorded is not None and recorded != sha256_text(space_yaml) and not _same_data(study, space_yaml):
        raise StudyError(
            f"study {study.study_name!r} was created from a different search file "
            f"({study.user_attrs.get(STUDY_SPACE_PATH)}) than {space_path}; use another --study name "
            f"or --out folder, or join it with 'yaml2torch worker --storage URL --study {study.study_name}'"
        )


def _same_data(study: Any, space_yaml: str) -> bool:
    """Whether the file says what the recorded one said, only laid out or commented differently
    (``yaml2torch fmt``). Both texts passed the strict loader before; safe_load builds plain data."""
    import yaml

    recorded = study.user_attrs.get(STUDY_SPACE_YAML)
    try:
        return recorded is not None and yaml.safe_load(recorded) == yaml.safe_load(space_yaml)
    except yaml.YAMLError:
        return False


# --- trials -------------------------------------------------------------------------------------


class TrialStatus(str, Enum):
    """Why a trial ended as it did (the Optuna state says how)."""

    TRAINED = "trained"
    INFEASIBLE = "infeasible"  # broke a constraint or did not compile: pruned untrained
    DUPLICATE = "duplicate"  # same architecture and training as an earlier trial: not trained again
    PRUNED = "pruned"  # stopped early by the pruner
    FAILED = "failed"
    STALE = "stale"  # its worker died; failed by another worker
    INTERRUPTED = "interrupted"  # SIGINT/SIGTERM; its parameters are queued again


TRIAL_STATUS = "status"
TRIAL_REASON = "reason"
TRIAL_ARCH_HASH = "arch_hash"
TRIAL_EVAL_KEY = "eval_key"
TRIAL_SPEC_YAML = "spec_yaml"
TRIAL_PARAMS = "params"
TRIAL_MACS = "macs"
TRIAL_TRAIN = "train"
TRIAL_MODEL_PY = "model_py"
TRIAL_DIR = "trial_dir"
TRIAL_METRICS = "metrics"
TRIAL_TIMING = "timing"
TRIAL_DEVICE = "device"
TRIAL_LATENCY_MS = "latency_ms"
TRIAL_DUPLICATE_OF = "duplicate_of"
TRIAL_WEIGHTS_ARTIFACT = "weights_artifact"
TRIAL_RETRY_OF = "retry_of"
TRIAL_RETRY_REASON = "retry_reason"
TRIAL_WORKER = "worker"
TRIAL_HEARTBEAT_AT = "heartbeat_at"
TRIAL_EPOCH_METRICS = "epoch_metrics"  # [{metric: value} per epoch]: read by the Dominance rule
TRIAL_EARLY_STOP = "early_stop"  # why the Dominance rule stopped the trial (Stop.as_attr)
# Optuna's own retry bookkeeping (system attributes), kept compatible with its retry callback.
SYSTEM_FAILED_TRIAL = "failed_trial"
SYSTEM_RETRY_HISTORY = "retry_history"

# Copied from an earlier trial when a duplicate is not trained again.
DUPLICATE_COPIED = (TRIAL_METRICS, TRIAL_MODEL_PY, TRIAL_DIR, TRIAL_LATENCY_MS)


@dataclass(frozen=True)
class TrialRecord:
    """A typed view of what a trial recorded (every field optional: a trial may have ended early)."""

    number: int
    status: str | None = None
    reason: str | None = None
    arch_hash: str | None = None
    eval_key: str | None = None
    spec_yaml: str | None = None
    params: int | None = None
    macs: int | None = None
    train: Mapping[str, Any] | None = None
    model_py: str | None = None
    trial_dir: str | None = None
    metrics: Mapping[str, Any] | None = None
    timing: Mapping[str, float] | None = None
    device: str | None = None
    latency_ms: float | None = None
    duplicate_of: int | None = None
    weights_artifact: str | None = None
    retry_of: int | None = None
    retry_reason: str | None = None
    worker: Mapping[str, Any] | None = None
    heartbeat_at: float | None = None
    epoch_metrics: Sequence[Mapping[str, float]] | None = None
    early_stop: Mapping[str, Any] | None = None
    retry_history: tuple[int, ...] = ()

    @classmethod
    def of(cls, trial: FrozenTrialLike) -> TrialRecord:
        attrs = trial.user_attrs
        known = {f.name for f in fields(cls)} - {"number", "retry_history"}
        return cls(
            number=trial.number,
            retry_history=tuple(int(n) for n in trial.system_attrs.get(SYSTEM_RETRY_HISTORY, ())),
            **{k: v for k, v in attrs.items() if k in known},
        )

    @property
    def is_retry(self) -> bool:
        return self.retry_of is not None or bool(self.retry_history)

    def value(self, name: str) -> Any:
        """A metric by name, with params and MACs from the architecture (for tables and plots)."""
        if name == "params":
            return self.params
        if name == "macs":
            return self.macs
        return (self.metrics or {}).get(name)


def record_outcome(set_attr: SetAttr, status: TrialStatus, reason: str | None = None) -> None:
    set_attr(TRIAL_STATUS, status.value)
    if reason is not None:
        set_attr(TRIAL_REASON, reason[:2000])


def record_plan(
    set_attr: SetAttr,
    *,
    arch_hash: str,
    eval_key: str,
    spec_yaml: str,
    params: int,
    macs: int | None,
    train: Mapping[str, Any],
) -> None:
    """What a sampled trial is, recorded before training (so a failed trial still says what it was)."""
    for key, value in (
        (TRIAL_ARCH_HASH, arch_hash),
        (TRIAL_EVAL_KEY, eval_key),
        (TRIAL_SPEC_YAML, spec_yaml),
        (TRIAL_PARAMS, params),
        (TRIAL_MACS, macs),
        (TRIAL_TRAIN, dict(train)),
    ):
        set_attr(key, value)


def record_files(set_attr: SetAttr, trial_dir: str, model_py: str) -> None:
    set_attr(TRIAL_DIR, trial_dir)
    set_attr(TRIAL_MODEL_PY, model_py)


def record_latency(set_attr: SetAttr, latency_ms: float) -> None:
    set_attr(TRIAL_LATENCY_MS, latency_ms)


def record_result(
    set_attr: SetAttr, metrics: Mapping[str, Any], timing: Mapping[str, float] | None, device: str | None = None
) -> None:
    set_attr(TRIAL_METRICS, dict(metrics))
    if timing is not None:
        set_attr(TRIAL_TIMING, dict(timing))
    if device is not None:
        set_attr(TRIAL_DEVICE, device)


def record_epochs(set_attr: SetAttr, epochs: Sequence[Mapping[str, float]]) -> None:
    """Every epoch's validation metrics so far (rewritten after each epoch; a few numbers each)."""
    set_attr(TRIAL_EPOCH_METRICS, [dict(e) for e in epochs])


def record_early_stop(set_attr: SetAttr, stop: Mapping[str, Any]) -> None:
    set_attr(TRIAL_EARLY_STOP, dict(stop))


def record_duplicate(set_attr: SetAttr, earlier: FrozenTrialLike) -> int:
    """Copy an earlier trial's results onto a duplicate; returns the original trial's number."""
    source = int(earlier.user_attrs.get(TRIAL_DUPLICATE_OF, earlier.number))
    set_attr(TRIAL_DUPLICATE_OF, source)
    for key in DUPLICATE_COPIED:
        if key in earlier.user_attrs:
            set_attr(key, earlier.user_attrs[key])
    return source


def record_weights(set_attr: SetAttr, artifact_id: str) -> None:
    set_attr(TRIAL_WEIGHTS_ARTIFACT, artifact_id)


def record_worker(set_attr: SetAttr, identity: Mapping[str, Any]) -> None:
    set_attr(TRIAL_WORKER, dict(identity))


def record_heartbeat(set_attr: SetAttr, unix_time: float) -> None:
    set_attr(TRIAL_HEARTBEAT_AT, unix_time)


def retry_attrs(failed: FrozenTrialLike, reason: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(user_attrs, system_attrs) of the queued retry of ``failed``."""
    history = [int(n) for n in failed.system_attrs.get(SYSTEM_RETRY_HISTORY, ())] + [failed.number]
    user = {TRIAL_RETRY_OF: failed.number, TRIAL_RETRY_REASON: reason}
    system = {
        SYSTEM_FAILED_TRIAL: failed.system_attrs.get(SYSTEM_FAILED_TRIAL, failed.number),
        SYSTEM_RETRY_HISTORY: history,
    }
    return user, system
