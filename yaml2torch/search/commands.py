"""The search-side commands (search, worker, best, report, train): thin, over the library below.

``yaml2torch.cli`` defines their options and calls these handlers; they raise ``UserError``
subclasses for anything the user can fix and let every other exception through (a bug).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from yaml2torch.errors import UsageError
from yaml2torch.files import refuse_overwriting_inputs, write_atomic


def _storage_file(source: str) -> Path | None:
    """The database or journal file behind a storage argument (URL, output folder or file)."""
    from yaml2torch.scale.storage import storage_file
    from yaml2torch.search.run import resolve_storage

    return storage_file(resolve_storage(source))


def _check_thread_options(args: argparse.Namespace) -> None:
    if args.threads is not None and args.max_threads is not None:
        raise UsageError("--max-threads caps the measured thread count; with --threads N nothing is measured (give one)")


def _run_options(args: argparse.Namespace, out_dir: Path, **extra: Any) -> Any:
    _check_thread_options(args)
    from yaml2torch.search.run import RunOptions

    return RunOptions(
        out_dir=out_dir,
        storage=args.storage,
        study=args.study,
        trials=args.trials,
        timeout=args.timeout,
        time_limit=args.time_limit,
        artifacts=args.artifacts,
        device=args.device,
        # A worker that search --workers launched (--worker-index) draws no bars: the search does.
        progress=not args.quiet and getattr(args, "worker_index", None) is None,
        quiet=args.quiet,
        isolate=args.isolate,
        threads=args.threads,
        max_threads=args.max_threads,
        heartbeat_interval=args.heartbeat_interval,
        grace_period=args.grace_period,
        **extra,
    )


def cmd_search(args: argparse.Namespace) -> int:
    from yaml2torch.search.config import load_config
    from yaml2torch.search.run import default_workers, run_search

    config = load_config(args.space)
    study = args.study or config.study
    devices = tuple(d.strip() for d in args.devices.split(",") if d.strip()) if args.devices else ()
    options = _run_options(
        args,
        args.out or Path("generated") / study,
        epochs=args.epochs,
        data_limit=args.limit,
        resume=args.resume,
        workers=default_workers(args.workers, devices, args.device, _visible_gpus(args)),
        devices=devices,
    )
    result = run_search(config, replace(options, study=study))
    if result.summary.get("picked") is None:
        print(f"yaml2torch: no trial completed; see {options.out_dir}/summary.json", file=sys.stderr)
        return 1
    return 0


def _visible_gpus(args: argparse.Namespace) -> int:
    if args.workers is not None or args.devices or args.device not in (None, "auto"):
        return 0  # not needed: no CUDA initialization just to count
    import torch

    return torch.cuda.device_count()


def cmd_worker(args: argparse.Namespace) -> int:
    from yaml2torch.scale.launch import terminate_with_parent
    from yaml2torch.scale.signals import StopRequested
    from yaml2torch.scale.storage import classify_storage
    from yaml2torch.search.run import resolve_storage, run_joined_worker

    if args.parent_pid is not None and not terminate_with_parent(args.parent_pid):
        return 1  # the search that launched this worker is gone
    kind = classify_storage(resolve_storage(args.storage))
    if kind.kind == "journal" and not Path(kind.location).is_file():
        raise UsageError(f"no journal file {kind.location} (a worker joins an existing study)")
    options = _run_options(args, Path("."), worker_index=args.worker_index)
    try:
        run_joined_worker(options, args.out)
    except StopRequested as stop:
        return stop.exit_status
    return 0


def cmd_best(args: argparse.Namespace) -> int:
    from yaml2torch.search.export import export_study, pick
    from yaml2torch.search.run import open_stored_study
    from yaml2torch.search.train import DataCache, resolve_device

    outputs = [args.output / name for name in ("best.yaml", "best_model.py", "best_model.pt", "summary.json")]
    refuse_overwriting_inputs([args.output, *outputs], [_storage_file(args.storage)])
    stored = open_stored_study(args.storage, args.study)
    trials_root = stored.record.trials_root(args.trials_from, fallback=args.output)
    best, _ = pick(stored.study, stored.config)
    if best is not None:
        trials_root = _trial_files_here(best, stored, trials_root, args)
    config = stored.config
    limit = stored.record.settings.data_limit or config.data.limit
    data = DataCache(replace(config.data, limit=limit), resolve_device(None))
    summary = export_study(stored.study, config, args.output, data, trials_root)
    if summary["picked"] is None:
        print(f"yaml2torch: no completed trial to export; see {args.output}/summary.json", file=sys.stderr)
        return 1
    picked = summary["picked"]
    if args.json:
        print(json.dumps({"picked": picked["number"], "test": picked["test"], "out": str(args.output)}))
    else:
        from yaml2torch.search.progress import picked_line

        print(picked_line(picked, args.output))
    return 0


def _trial_files_here(best: Any, stored: Any, trials_root: Path, args: argparse.Namespace) -> Path:
    """Where the picked trial's folder is; rebuilt under OUT from the artifact store when not on this machine."""
    from yaml2torch.scale.storage import make_artifact_store
    from yaml2torch.search.export import fetch_trial_files
    from yaml2torch.study_record import TrialRecord

    record = TrialRecord.of(best)
    if record.trial_dir is None or (trials_root / record.trial_dir / "model.pt").is_file():
        return trials_root
    location = args.artifacts or stored.record.settings.artifacts
    if location is None or not Path(location).is_dir():
        print(
            f"yaml2torch: warning: no weights for trial {best.number}: no artifact store (use --artifacts)",
            file=sys.stderr,
        )
        return trials_root
    fetched = fetch_trial_files(best, make_artifact_store(location), args.output)
    if fetched is None:
        return trials_root
    print(f"yaml2torch: fetched trial {best.number} from storage into {fetched}", file=sys.stderr)
    return args.output


REPORT_FILE = "report.html"  # report's default output, in the search's output folder


def cmd_report(args: argparse.Namespace) -> int:
    from yaml2torch.search.report import render_report
    from yaml2torch.search.run import open_stored_study

    if args.storage is not None and args.source is not None:
        raise UsageError(f"report: give the study once: {args.source} or --storage {args.storage}, not both")
    source = args.storage or args.source
    if args.source is not None and "://" not in args.source and not Path(args.source).exists():
        raise UsageError(f"{args.source}: no such folder or file")
    if source is None:
        raise UsageError("report needs the search's output folder (report OUT_DIR) or --storage URL")
    study_file = _storage_file(source)
    output = args.output or (study_file.parent / REPORT_FILE if study_file is not None else None)
    if output is not None:
        refuse_overwriting_inputs([output], [study_file])
    stored = open_stored_study(source, args.study)
    output = output or _recorded_report_file(stored.record.out_dir)
    write_atomic(output, render_report(stored.study, stored.config))
    print(f"wrote {output}", file=sys.stderr)
    return 0


def _recorded_report_file(out_dir: str | None) -> Path:
    """The default report of a study on a database server: in the output folder it recorded."""
    if out_dir is None or not Path(out_dir).is_dir():
        where = f"its output folder {out_dir} is not on this machine" if out_dir else "it recorded no output folder"
        raise UsageError(f"report: the study is on a database server and {where}; give -o FILE.html")
    return Path(out_dir) / REPORT_FILE


def cmd_train(args: argparse.Namespace) -> int:
    from yaml2torch.search.trainone import TRAIN_OUTPUTS, TrainRequest, train_spec_file

    _check_thread_options(args)
    outputs = [args.output / name for name in TRAIN_OUTPUTS]
    refuse_overwriting_inputs([args.output, *outputs], [args.spec, args.config, args.data_path])
    request = TrainRequest(
        out_dir=args.output,
        spec=args.spec,
        source=args.trials_from,
        study=args.study,
        trial=args.trial,
        data=args.data,
        data_path=args.data_path,
        config=args.config,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        image_size=args.image_size,
        device=args.device,
        seed=args.seed,
        threads=args.threads,
        max_threads=args.max_threads,
        progress=not args.quiet,
    )
    result = train_spec_file(request)
    if args.json:
        print(json.dumps({"val": result["val"], "test": result["test"], "out": str(args.output)}))
    else:
        from yaml2torch.search.progress import scores_line

        print(scores_line(result["val"], result["test"], args.output))
    return 0
