"""Best / Pareto export, the pick rule, and the test-set score of the picked trial.

Everything is read from the study's storage (``TrialRecord``); weights come from the trial
folder, or from the study's artifact store when the folder is not on this machine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from yaml2torch.errors import CannotWrite
from yaml2torch.files import import_model_class, load_state_dict, write_atomic
from yaml2torch.search.config import SearchConfig, TrainSettings
from yaml2torch.study_record import TrialRecord, TrialStatus, write_picked_test

if TYPE_CHECKING:
    from yaml2torch.compiler import CompiledModel


def completed(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return [t for t in done if TrialRecord.of(t).metrics is not None]


def pareto_trials(study: Any, config: SearchConfig) -> list[Any]:
    if not config.multi_objective:
        return [study.best_trial] if completed(study) else []
    numbers = {t.number for t in study.best_trials}
    return [t for t in completed(study) if t.number in numbers and TrialRecord.of(t).duplicate_of is None]


def pick(study: Any, config: SearchConfig) -> tuple[Any | None, str]:
    """Single objective: Optuna's best trial. Several: among the Pareto set, the best
    ``pick.metric`` within ``pick.max_params``/``pick.max_macs`` (all of the set when none fits);
    ties go to fewer params, then the earlier trial."""
    candidates = pareto_trials(study, config)
    if not candidates:
        return None, "no completed trial"
    rule = config.pick
    if not config.multi_objective:
        best = candidates[0]
        original = TrialRecord.of(best).duplicate_of
        if original is not None:
            best = study.trials[original]
        return best, f"best {config.objectives[0].metric} ({config.objectives[0].direction})"

    def fits(record: TrialRecord) -> bool:
        return (rule.max_params is None or (record.params or 0) <= rule.max_params) and (
            rule.max_macs is None or (record.macs or 0) <= rule.max_macs
        )

    fitting = [t for t in candidates if fits(TrialRecord.of(t))]
    note = f"best {rule.metric} on the Pareto front"
    limits = [f"{name}={value}" for name, value in (("max_params", rule.max_params), ("max_macs", rule.max_macs)) if value is not None]
    if limits:
        note += f" within {', '.join(limits)}"
    if not fitting:
        fitting, note = candidates, note + " (no Pareto trial fits the budget: picked from the whole front)"
    sign = -1 if rule.metric == "loss" else 1

    def order(trial: Any) -> tuple[float, int, int]:
        record = TrialRecord.of(trial)
        return (-sign * record.value(rule.metric), record.params or 0, trial.number)

    return min(fitting, key=order), note


def _trial_folder(root: Path, record: TrialRecord) -> Path | None:
    return None if record.trial_dir is None else root / record.trial_dir


def test_score(trial: Any, config: SearchConfig, trials_root: Path, data: Any) -> dict[str, Any] | None:
    """Evaluate the picked trial's saved weights on the test split (None without weights or test data)."""
    from yaml2torch.search.train import evaluate

    record = TrialRecord.of(trial)
    folder = _trial_folder(trials_root, record)
    if folder is None or not (folder / "model.pt").is_file() or not (folder / "model.py").is_file():
        return None
    if len(data.splits.test_y) == 0:
        return None
    settings = TrainSettings.from_key(record.train or {})
    staged = data.staged(tuple(settings.image_size) if settings.image_size else None)
    model = import_model_class(folder / "model.py")()
    load_state_dict(model, folder / "model.pt")
    model.to(staged.device)
    metrics = evaluate(
        model, staged.test_x, staged.test_y, staged.num_classes, staged.device, settings, per_class=True
    )
    metrics["classes"] = list(data.splits.classes)
    metrics["samples"] = len(staged.test_y)
    return metrics


def fetch_trial_files(trial: Any, artifact_store: Any, trials_root: Path) -> Path | None:
    """Rebuild ``trials_root/<trial_dir>/{spec.yaml, model.py, model.pt}`` from storage; the folder."""
    from yaml2torch.scale.storage import download_file
    from yaml2torch.search.trial import write_trial_files

    record = TrialRecord.of(trial)
    folder = _trial_folder(trials_root, record)
    if folder is None or record.spec_yaml is None or record.model_py is None or record.weights_artifact is None:
        return None
    write_trial_files(folder, record.spec_yaml, record.model_py)
    if not (folder / "model.pt").is_file():
        download_file(artifact_store, record.weights_artifact, folder / "model.pt")
    return folder


def compile_beside(spec_yaml: str, yaml_path: Path, base_dir: Path) -> CompiledModel:
    """The model ``yaml2torch compile`` makes from ``yaml_path`` (header naming that file), so
    ``compile YAML -o PY --check`` holds on what the search hands over."""
    from yaml2torch.compiler import compile_text

    return compile_text(spec_yaml, str(yaml_path), base_dir=base_dir)


def spec_files(best: Any, front: list[Any], config: SearchConfig, out_dir: Path, option: str) -> dict[Path, str]:
    """best.yaml / best_model.py and pareto/NNNN.yaml / .py, compiled before anything is written;
    refused (one line) when an output, or a file in the pareto/ folder that is replaced, is a file
    a spec reads (a YamlModule sub-spec, a plugin module)."""
    files: dict[Path, str] = {}
    models = []
    named = [(out_dir / "best.yaml", best)] if best is not None else []
    named += [(out_dir / "pareto" / f"{trial.number:04d}.yaml", trial) for trial in front]
    for yaml_path, trial in named:
        spec_yaml = TrialRecord.of(trial).spec_yaml
        if spec_yaml is None:
            continue
        compiled = compile_beside(spec_yaml, yaml_path, config.base_dir)
        models.append((compiled, f"the spec of trial {trial.number}"))
        python = out_dir / "best_model.py" if yaml_path.parent == out_dir else yaml_path.with_suffix(".py")
        files.update({yaml_path: spec_yaml, python: compiled.source})
    pareto = out_dir / "pareto"
    replaced = [*files, out_dir / "best_model.pt", out_dir / "summary.json"]
    replaced += sorted(pareto.rglob("*")) if config.multi_objective and pareto.is_dir() else []
    for compiled, reader in models:
        compiled.refuse_overwriting_inputs(replaced, option, reader)
    return files


def _pareto_entry(trial: Any) -> dict[str, Any]:
    record = TrialRecord.of(trial)
    return {
        "number": trial.number,
        "arch_hash": record.arch_hash,
        "values": trial.values,
        "params": record.params,
        "macs": record.macs,
        "metrics": record.metrics,
        "file": f"pareto/{trial.number:04d}.yaml",
        "model": f"pareto/{trial.number:04d}.py",
    }


def _picked_entry(best: Any, test: dict[str, Any] | None) -> dict[str, Any]:
    record = TrialRecord.of(best)
    return {
        "number": best.number,
        "arch_hash": record.arch_hash,
        "params": record.params,
        "macs": record.macs,
        "metrics": record.metrics,
        "values": best.values,
        "train": record.train,
        "params_sampled": best.params,
        "test": test,
        "files": {
            "spec": "best.yaml",
            "model": "best_model.py",
            "weights": "best_model.pt",
            "trial_dir": record.trial_dir,
        },
    }


def export_study(
    study: Any, config: SearchConfig, out_dir: Path, data: Any, trials_root: Path | None = None, option: str = "-o"
) -> dict[str, Any]:
    """Write best.yaml, best_model.py, pareto/, summary.json (with the test score) to ``out_dir``.

    Trial folders (weights) are read under ``trials_root`` (default ``out_dir``); ``data`` is the
    search's ``DataCache`` (its test split scores the picked trial).
    """
    from optuna.trial import TrialState

    best, note = pick(study, config)
    front = sorted(pareto_trials(study, config), key=lambda t: t.number) if config.multi_objective else []
    files = spec_files(best, front, config, out_dir, option)  # compiled (and checked) before anything is written
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a file in the way, no permission: the user's to fix
        raise CannotWrite(f"cannot create the output folder {out_dir}: {exc.strerror or exc}") from None
    trials_root = trials_root or out_dir
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    summary: dict[str, Any] = {
        "study": study.study_name,
        "out_dir": str(out_dir),
        "objectives": [[o.metric, o.direction] for o in config.objectives],
        "pick_rule": note,
        "trials": counts,
        "infeasible": sum(1 for t in pruned if TrialRecord.of(t).status == TrialStatus.INFEASIBLE.value),
        "stopped_early": sum(1 for t in pruned if TrialRecord.of(t).early_stop is not None),  # search/early_stop.py
        "picked": None,
        "pareto": [],
    }
    if best is not None:
        for path in (out_dir / "best.yaml", out_dir / "best_model.py"):
            if path in files:
                write_atomic(path, files[path])
        folder = _trial_folder(trials_root, TrialRecord.of(best))
        if folder is not None and (folder / "model.pt").is_file():
            write_atomic(out_dir / "best_model.pt", (folder / "model.pt").read_bytes())  # regular files only
        test = test_score(best, config, trials_root, data)
        write_picked_test(study, best.number, test)
        summary["picked"] = _picked_entry(best, test)
    if config.multi_objective:
        pareto_dir = out_dir / "pareto"
        if pareto_dir.exists():
            shutil.rmtree(pareto_dir)  # the front changes as trials are added
        for trial in front:
            yaml_path = pareto_dir / f"{trial.number:04d}.yaml"
            for path in (yaml_path, yaml_path.with_suffix(".py")):
                if path in files:
                    write_atomic(path, files[path])
            summary["pareto"].append(_pareto_entry(trial))
    write_atomic(out_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary
