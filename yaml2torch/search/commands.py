"""Search-side subcommands (search, best, report, train); registered by yaml2torch.cli."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _command_error(message: str) -> Exception:
    from yaml2torch.cli import CommandError

    return CommandError(message)


def cmd_search(args: argparse.Namespace) -> int:
    from yaml2torch.search.config import load_config
    from yaml2torch.search.runner import RunOptions, SearchError, run_search

    config = load_config(args.space)
    study = args.study or config.study
    out_dir = args.out or Path("generated") / study
    options = RunOptions(
        out_dir=out_dir,
        storage=args.storage,
        study=study,
        trials=args.trials,
        timeout=args.timeout,
        device=args.device,
        epochs=args.epochs,
        data_limit=args.limit,
        resume=args.resume,
        progress=not args.quiet,
        scale=getattr(args, "scale", None),  # set by yaml2torch.scale's --workers wrapper
    )
    try:
        result = run_search(config, options)
    except (SearchError, ValueError) as exc:
        raise _command_error(str(exc)) from None
    picked = result.summary.get("picked")
    if picked is None:
        print(f"no trial completed; see {out_dir}/summary.json", file=sys.stderr)
        return 1
    return 0


def _load_stored(storage: str, study_name: str):
    import optuna

    from yaml2torch.search.config import parse_config

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        from yaml2torch.scale.storage import make_storage

        study = optuna.load_study(study_name=study_name, storage=make_storage(storage))
    except KeyError:
        raise _command_error(f"no study {study_name!r} in {storage}") from None
    text = study.user_attrs.get("space_yaml")
    if text is None:
        raise _command_error(f"study {study_name!r} was not created by yaml2torch search (no space_yaml)")
    path = study.user_attrs.get("space_path", "<stored search file>")
    base_dir = Path(path).parent if not path.startswith("<") else Path.cwd()
    return study, parse_config(text, path, base_dir)


def cmd_best(args: argparse.Namespace) -> int:
    from yaml2torch.search.export import export_study

    study, config = _load_stored(args.storage, args.study)
    # Weights live in the search's output folder: --from, else the folder the study recorded.
    recorded = study.user_attrs.get("out_dir")
    trials_root = args.trials_from or (Path(recorded) if recorded else args.output)
    summary = export_study(study, config, args.output, None, trials_root)
    if summary["picked"] is None:
        print("no completed trial to export", file=sys.stderr)
        return 1
    print(
        json.dumps({"picked": summary["picked"]["number"], "test": summary["picked"]["test"], "out": str(args.output)})
    )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from yaml2torch.cli import write_atomic
    from yaml2torch.search.report import render_report

    study, config = _load_stored(args.storage, args.study)
    write_atomic(args.output, render_report(study, config))
    print(f"wrote {args.output}", file=sys.stderr)
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from yaml2torch.search.train import TrainingDiverged
    from yaml2torch.search.trainone import train_spec_file

    try:
        result = train_spec_file(
            args.spec,
            args.output,
            data=args.data,
            data_path=args.data_path,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            image_size=args.image_size,
            device=args.device,
            seed=args.seed,
            config_path=args.config,
        )
    except (ValueError, TrainingDiverged) as exc:
        raise _command_error(str(exc)) from None
    print(json.dumps({"val": result["val"], "test": result["test"], "out": str(args.output)}))
    return 0


def register(commands: argparse._SubParsersAction) -> None:
    """Add the search-side subcommands."""
    p = commands.add_parser("search", help="run an architecture search from a search-space YAML")
    p.add_argument("space", type=Path, help="the search-space file")
    p.add_argument("--trials", type=int, help="total number of trials in the study (overrides the file)")
    p.add_argument("--timeout", type=float, help="seconds for this run (overrides the file)")
    p.add_argument("--storage", help="any Optuna storage URL (default sqlite:///OUT/study.db)")
    p.add_argument("--study", help="study name (default: the file's study: or its file name)")
    p.add_argument("--out", type=Path, help="output folder (default generated/<study>/)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1")
    p.add_argument("--epochs", type=int, help="override train.epochs (for quick checks)")
    p.add_argument("--limit", type=int, help="use a stratified subset of this many samples (for quick checks)")
    p.add_argument(
        "--resume", action="store_true", help="continue an existing study (running the same command does too)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bars or closing table")
    p.set_defaults(handler=cmd_search)

    p = commands.add_parser("best", help="export the best / Pareto trials of a stored study")
    p.add_argument("--storage", required=True)
    p.add_argument("--study", required=True)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.add_argument(
        "--from",
        dest="trials_from",
        type=Path,
        help="the search's output folder holding trials/ (for weights and the test score)",
    )
    p.set_defaults(handler=cmd_best)

    p = commands.add_parser("report", help="an HTML report of a stored study")
    p.add_argument("--storage", required=True)
    p.add_argument("--study", required=True)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.set_defaults(handler=cmd_report)

    p = commands.add_parser("train", help="train one architecture with the search's machinery")
    p.add_argument("spec", type=Path)
    p.add_argument("--data", default="digits", help="digits, folder, cifar10 or npz")
    p.add_argument("--data-path", type=Path, help="folder / file for the non-built-in sources")
    p.add_argument("--config", type=Path, help="a search file whose data: and train: settings to use")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--image-size", type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", type=Path, required=True)
    p.set_defaults(handler=cmd_train)
