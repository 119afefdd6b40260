"""Best / Pareto export, the pick rule, and the test-set score of the picked trial.

Everything is read from the study's storage (user attrs); weights come from the trial folder.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from yaml2torch.search.config import SearchConfig


def completed(study) -> list:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if "metrics" in t.user_attrs]


def pareto_trials(study, config: SearchConfig) -> list:
    if not config.multi_objective:
        done = completed(study)
        return [study.best_trial] if done else []
    numbers = {t.number for t in study.best_trials}
    return [t for t in completed(study) if t.number in numbers and "duplicate_of" not in t.user_attrs]


def pick(study, config: SearchConfig) -> tuple[object | None, str]:
    """Single objective: Optuna's best trial. Several: among the Pareto set, the best
    ``pick.metric`` within ``pick.max_params``/``pick.max_macs`` (all of the set when none fits);
    ties go to fewer params, then the earlier trial."""
    candidates = pareto_trials(study, config)
    if not candidates:
        return None, "no completed trial"
    rule = config.pick
    if not config.multi_objective:
        best = candidates[0]
        original = best.user_attrs.get("duplicate_of")
        if original is not None:
            best = study.trials[original]
        return best, f"best {config.objectives[0].metric} ({config.objectives[0].direction})"
    fitting = [
        t
        for t in candidates
        if (rule.max_params is None or t.user_attrs["params"] <= rule.max_params)
        and (rule.max_macs is None or (t.user_attrs.get("macs") or 0) <= rule.max_macs)
    ]
    note = f"best {rule.metric} on the Pareto front"
    if rule.max_params is not None or rule.max_macs is not None:
        note += f" within max_params={rule.max_params}, max_macs={rule.max_macs}"
    if not fitting:
        fitting, note = candidates, note + " (no Pareto trial fits the budget: picked from the whole front)"
    sign = -1 if rule.metric == "loss" else 1
    best = min(fitting, key=lambda t: (-sign * t.user_attrs["metrics"][rule.metric], t.user_attrs["params"], t.number))
    return best, note


def _trial_folder(out_dir: Path, trial) -> Path | None:
    name = trial.user_attrs.get("trial_dir")
    return None if name is None else out_dir / name


def test_score(trial, config: SearchConfig, out_dir: Path, search=None, data_limit: int | None = None) -> dict | None:
    """Evaluate the picked trial's saved weights on the test split (None without weights)."""
    import torch

    from yaml2torch.search.config import TrainSettings
    from yaml2torch.search.runner import RunOptions, Search
    from yaml2torch.search.train import evaluate, import_model_file

    folder = _trial_folder(out_dir, trial)
    if folder is None or not (folder / "model.pt").is_file() or not (folder / "model.py").is_file():
        return None
    if search is None:
        search = Search(config, RunOptions(out_dir=out_dir, data_limit=data_limit))
    if len(search.splits.test_y) == 0:
        return None
    settings = TrainSettings(**{**trial.user_attrs["train"], "optimizer": TrainSettings().optimizer})
    image_size = tuple(settings.image_size) if settings.image_size else None
    data = search.staged(image_size)
    model_class = import_model_file(folder / "model.py", f"yaml2torch_test_{config.study}_{trial.number}")
    model = model_class()
    model.load_state_dict(torch.load(folder / "model.pt", map_location="cpu", weights_only=True))
    model.to(data.device)
    metrics = evaluate(model, data.test_x, data.test_y, data.num_classes, data.device, settings)
    metrics["samples"] = len(data.test_y)
    return metrics


def _write(path: Path, text: str) -> None:
    from yaml2torch.cli import write_atomic

    write_atomic(path, text)


def export_study(study, config: SearchConfig, out_dir: Path, search=None, trials_root: Path | None = None) -> dict:
    """Write best.yaml, best_model.py, pareto/, summary.json (with the test score) to ``out_dir``.

    Trial folders (weights) are read under ``trials_root`` (default ``out_dir``)."""
    from optuna.trial import TrialState

    out_dir.mkdir(parents=True, exist_ok=True)
    trials_root = trials_root or out_dir
    best, note = pick(study, config)
    counts: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        counts[trial.state.name.lower()] = counts.get(trial.state.name.lower(), 0) + 1
    summary: dict = {
        "study": study.study_name,
        "out_dir": str(out_dir),
        "objectives": [[o.metric, o.direction] for o in config.objectives],
        "pick_rule": note,
        "trials": counts,
        "infeasible": sum(
            1
            for t in study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
            if t.user_attrs.get("status") == "infeasible"
        ),
        "picked": None,
        "pareto": [],
    }
    if best is not None:
        attrs = best.user_attrs
        _write(out_dir / "best.yaml", attrs["spec_yaml"])
        if "model_py" in attrs:
            _write(out_dir / "best_model.py", attrs["model_py"])
        folder = _trial_folder(trials_root, best)
        if folder is not None and (folder / "model.pt").is_file():
            shutil.copyfile(folder / "model.pt", out_dir / "best_model.pt")
        summary["picked"] = {
            "number": best.number,
            "arch_hash": attrs["arch_hash"],
            "params": attrs["params"],
            "macs": attrs.get("macs"),
            "metrics": attrs["metrics"],
            "values": best.values,
            "train": attrs.get("train"),
            "params_sampled": best.params,
            "test": test_score(
                best, config, trials_root, search, (study.user_attrs.get("overrides") or {}).get("data_limit")
            ),
            "files": {
                "spec": "best.yaml",
                "model": "best_model.py",
                "weights": "best_model.pt",
                "trial_dir": attrs.get("trial_dir"),
            },
        }
    if config.multi_objective:
        pareto_dir = out_dir / "pareto"
        if pareto_dir.exists():
            shutil.rmtree(pareto_dir)  # the front changes as trials are added
        for trial in sorted(pareto_trials(study, config), key=lambda t: t.number):
            _write(pareto_dir / f"{trial.number:04d}.yaml", trial.user_attrs["spec_yaml"])
            summary["pareto"].append(
                {
                    "number": trial.number,
                    "arch_hash": trial.user_attrs["arch_hash"],
                    "values": trial.values,
                    "params": trial.user_attrs["params"],
                    "macs": trial.user_attrs.get("macs"),
                    "metrics": trial.user_attrs["metrics"],
                    "file": f"pareto/{trial.number:04d}.yaml",
                }
            )
    _write(out_dir / "summary.json", json.dumps(summary, indent=2, default=str))
    return summary
