"""Scale-out command line: ``yaml2torch worker``, and ``--workers``/``--devices``/``--time-limit`` for ``search``.

Registered by ``yaml2torch.cli`` after the search's commands, so it can add options to them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _command_error(message: str) -> Exception:
    from yaml2torch.cli import CommandError

    return CommandError(message)


def _add_scale_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--time-limit", type=float, metavar="S", help="stop and fail a trial that runs longer than S seconds"
    )
    p.add_argument(
        "--artifacts", help="artifact store folder for weights (default OUT/artifacts; recorded in the study)"
    )
    p.add_argument(
        "--no-isolate",
        dest="isolate",
        action="store_false",
        help="train in the worker process instead of a child process per trial (no hard time limit)",
    )
    p.add_argument("--threads", type=int, help="torch threads per trial (default: CPU cores / workers)")
    p.add_argument(
        "--heartbeat-interval", type=int, default=10, metavar="S", help="seconds between heartbeats (default 10)"
    )
    p.add_argument(
        "--grace-period",
        type=int,
        default=30,
        metavar="S",
        help="a running trial silent this long is stale (default 30)",
    )


def _scale_options(args: argparse.Namespace, workers: int = 1, devices: tuple[str, ...] = (), index: int = 0):
    from yaml2torch.scale.searching import ScaleOptions

    if args.time_limit is not None and args.time_limit <= 0:
        raise _command_error("--time-limit must be positive")
    return ScaleOptions(
        workers=workers,
        devices=devices,
        time_limit=args.time_limit,
        artifacts=args.artifacts,
        isolate=args.isolate,
        threads=args.threads,
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
        worker_index=index,
    )


# --- search --workers ---------------------------------------------------------------------


def _wrap_search(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workers",
        type=int,
        help="worker processes sharing the study on this machine (default storage: OUT/study.log)",
    )
    parser.add_argument("--devices", help="comma-separated devices for the workers, e.g. cuda:0,cuda:1 (round robin)")
    _add_scale_options(parser)
    search_handler = parser.get_default("handler")

    def handler(args: argparse.Namespace) -> int:
        devices = tuple(d.strip() for d in args.devices.split(",") if d.strip()) if args.devices else ()
        workers = args.workers if args.workers is not None else max(1, len(devices))
        if workers < 1:
            raise _command_error("--workers must be at least 1")
        args.scale = _scale_options(args, workers, devices)
        return search_handler(args)

    parser.set_defaults(handler=handler)


# --- yaml2torch worker -------------------------------------------------------------------------


def cmd_worker(args: argparse.Namespace) -> int:
    import optuna

    from yaml2torch.scale.metadata import ATTR_SETTINGS, MissingStudyError, load_study_metadata
    from yaml2torch.scale.searching import run_options_fields, run_search_worker, terminate_with_parent
    from yaml2torch.scale.signals import StopRequested
    from yaml2torch.scale.storage import classify_storage, make_storage, with_storage_retries
    from yaml2torch.search.config import parse_config
    from yaml2torch.search.progress import SearchProgress
    from yaml2torch.search.runner import RunOptions, Search, make_pruner, make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.parent_pid is not None and not terminate_with_parent(args.parent_pid):
        return 1  # the search that launched this worker is gone
    try:
        kind = classify_storage(args.storage)
    except ValueError as exc:
        raise _command_error(str(exc)) from None
    if kind.kind == "journal" and not Path(kind.location).is_file():
        raise _command_error(f"no journal file {kind.location} (a worker joins an existing study)")
    try:
        storage = with_storage_retries(
            lambda: make_storage(
                args.storage, heartbeat_interval=args.heartbeat_interval, grace_period=args.grace_period
            ),
            what="opening the storage",
        )
        study, metadata = with_storage_retries(
            lambda: load_study_metadata(storage, args.study), what="loading the study"
        )
    except (MissingStudyError, ValueError) as exc:
        raise _command_error(str(exc)) from None
    path = metadata.space_name
    base_dir = Path(path).parent if not path.startswith("<") and Path(path).parent.is_dir() else Path.cwd()
    config = parse_config(metadata.space_yaml, path, base_dir)
    settings = dict(study.user_attrs.get(ATTR_SETTINGS) or {})
    if args.trials is not None:
        settings["trials"] = args.trials
    recorded_out = study.user_attrs.get("out_dir")
    out_dir = args.out or (
        Path(recorded_out) if recorded_out and Path(recorded_out).is_dir() else Path("generated") / args.study
    )
    scale = _scale_options(args, index=args.worker_index or 0)
    if scale.time_limit is not None:
        settings["time_limit"] = scale.time_limit
    options = RunOptions(
        out_dir=out_dir,
        storage=args.storage,
        study=args.study,
        device=args.device,
        progress=not args.quiet,
        scale=scale,
        **run_options_fields(settings, RunOptions),
    )
    finished = sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished())
    # Each worker gets its own sampler seed, or parallel workers would sample the same trials.
    offset = finished + 7919 * (args.worker_index + 1) if args.worker_index is not None else os.getpid()
    study = optuna.load_study(
        study_name=args.study, storage=storage, sampler=make_sampler(config, offset), pruner=make_pruner(config)
    )
    search = Search(config, options)
    trials = settings.get("trials")
    try:
        with SearchProgress(config, total=trials, done=finished, enabled=not args.quiet) as progress:
            search.progress = progress
            run_search_worker(
                study,
                search,
                scale,
                {**settings, "artifacts": args.artifacts or settings.get("artifacts") or str(out_dir / "artifacts")},
                trials=trials,
                timeout=args.timeout if args.timeout is not None else settings.get("timeout"),
                on_trial_done=progress.trial_done,
                say=lambda message: print(message, file=sys.stderr, flush=True),
            )
    except StopRequested as stop:
        return stop.exit_status
    return 0


# --- yaml2torch best: weights from the artifact store when the trial folders are elsewhere ----------


def _wrap_best(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--artifacts", help="artifact store folder holding the weights (default: the one the study recorded)"
    )
    best_handler = parser.get_default("handler")

    def handler(args: argparse.Namespace) -> int:
        _fetch_picked_trial(args)
        return best_handler(args)

    parser.set_defaults(handler=handler)


def _fetch_picked_trial(args: argparse.Namespace) -> None:
    """When the picked trial's folder is not on this machine, rebuild it under OUT from storage alone."""
    import optuna

    from yaml2torch.scale.metadata import ATTR_SETTINGS
    from yaml2torch.scale.searching import fetch_trial_files
    from yaml2torch.scale.storage import make_artifact_store, make_storage
    from yaml2torch.search.config import parse_config
    from yaml2torch.search.export import pick

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        study = optuna.load_study(study_name=args.study, storage=make_storage(args.storage))
    except (KeyError, ValueError):
        return  # the search's own command reports it
    if "space_yaml" not in study.user_attrs:
        return
    recorded = study.user_attrs.get("out_dir")
    trials_root = args.trials_from or (Path(recorded) if recorded else args.output)
    path = study.user_attrs.get("space_path", "<stored search file>")
    config = parse_config(study.user_attrs["space_yaml"], path, Path.cwd())
    best, _ = pick(study, config)
    if best is None:
        return
    folder = trials_root / best.user_attrs.get("trial_dir", "-")
    if (folder / "model.pt").is_file():
        return
    location = args.artifacts or (study.user_attrs.get(ATTR_SETTINGS) or {}).get("artifacts")
    if location is None or not Path(location).is_dir():
        print(
            f"yaml2torch: warning: no weights for trial {best.number}: no artifact store (use --artifacts)",
            file=sys.stderr,
        )
        return
    fetched = fetch_trial_files(best, make_artifact_store(location), args.output)
    if fetched is not None:
        args.trials_from = args.output
        print(f"yaml2torch: fetched trial {best.number} from storage into {fetched}", file=sys.stderr)


def register(commands: argparse._SubParsersAction) -> None:
    """Add ``worker``; add the scale-out options to the search's ``search`` and ``best``."""
    p = commands.add_parser("worker", help="join a stored study and run its trials (any machine)")
    p.add_argument("--storage", required=True, help="the study's storage URL (journal file, postgresql://...)")
    p.add_argument("--study", required=True)
    p.add_argument("--out", type=Path, help="folder for trial files (default: the study's, else generated/<study>/)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1")
    p.add_argument("--trials", type=int, help="study-wide trial budget (default: the one recorded in the study)")
    p.add_argument("--timeout", type=float, help="stop starting trials after S seconds (default: the study's)")
    p.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    p.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)  # set by search --workers
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_scale_options(p)
    p.set_defaults(handler=cmd_worker)

    if "search" in commands.choices:
        _wrap_search(commands.choices["search"])
    if "best" in commands.choices:
        _wrap_best(commands.choices["best"])
