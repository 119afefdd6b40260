"""The Python escape hatch: build each trial's model spec in code, as the origin's tune.py did.

Referenced from examples/search/tune_space.yaml (``python: tune_space.py:search_model``) or passed
to the Python API::

    from yaml2torch.search import RunOptions, load_config, run_search
    run_search(load_config("examples/search/tune_space.yaml"), RunOptions(out_dir=Path("out"), search_model=search_model))

``trial`` is an ``optuna.Trial``; the function returns a model spec dict (the same keys as a
model YAML). ``input_channel`` and ``input_size`` may be left out: they come from the data.
"""


def search_model(trial) -> dict:
    backbone = []
    channels = trial.suggest_int("stem/channels", 8, 32, step=8)
    backbone.append([1, "Conv", [channels, 3, 1]])
    for stage in range(1, 3):
        block = trial.suggest_categorical(f"stage{stage}/block", ["Conv", "DWConv", "InvertedResidualv2"])
        channels = trial.suggest_int(f"stage{stage}/channels", 16, 64, step=16)
        repeat = trial.suggest_int(f"stage{stage}/repeat", 1, 2)
        if block == "InvertedResidualv2":
            expand = trial.suggest_int(f"stage{stage}/expand", 1, 4)
            backbone.append([repeat, block, [channels, expand, 1]])
        else:
            backbone.append([repeat, block, [channels, 3, 1]])
        backbone.append([1, "MaxPool", [2]])
    backbone += [[1, "GlobalAvgPool", []], [1, "Flatten", []], [1, "Linear", [10]]]
    return {"backbone": backbone}
