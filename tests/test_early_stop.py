"""Early stopping with several objectives (the Dominance rule): the decision on real frozen trials,
the search-file checks, and real searches (SQLite, training on digits) with and without it."""

from __future__ import annotations

import dataclasses
import json
import textwrap
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

from yaml2torch.cli import main
from yaml2torch.errors import SpecError
from yaml2torch.scale import _optuna
from yaml2torch.scale.storage import journal_url, make_storage
from yaml2torch.search import early_stop
from yaml2torch.search.config import parse_config
from yaml2torch.search.early_stop import Dominance, decide
from yaml2torch.search.export import export_study, pareto_trials, pick
from yaml2torch.search.run import make_pruner
from yaml2torch.study_record import TrialRecord

F1_MACS = (("f1", "maximize"), ("macs", "minimize"))


def frozen(number: int, macs: int, f1s: list[float], state: TrialState = TrialState.COMPLETE, **attrs):
    """A real FrozenTrial as the search records it: MACs before training, then each epoch's f1."""
    user_attrs = {"macs": macs, "params": macs // 100, "epoch_metrics": [{"f1": v, "loss": 1 - v} for v in f1s], **attrs}
    values = [f1s[-1], float(macs)] if state == TrialState.COMPLETE else None
    trial = create_trial(state=state, values=values, user_attrs=user_attrs)
    trial.number = number  # as the study numbers them
    return trial


def me(macs: int, f1s: list[float], number: int = 99) -> TrialRecord:
    return TrialRecord.of(frozen(number, macs, f1s, TrialState.RUNNING))


STUDY = [
    frozen(0, 1000, [0.5, 0.8, 0.9]),
    frozen(1, 2000, [0.6, 0.85, 0.95]),
    frozen(2, 9000, [0.7, 0.95, 0.99]),  # more expensive than the trial judged below
    frozen(3, 1500, [0.4, 0.6], TrialState.PRUNED),  # pruned at epoch 2: its epochs still count
    frozen(4, 3000, [0.3], TrialState.RUNNING),  # has not reached epoch 2
]


def test_dominated_by_enough_cheaper_trials_at_the_epoch_is_stopped():
    rule = Dominance(n_startup_trials=3, n_warmup_epochs=1, min_dominators=2)
    stop = decide(rule, F1_MACS, me(5000, [0.5, 0.7]), STUDY)
    assert stop is not None
    # at epoch 2: trials 0 (0.8) and 1 (0.85) cost less and did better; 3 (0.6) cost less but did
    # worse; 2 did better but costs more; 4 has no epoch 2
    assert stop.as_attr() == {
        "epoch": 2,
        "metric": "f1",
        "value": 0.7,
        "threshold": 0.8,
        "dominators": [0, 1],
        "compared": 3,
        "reached": 4,
    }
    assert stop.reason(rule) == (
        "stopped by Dominance after epoch 2: f1 0.7000 is dominated by 2 of the 3 trials with no more MACs "
        "that reached epoch 2 (66%; trials 0, 1; threshold 0.8000, the 2nd best f1 of those); min_dominators 2, "
        "min_percent 50"
    )


def test_the_dominators_must_also_be_a_share_of_the_cheaper_trials():
    """Late in a long study every trial has many cheaper ones; a fixed count alone would stop
    nearly all of them. 3 of 8 cheaper trials beat this one at epoch 2: 37%."""
    cheaper = [frozen(n, 1000 + n, [0.5, 0.9 if n < 3 else 0.6]) for n in range(8)]
    judged = me(5000, [0.5, 0.7])
    rule = Dominance(n_startup_trials=3, n_warmup_epochs=1, min_dominators=3)
    assert decide(rule, F1_MACS, judged, cheaper) is None  # min_percent 50 by default
    assert decide(dataclasses.replace(rule, min_percent=38), F1_MACS, judged, cheaper) is None
    stop = decide(dataclasses.replace(rule, min_percent=37), F1_MACS, judged, cheaper)
    assert stop is not None and stop.dominators == (0, 1, 2) and stop.compared == 8
    assert decide(dataclasses.replace(rule, min_percent=0), F1_MACS, judged, cheaper) is not None  # the count alone


def test_not_stopped_when_the_rule_does_not_apply():
    rule = Dominance(n_startup_trials=3, n_warmup_epochs=1, min_dominators=2)
    assert decide(rule, F1_MACS, me(5000, [0.5]), STUDY) is None  # epoch 1: a warm-up epoch
    assert decide(rule, F1_MACS, me(5000, [0.5, 0.82]), STUDY) is None  # only trial 0 did better
    assert decide(rule, F1_MACS, me(900, [0.1, 0.1]), STUDY) is None  # the cheapest is never stopped
    assert decide(dataclasses.replace(rule, n_startup_trials=5), F1_MACS, me(5000, [0.5, 0.7]), STUDY) is None
    assert decide(dataclasses.replace(rule, min_dominators=3), F1_MACS, me(5000, [0.5, 0.7]), STUDY) is None
    # epoch 3: only trials 0, 1 and 2 reached it (fewer than n_startup_trials=4)
    assert decide(dataclasses.replace(rule, n_startup_trials=4), F1_MACS, me(5000, [0.5, 0.7, 0.5]), STUDY) is None
    # a trial is not compared with itself, nor with duplicates (they were not trained)
    duplicate = frozen(5, 100, [0.9, 0.9], duplicate_of=0)
    assert decide(rule, F1_MACS, me(5000, [0.5, 0.7], number=1), [*STUDY, duplicate]) is None


def test_a_dominator_must_score_better_not_only_cost_less():
    rule = Dominance(n_startup_trials=1, n_warmup_epochs=0, min_dominators=1)
    assert decide(rule, F1_MACS, me(1000, [0.8]), [frozen(0, 1000, [0.8])]) is None
    assert decide(rule, F1_MACS, me(5000, [0.8]), [frozen(0, 1000, [0.8])]) is None  # ties at chance level are common
    assert decide(rule, F1_MACS, me(1000, [0.8]), [frozen(0, 1000, [0.81])]) is not None


def test_every_static_objective_must_be_no_worse_and_directions_are_followed():
    objectives = (("loss", "minimize"), ("params", "minimize"), ("macs", "minimize"))
    rule = Dominance(n_startup_trials=1, n_warmup_epochs=0, min_dominators=1)
    fewer_macs_more_params = frozen(0, 1000, [0.9])
    fewer_macs_more_params.user_attrs["params"] = 10**6
    judged = me(5000, [0.5])  # loss 0.5: theirs is 0.1 (better)
    assert decide(rule, objectives, judged, [fewer_macs_more_params]) is None
    stop = decide(rule, objectives, judged, [frozen(0, 1000, [0.9])])
    assert stop is not None and stop.metric == "loss" and stop.value == 0.5 and stop.threshold == pytest.approx(0.1)
    assert "with no more params and MACs" in stop.reason(rule)


def test_rule_arguments_and_defaults():
    assert tuple(early_stop.ARG_MINIMUMS) == tuple(f.name for f in dataclasses.fields(Dominance))
    config = parse_config("model: {backbone: []}\nobjectives: {f1: maximize, macs: minimize}\n", "s.yaml", Path("."))
    assert config.pruner.type == "Dominance" and config.pruner.kwargs == ()  # the default with several objectives
    assert Dominance() == Dominance(n_startup_trials=5, n_warmup_epochs=1, min_dominators=3, min_percent=50)
    assert isinstance(make_pruner(config), optuna.pruners.NopPruner)  # the trial applies it, not Optuna
    assert parse_config("model: {backbone: []}\n", "s.yaml", Path(".")).pruner.type == "Median"
    given = "model: {backbone: []}\nobjectives: [f1, macs]\npruner: {type: Dominance, min_dominators: 3}\n"
    assert parse_config(given, "s.yaml", Path(".")).pruner.kwargs == (("min_dominators", 3),)


MO = "model: {backbone: []}\nobjectives: [f1, macs]\n"


@pytest.mark.parametrize(
    "text, line, message",
    [
        (
            MO + "pruner: {type: Dominance, min_dominators: 0}\n",
            3,
            "Dominance argument min_dominators must be at least 1, got 0",
        ),
        (
            MO + "pruner:\n  type: Dominance\n  n_warmup_epochs: 1.5\n",
            5,
            "Dominance argument n_warmup_epochs must be an int, not a float",
        ),
        (
            MO + "pruner: {type: Dominance, n_startup_trials: -1}\n",
            3,
            "Dominance argument n_startup_trials must be at least 0, got -1",
        ),
        (
            MO + "pruner:\n  type: Dominance\n  min_percent: 101\n",
            5,
            "Dominance argument min_percent must be at most 100, got 101",
        ),
        (
            MO + "pruner: {type: Dominance, warmup: 2}\n",
            3,
            "Dominance has no argument 'warmup'",
        ),
        (
            MO + "pruner: Median\n",
            3,
            (
                "Optuna's pruners work with one objective only; with several objectives use pruner: Dominance "
                "(the default) or none"
            ),
        ),
        (
            "model: {backbone: []}\npruner: Dominance\n",
            2,
            (
                "the Dominance rule is for several objectives; with one objective use Median, Percentile, Hyperband, "
                "SuccessiveHalving, Patient, Threshold or none"
            ),
        ),
    ],
)
def test_bad_rule_settings_are_one_located_line(text, line, message):
    with pytest.raises(SpecError) as info:
        parse_config(text, "bad.yaml", Path("."))
    assert info.value.location is not None and info.value.location.line == line
    assert info.value.message == message


SPEC = "input_channel: 1\ninput_size: [8, 8]\nbackbone:\n  - [1, Conv, [4, 3, 1]]\n  - [1, GlobalAvgPool, []]\n  - [1, Flatten, []]\n  - [1, Linear, [10]]\n"


def test_a_stopped_trial_never_enters_the_front_the_pick_or_the_export(tmp_path):
    """Its recorded metrics (last epoch) would beat every complete trial: it must not count."""
    config = parse_config(MO, "s.yaml", tmp_path)
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'study.db'}", directions=["maximize", "minimize"], study_name="s"
    )
    for f1, macs in ((0.8, 1000), (0.9, 4000)):
        attrs = {"spec_yaml": SPEC, "macs": macs, "params": 10, "metrics": {"f1": f1}, "status": "trained"}
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=[f1, macs], user_attrs=attrs))
    stopped = {"spec_yaml": SPEC, "macs": 10, "params": 1, "metrics": {"f1": 0.99}, "status": "pruned"}
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={**stopped, "early_stop": {"epoch": 2}}))
    assert [t.number for t in pareto_trials(study, config)] == [0, 1]
    assert pick(study, config)[0].number == 1
    summary = export_study(study, config, tmp_path / "out", data=None)
    assert [p["number"] for p in summary["pareto"]] == [0, 1] and summary["picked"]["number"] == 1
    assert sorted(p.name for p in (tmp_path / "out" / "pareto").iterdir()) == [
        "0000.py", "0000.yaml", "0001.py", "0001.yaml",
    ]  # fmt: skip
    assert summary["stopped_early"] == 1


# A tiny multi-objective space: a learning rate too small to learn anything in 4 epochs makes
# some trials hopeless, and widths make some of them expensive.
TINY_MO = """
study: mo
seed: 0
trials: 10
data: {source: digits, limit: 300}
sampler: Random
objectives: {f1: maximize, macs: minimize}
train: {epochs: 4, batch_size: 32, optimizer: {type: Adam, lr: {choice: [0.02, 0.00001]}}}
model:
  backbone:
    - [1, Conv, [{choice: [4, 8, 16, 24]}, 3, 1]]
    - [1, Conv, [16, 3, 1]]
    - [1, GlobalAvgPool, []]
    - [1, Flatten, []]
    - [1, Linear, [10]]
"""


def search(tmp_path: Path, name: str, pruner: str) -> tuple[optuna.Study, dict]:
    space = tmp_path / f"{name}.yaml"
    space.write_text(TINY_MO + textwrap.dedent(pruner))
    out = tmp_path / name
    # one thread, so that which trials are stopped does not depend on the machine's load
    assert main(["search", str(space), "--out", str(out), "--device", "cpu", "--quiet", "--threads", "1"]) == 0
    study = optuna.load_study(study_name="mo", storage=make_storage(journal_url(out / "study.log")))
    return study, json.loads((out / "summary.json").read_text())


def check_front(study: optuna.Study, summary: dict, out: Path) -> None:
    states = {t.number: t.state for t in study.trials}
    front = [p["number"] for p in summary["pareto"]]
    assert front and all(states[n] == TrialState.COMPLETE for n in front)
    assert all(t.state == TrialState.COMPLETE for t in study.best_trials)
    assert sorted(p.name for p in (out / "pareto").glob("*.yaml")) == [f"{n:04d}.yaml" for n in sorted(front)]
    assert states[summary["picked"]["number"]] == TrialState.COMPLETE


def test_search_with_the_rule_stops_dominated_trials_and_keeps_them_off_the_front(tmp_path):
    study, summary = search(tmp_path, "rule", "pruner: {type: Dominance, n_startup_trials: 2, min_dominators: 1}\n")
    stopped = [t for t in study.trials if t.user_attrs.get("early_stop") is not None]
    assert stopped and summary["stopped_early"] == len(stopped)
    for trial in stopped:
        stop = trial.user_attrs["early_stop"]
        assert trial.state == TrialState.PRUNED and trial.user_attrs["status"] == "pruned"
        assert trial.user_attrs["reason"].startswith(f"stopped by Dominance after epoch {stop['epoch']}: f1 ")
        assert 2 <= stop["epoch"] < 4 and len(trial.user_attrs["epoch_metrics"]) == stop["epoch"]
        assert stop["value"] == trial.user_attrs["epoch_metrics"][-1]["f1"] == trial.user_attrs["metrics"]["f1"]
        for number in stop["dominators"]:  # what the record says holds in the stored study
            other = study.trials[number].user_attrs
            assert other["macs"] <= trial.user_attrs["macs"]
            assert other["epoch_metrics"][stop["epoch"] - 1]["f1"] >= stop["value"]
        assert trial.number not in {p["number"] for p in summary["pareto"]}
    check_front(study, summary, tmp_path / "rule")

    study, summary = search(tmp_path, "none", "pruner: none\n")
    assert [t for t in study.trials if t.state == TrialState.PRUNED] == [] and summary["stopped_early"] == 0
    assert all("epoch_metrics" not in t.user_attrs for t in study.trials)
    check_front(study, summary, tmp_path / "none")


@pytest.mark.parametrize(
    "pick_rule, number, note",
    [
        ("", 1, "best f1 on the Pareto front"),
        ("pick: {max_macs: 2000}\n", 0, "best f1 on the Pareto front within max_macs=2000"),
        ("pick: {max_params: 5}\n", 1, "best f1 on the Pareto front within max_params=5 (no Pareto trial fits the budget: picked from the whole front)"),
    ],
)
def test_the_pick_names_only_the_budgets_it_was_given(tmp_path, pick_rule, number, note):
    config = parse_config(MO + pick_rule, "s.yaml", tmp_path)
    study = optuna.create_study(directions=["maximize", "minimize"], study_name="s")
    for f1, macs in ((0.8, 1000), (0.9, 4000)):
        attrs = {"spec_yaml": SPEC, "macs": macs, "params": 10, "metrics": {"f1": f1}, "status": "trained"}
        study.add_trial(create_trial(state=TrialState.COMPLETE, values=[f1, macs], user_attrs=attrs))
    picked, rule = pick(study, config)
    assert (picked.number, rule) == (number, note)


def test_with_nsga2_the_rules_stopped_trials_fill_generations_and_never_breed(tmp_path):
    space = tmp_path / "nsga.yaml"
    space.write_text(
        # seed 1, one thread: generation 0 runs complete, stopped, stopped (3 counted, 1 COMPLETE)
        TINY_MO.replace("seed: 0", "seed: 1")
        .replace("sampler: Random", "sampler: {type: NSGAII, population_size: 3}")
        .replace("trials: 10", "trials: 16")
        + "pruner: {type: Dominance, n_startup_trials: 1, min_dominators: 1}\n"
    )
    out = tmp_path / "nsga"
    # one thread: the measured default may pick another count on a busy machine, and other float
    # sums change which trials the rule stops, and so NSGA-II's samples
    assert main(["search", str(space), "--out", str(out), "--device", "cpu", "--quiet", "--threads", "1"]) == 0
    study = optuna.load_study(study_name="mo", storage=make_storage(journal_url(out / "study.log")))
    key = optuna.samplers.NSGAIISampler._get_generation_key()  # Optuna's own key
    trials = study.get_trials()
    generation = {t.number: t.system_attrs[key] for t in trials}
    stopped = {t.number for t in trials if "early_stop" in t.user_attrs}
    complete = {t.number for t in trials if t.state == TrialState.COMPLETE}

    def full(g: int, members: list[int]) -> bool:
        # population_size counted trials; generation 0 also the crossover's two COMPLETE parents
        counted = [n for n in members if n in complete | stopped]
        return len(counted) >= 3 and (g > 0 or len([n for n in members if n in complete]) >= 2)

    last = max(generation.values())
    # stopped trials in closed generations: they counted (Optuna's sampler fails the check below)
    assert last >= 2 and any(generation[n] < last for n in stopped), (generation, sorted(stopped))
    for g in range(last):  # trials run one after another: a generation closes the moment it is full
        members = sorted(n for n, gen in generation.items() if gen == g)
        assert full(g, members) and not full(g, members[:-1]), (g, members, sorted(stopped), sorted(complete))
    # parents are chosen from completed trials only: a stopped trial never breeds
    study_attrs = _optuna.storage_of(study).get_study_system_attrs(_optuna.study_id_of(study))
    prefix = optuna.samplers.NSGAIISampler._get_parent_cache_key_prefix()
    parents = [ids for name, ids in study_attrs.items() if name.startswith(prefix)]
    assert parents
    for ids in parents:
        assert {t.number for t in trials if _optuna.trial_id_of(t) in set(ids)} <= complete
