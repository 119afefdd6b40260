"""What a study and its trials record so that any machine can join, export or report from storage alone.

The names are the search's own (``yaml2torch.search.runner.open_study`` writes the space), so
both sides read one set. Study user attributes:

- ``space_yaml``: the search-space file's text; ``space_sha256`` its hash; ``space_path``: the
  file it came from (for messages and relative paths).
- ``settings``: the study's run settings (a JSON object: budget, per-trial time limit, artifact
  store; see ``yaml2torch.scale.searching.StudySettings``).
- ``yaml2torch_version``: the yaml2torch version that created the study.

Trial user attributes: ``spec_yaml``, ``arch_hash``, ``metrics``, ``model_py`` (the generated
source) and ``weights_artifact`` (an artifact id in the study's artifact store); ``worker`` and
``heartbeat_at`` while running; ``status``/``reason`` and ``retry_of``/``retry_reason`` for faults.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

ATTR_SPACE_YAML = "space_yaml"
ATTR_SPACE_SHA256 = "space_sha256"
ATTR_SPACE_NAME = "space_path"
ATTR_SETTINGS = "settings"
ATTR_VERSION = "yaml2torch_version"

TRIAL_SPEC_YAML = "spec_yaml"
TRIAL_ARCH_HASH = "arch_hash"
TRIAL_METRICS = "metrics"
TRIAL_MODEL_SOURCE = "model_py"
TRIAL_WEIGHTS_ARTIFACT = "weights_artifact"
TRIAL_STATUS = "status"
TRIAL_FAIL_REASON = "reason"
TRIAL_RETRY_OF = "retry_of"
TRIAL_RETRY_REASON = "retry_reason"


class StudyMismatchError(Exception):
    """A worker's space file or settings disagree with what the study recorded (a user error)."""


class MissingStudyError(Exception):
    """The study does not exist in the storage, or was not created by yaml2torch."""


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class StudyMetadata:
    space_yaml: str
    space_name: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    version: str = ""

    @property
    def space_sha256(self) -> str:
        return sha256_text(self.space_yaml)

    def attrs(self) -> dict[str, Any]:
        return {
            ATTR_SPACE_YAML: self.space_yaml,
            ATTR_SPACE_SHA256: self.space_sha256,
            ATTR_SPACE_NAME: self.space_name,
            # Round-trip through JSON now, so a settings value that storage cannot hold fails here.
            ATTR_SETTINGS: json.loads(json.dumps(dict(self.settings))),
            ATTR_VERSION: self.version,
        }

    @classmethod
    def from_attrs(cls, study_name: str, attrs: Mapping[str, Any]) -> StudyMetadata:
        if ATTR_SPACE_YAML not in attrs:
            raise MissingStudyError(
                f"study {study_name!r} has no yaml2torch search space recorded "
                "(was it created by 'yaml2torch search'?)"
            )
        metadata = cls(
            space_yaml=attrs[ATTR_SPACE_YAML],
            space_name=attrs.get(ATTR_SPACE_NAME, "space.yaml"),
            settings=attrs.get(ATTR_SETTINGS, {}),
            version=attrs.get(ATTR_VERSION, ""),
        )
        recorded = attrs.get(ATTR_SPACE_SHA256)
        if recorded is not None and recorded != metadata.space_sha256:
            raise StudyMismatchError(f"study {study_name!r}: the recorded space text does not match its recorded hash")
        return metadata


def write_metadata(study: optuna.Study, metadata: StudyMetadata) -> None:
    for key, value in metadata.attrs().items():
        study.set_user_attr(key, value)


def read_metadata(study: optuna.Study) -> StudyMetadata:
    return StudyMetadata.from_attrs(study.study_name, study.user_attrs)


def check_space(study: optuna.Study, space_yaml: str, space_name: str) -> StudyMetadata:
    """The recorded metadata, after checking that ``space_yaml`` is the same file the study was made with."""
    recorded = read_metadata(study)
    if recorded.space_sha256 != sha256_text(space_yaml):
        raise StudyMismatchError(
            f"study {study.study_name!r} was created from a different search space "
            f"({recorded.space_name}, sha256 {recorded.space_sha256[:12]}) than {space_name} "
            f"(sha256 {sha256_text(space_yaml)[:12]}); use another --study name, or join with "
            "'yaml2torch worker --storage URL --study NAME' which reads the space from the study"
        )
    return recorded


def create_or_join_study(
    storage: optuna.storages.BaseStorage,
    study_name: str,
    metadata: StudyMetadata,
    *,
    directions: list[str],
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
) -> optuna.Study:
    """Create the study and record its metadata, or load it after checking it is the same space.

    Two processes creating the same study at once is safe: the loser of the race loads it.
    """
    try:
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            directions=directions,
            sampler=sampler,
            pruner=pruner,
        )
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
        _wait_for_metadata(study)
        check_space(study, metadata.space_yaml, metadata.space_name)
        return study
    write_metadata(study, metadata)
    return study


def _wait_for_metadata(study: optuna.Study, seconds: float = 10.0) -> None:
    """A study created a moment ago by another process may not have its attributes yet."""
    import time

    deadline = time.monotonic() + seconds
    while ATTR_SPACE_YAML not in study.user_attrs and time.monotonic() < deadline:
        time.sleep(0.1)


def load_study_metadata(storage: optuna.storages.BaseStorage, study_name: str) -> tuple[optuna.Study, StudyMetadata]:
    """Load an existing study and its metadata (what ``yaml2torch worker``/``best``/``report`` start from)."""
    try:
        study = optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))
        known = f"; studies there: {', '.join(names)}" if names else "; the storage holds no studies"
        raise MissingStudyError(f"no study named {study_name!r} in the storage{known}") from None
    return study, read_metadata(study)


# --- per-trial outputs ---------------------------------------------------------------------


@dataclass(frozen=True)
class TrialOutputs:
    """What a finished trial leaves in storage (everything best/report/train need)."""

    number: int
    spec_yaml: str | None
    arch_hash: str | None
    metrics: Mapping[str, Any]
    model_source: str | None
    weights_artifact: str | None

    @classmethod
    def of(cls, trial: optuna.trial.FrozenTrial) -> TrialOutputs:
        attrs = trial.user_attrs
        return cls(
            number=trial.number,
            spec_yaml=attrs.get(TRIAL_SPEC_YAML),
            arch_hash=attrs.get(TRIAL_ARCH_HASH),
            metrics=attrs.get(TRIAL_METRICS, {}),
            model_source=attrs.get(TRIAL_MODEL_SOURCE),
            weights_artifact=attrs.get(TRIAL_WEIGHTS_ARTIFACT),
        )


def record_trial_outputs(
    trial: optuna.Trial,
    *,
    spec_yaml: str | None = None,
    arch_hash: str | None = None,
    metrics: Mapping[str, Any] | None = None,
    model_source: str | None = None,
) -> None:
    """Put a trial's spec, hash, metrics and generated source on the trial (only the ones given)."""
    for key, value in (
        (TRIAL_SPEC_YAML, spec_yaml),
        (TRIAL_ARCH_HASH, arch_hash),
        (TRIAL_METRICS, None if metrics is None else json.loads(json.dumps(dict(metrics)))),
        (TRIAL_MODEL_SOURCE, model_source),
    ):
        if value is not None:
            trial.set_user_attr(key, value)


def upload_weights(trial: optuna.Trial, weights_file: Path, artifact_store: Any) -> str:
    """Upload a trial's weights file to the artifact store and record its id on the trial."""
    from optuna.artifacts import upload_artifact

    artifact_id = upload_artifact(
        artifact_store=artifact_store,
        file_path=str(weights_file),
        study_or_trial=trial,
        mimetype="application/octet-stream",
    )
    trial.set_user_attr(TRIAL_WEIGHTS_ARTIFACT, artifact_id)
    return artifact_id


def download_weights(outputs: TrialOutputs, artifact_store: Any, destination: Path) -> Path | None:
    """Fetch a trial's weights into ``destination`` (atomically); None when the trial has none."""
    from optuna.artifacts import download_artifact

    if outputs.weights_artifact is None:
        return None
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(f".{destination.name}.partial")
    partial.unlink(missing_ok=True)
    download_artifact(artifact_store=artifact_store, file_path=str(partial), artifact_id=outputs.weights_artifact)
    partial.replace(destination)
    return destination
