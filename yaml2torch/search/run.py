"""Running a search: open the study, run its trials through the worker library, export the results.

``run_search`` is ``yaml2torch search`` (and the Python API); ``run_joined_worker`` is
``yaml2torch worker``. Both run trials the same way: ``yaml2torch.scale.worker.run_worker``
with ``yaml2torch.search.trial.Objective``, training each trial in a child process when it can
(``IsolatedTrainer``). With ``workers > 1``, ``run_search`` starts that many ``yaml2torch worker``
processes on this machine instead and follows their progress.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from yaml2torch import __version__
from yaml2torch.errors import CannotWrite, Location, SpecError, StudyError, UsageError
from yaml2torch.files import load_state_dict, state_dict_bytes, write_atomic
from yaml2torch.scale._optuna import ga_generation_counting
from yaml2torch.scale.budget import StudyLock, counted_trials, may_start
from yaml2torch.scale.defaults import DEFAULT_GRACE_PERIOD, DEFAULT_HEARTBEAT_INTERVAL
from yaml2torch.scale.faults import FaultPlan, check_finite_loss
from yaml2torch.scale.isolation import (
    InProcessChannel,
    TrialTimedOut,
    fork_works,
    isolation_available,
    keep_parent_single_threaded,
    run_isolated,
    warm_up_torch,
)
from yaml2torch.scale.launch import launch_workers
from yaml2torch.scale.signals import StopRequested, stop_on_signals
from yaml2torch.scale.storage import (
    Backoff,
    check_storage_file,
    journal_url,
    make_artifact_store,
    make_storage,
    storage_file,
    upload_file,
    with_storage_retries,
)
from yaml2torch.scale.worker import WorkerOptions, WorkerSummary, run_worker
from yaml2torch.search.config import (
    SearchConfig,
    check_template_channels,
    component_class,
    data_channels,
    parse_config,
)
from yaml2torch.search.early_stop import NAME as DOMINANCE
from yaml2torch.search.threads import ThreadChooser, ThreadMemory, ThreadVerdict, thread_limit
from yaml2torch.search.train import DataCache, EpochResult, resolve_device, train_model
from yaml2torch.search.trial import Objective
from yaml2torch.study_record import (
    STUDY_SPACE_YAML,
    TRIAL_EARLY_STOP,
    RunSettings,
    StudyRecord,
    check_same_space,
    write_settings,
)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class RunOptions:
    """How this process runs a search. The study-wide part is ``settings()``, recorded in the study."""

    out_dir: Path
    storage: str | None = None  # default: OUT/study.log (a journal file), or the OUT/study.db of an older search
    study: str | None = None  # default: the file's study name
    trials: int | None = None  # override the file's budget
    timeout: float | None = None
    epochs: int | None = None  # override train.epochs (quick checks; part of the de-duplication key)
    data_limit: int | None = None  # override data.limit: a stratified subset (quick checks)
    time_limit: float | None = None  # per trial, seconds (enforced in a child process)
    artifacts: str | None = None  # artifact store folder for weights (default OUT/artifacts)
    device: str | None = None  # auto, cpu, cuda, cuda:1
    resume: bool = False  # require an existing study
    progress: bool = True  # progress bars and the closing table
    quiet: bool = False  # nothing on stderr but errors and warnings (--quiet): no worker summary lines
    search_model: Callable[..., Any] | None = None  # the Python escape hatch, passed directly
    workers: int = 1  # worker processes on this machine
    devices: tuple[str, ...] = ()  # round robin over the workers
    isolate: bool = False  # train each trial in a forked child (the command line turns it on)
    threads: int | None = None  # torch threads per trial (default: measured, see search/threads.py)
    max_threads: int | None = None  # the measured rule's cap (default: cores this process may use // workers)
    heartbeat_interval: int = DEFAULT_HEARTBEAT_INTERVAL
    grace_period: int = DEFAULT_GRACE_PERIOD
    worker_index: int | None = None  # set for workers started by search --workers

    @property
    def storage_url(self) -> str:
        if self.storage is not None:
            return self.storage
        # A new study is a journal file, for one process or many: each storage call costs a tenth
        # of SQLite's (docs/benchmarks.md). A SQLite study already in OUT (an older default) is resumed.
        found = study_file_in(self.out_dir)
        if found is not None and found.name == "study.db":
            return f"sqlite:///{found.resolve()}"
        return journal_url(self.out_dir / "study.log")

    def settings(self, config: SearchConfig) -> RunSettings:
        """The shared settings: this run's overrides over the search file's budget."""
        trials = self.trials if self.trials is not None else config.trials
        timeout = self.timeout if self.timeout is not None else config.timeout
        if self.trials is not None and self.timeout is None:
            timeout = None  # --trials alone replaces the file's budget
        artifacts = self.artifacts or str((self.out_dir / "artifacts").resolve())
        return RunSettings(trials, timeout, self.epochs, self.data_limit, self.time_limit, artifacts)

    def thread_cap(self) -> int:
        """The most torch threads one trial of this process may use."""
        return self.threads or self.max_threads or thread_limit(self.workers)


@dataclass(frozen=True)
class SearchResult:
    study: optuna.Study
    out_dir: Path
    summary: dict[str, Any]


# --- the study ----------------------------------------------------------------------------------


def make_sampler(config: SearchConfig, seed_offset: int = 0) -> optuna.samplers.BaseSampler:
    cls = component_class("sampler", config.sampler.type)
    if config.sampler.type == "NSGAII" and config.pruner.type == DOMINANCE:
        # the rule's stopped trials fill NSGA-II's generations too (scale/_optuna.py says why)
        cls = ga_generation_counting(cls, lambda t: TRIAL_EARLY_STOP in t.user_attrs)
    kwargs = dict(config.sampler.kwargs)
    if "seed" in inspect.signature(cls).parameters:
        kwargs["seed"] = config.seed + seed_offset
    return cls(**kwargs)


def make_pruner(config: SearchConfig) -> optuna.pruners.BasePruner:
    """Optuna's pruner; the Dominance rule of multi-objective studies is applied by the trial
    itself (``search/early_stop.py``), so the study gets none."""
    if config.pruner.type == DOMINANCE:
        return optuna.pruners.NopPruner()
    return component_class("pruner", config.pruner.type)(**dict(config.pruner.kwargs))


def _finished(study: optuna.Study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished())


TRIALS_MARKER = ".yaml2torch-study"  # in OUT/trials/: the name of the study whose trial folders these are


def claim_trials_folder(out_dir: Path, study: str, new: bool) -> None:
    """Make sure ``OUT/trials/`` holds this study's trial folders only, before any is written.

    A new study needs it empty (trial numbers restart at 0, so another study's folders would be
    overwritten); an existing study needs it unmarked or marked with its own name. Writing the
    marker also proves the folder can be written (else one line, before any trial starts)."""
    folder = out_dir / "trials"
    marker = folder / TRIALS_MARKER
    owner = _trials_owner(marker)
    others = sorted(p.name for p in folder.iterdir() if p.name != TRIALS_MARKER) if folder.is_dir() else []
    if owner is not None and owner != study:
        raise StudyError(
            f"{folder} holds the trial folders of study {owner!r}, not {study!r}; use another --out folder"
        )
    if new and others:
        raise StudyError(
            f"{folder} already holds trial folders ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}) "
            f"of another study, and the new study {study!r} would overwrite them; use another --out folder, "
            "or move them away"
        )
    if owner is None:
        write_atomic(marker, study + "\n")


def _trials_owner(marker: Path) -> str | None:
    try:
        return marker.read_text(encoding="utf-8").strip() if marker.is_file() else None
    except (OSError, UnicodeDecodeError):
        return None


def _make_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"{out_dir} is a file; --out names the output folder")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CannotWrite(f"cannot create the output folder {out_dir}: {exc.strerror or exc}") from None


def _load_existing(name: str, storage: Any, options: RunOptions) -> optuna.Study | None:
    try:
        existing = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        if options.resume:
            raise StudyError(f"--resume: no study {name!r} in {options.storage_url}") from None
        return None
    if STUDY_SPACE_YAML not in existing.user_attrs and existing.get_trials(deepcopy=False):
        raise StudyError(
            f"study {name!r} in {options.storage_url} was not made by yaml2torch (no search file recorded); "
            "use another --study name or --storage"
        )
    return existing


def open_study(config: SearchConfig, options: RunOptions) -> optuna.Study:
    """Create or resume the study; a study holds its search file, and a different file is refused.

    When it fails before the study is stored (a storage refused or away, a full disk), what it made
    and left empty goes again (``NewPaths``); anything that was there before stays."""
    path = storage_file(options.storage) if options.storage is not None else None
    if options.storage is not None and (path is None or not path.resolve().is_relative_to(options.out_dir.resolve())):
        check_storage_file(options.storage)  # a bad --storage is refused before OUT is made (unless OUT holds it)
    if options.storage is None:
        _refuse_what_blocks_the_journal(options.out_dir)
    made = NewPaths.before(options.out_dir, storage_file(options.storage_url))
    try:
        return _open_or_create(config, options)
    except BaseException:
        made.remove_if_empty()
        raise


@dataclass(frozen=True)
class NewPaths:
    """The folders (deepest first), storage file and trials marker that did not exist before."""

    folders: tuple[Path, ...]
    storage: Path | None
    marker: Path | None  # OUT/trials/.yaml2torch-study, when this run writes it

    @classmethod
    def before(cls, out_dir: Path, storage: Path | None) -> NewPaths:
        folders = []
        folder = out_dir.absolute()
        while not folder.exists() and folder != folder.parent:
            folders.append(folder)
            folder = folder.parent
        trials = out_dir.absolute() / "trials"
        if not trials.exists():
            folders.insert(0, trials)
        marker = trials / TRIALS_MARKER
        new_storage = storage if storage is not None and not storage.exists() else None
        return cls(tuple(folders), new_storage, None if marker.exists() else marker)

    def remove_if_empty(self) -> None:
        """Remove the trials marker this run wrote, the storage file it made if still empty, and
        the folders it made if empty; never anything else (best effort: the error raised is what counts)."""
        if self.marker is not None:
            with contextlib.suppress(OSError):
                self.marker.unlink(missing_ok=True)
        if self.storage is not None:
            with contextlib.suppress(OSError):
                if self.storage.is_file() and self.storage.stat().st_size == 0:
                    self.storage.unlink()
        for folder in self.folders:
            with contextlib.suppress(OSError):  # not empty, or already gone
                folder.rmdir()


def _open_or_create(config: SearchConfig, options: RunOptions) -> optuna.Study:
    _make_out_dir(options.out_dir)
    name = options.study or config.study
    # journal files, PostgreSQL heartbeats; a server that stays away ends as one line (StorageUnreachable)
    storage = with_storage_retries(lambda: make_storage(options.storage_url), what="opening the storage", backoff=OPENING)
    existing = _load_existing(name, storage, options)
    has_trials = existing is not None and bool(existing.get_trials(deepcopy=False))
    claim_trials_folder(options.out_dir, name, new=not has_trials)
    if existing is not None and STUDY_SPACE_YAML in existing.user_attrs:
        check_same_space(existing, config.text, config.path)
        if has_trials:
            _check_same_trial_meaning(existing, options)
        sampler = make_sampler(config, _finished(existing))
        return optuna.load_study(study_name=name, storage=storage, sampler=sampler, pruner=make_pruner(config))
    study = optuna.create_study(
        study_name=name,
        storage=storage,
        directions=config.directions,  # type: ignore[arg-type]  # "maximize"/"minimize": parse_config checks them
        sampler=make_sampler(config),
        pruner=make_pruner(config),
        load_if_exists=True,
    )
    space_path = config.path if config.path.startswith("<") else str(Path(config.path).resolve())
    StudyRecord(
        space_yaml=config.text,
        space_path=space_path,
        objectives=tuple((o.metric, o.direction) for o in config.objectives),
        out_dir=str(options.out_dir.resolve()),
        settings=options.settings(config),
        version=__version__,
    ).write(study)
    return study


def _check_same_trial_meaning(study: optuna.Study, options: RunOptions) -> None:
    """``--epochs`` and ``--limit`` are part of what a trial means: a study whose trials ran with
    other values is refused (a changed --limit also moves the test split into the training data)."""
    recorded = StudyRecord.read(study).settings
    before = (recorded.epochs, recorded.data_limit)
    now = (options.epochs, options.data_limit)
    if before == now:
        return

    def words(epochs: int | None, limit: int | None) -> str:
        trained = f"--epochs {epochs}" if epochs else "the file's epochs"
        data = f"--limit {limit}" if limit else "all the data"
        return f"{trained} and {data}"

    flags = [f"--epochs {before[0]}"] * bool(before[0]) + [f"--limit {before[1]}"] * bool(before[1])
    raise StudyError(
        f"study {study.study_name!r} ran its trials with {words(*before)}, this run asks for {words(*now)}: its "
        "trials would not compare"
        + (" (and another --limit moves test images into training)" if before[1] != now[1] else "")
        + "; resume it "
        + (f"with {' '.join(flags)}" if flags else "without --epochs and --limit")
        + ", or use another --out folder or --study name"
    )


SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3")
# Opening a storage waits ~15 s for a server that is away (a typo should not hang a command for
# minutes); once a study runs, the worker loop rides out outages of up to two minutes.
OPENING = Backoff(first=0.5, cap=4.0, total=15.0)


STUDY_LOG = "study.log"
STUDY_FILES = (STUDY_LOG, "study.db")  # what search writes in OUT, newest first


def study_file_in(folder: Path) -> Path | None:
    """The study file of a search's output folder: its ``study.log``, else an older ``study.db``."""
    return next((folder / name for name in STUDY_FILES if (folder / name).is_file()), None)


def not_a_study_file(folder: Path) -> Path | None:
    """Why ``folder`` holds no study file, when something is in the way: a ``study.log`` or
    ``study.db`` there that is not a file (a folder, a FIFO), or ``folder`` itself when it is
    named as one (``--storage OUT/study.log`` where that is a folder)."""
    if folder.name in STUDY_FILES and folder.is_dir():
        return folder
    return next((folder / name for name in STUDY_FILES if (folder / name).exists() and not (folder / name).is_file()), None)


def odd_kind(path: Path) -> str:
    return "a folder" if path.is_dir() else "not a regular file"


def _refuse_what_blocks_the_journal(out_dir: Path) -> None:
    """search's default storage is OUT/study.log (when OUT holds no study file): a folder there is
    refused with advice that helps; the storage layer's "name a file in it" would mean --storage."""
    place = out_dir / STUDY_LOG
    if study_file_in(out_dir) is None and place.exists() and not place.is_file():
        raise UsageError(
            f"{place} is {odd_kind(place)}, not a study file (search keeps its journal there); "
            "move it away, or use another --out"
        )


def resolve_storage(text: str) -> str:
    """A storage URL from what a user has at hand: a URL, a search's output folder (its
    ``study.log`` or an older ``study.db``), or the path of a SQLite/journal file."""
    if "://" in text:
        return text
    path = Path(text)
    if path.is_dir():
        found = study_file_in(path)  # the file search itself resumes
        if found is None and (odd := not_a_study_file(path)) is not None:
            where = "" if odd == path else f"{path}: no study here: "
            raise UsageError(
                f"{where}{odd} is {odd_kind(odd)}, not a study file; give the output folder or storage URL that holds the study"
            )
        if found is None:
            raise UsageError(f"{path}: no study.log or study.db here (give the search's output folder or --storage URL)")
        path = found
    if path.suffix in SQLITE_SUFFIXES:
        if not path.is_file():
            raise UsageError(f"{path}: no such database file")
        return f"sqlite:///{path.resolve()}"
    # a journal file path (the folder's study.log), or an error from the storage layer naming the forms
    return str(path) if path != Path(text) else text


def _study_names(storage: Any) -> tuple[list[str], str]:
    """The storage's study names, and a phrase listing them for messages."""
    names = sorted(s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))
    return names, (f"studies there: {', '.join(names)}" if names else "the storage holds no studies")


def only_study(storage: Any, url: str) -> str:
    """The name of the one study in a storage (for commands given no --study)."""
    names, listed = _study_names(storage)
    if not names:  # an empty journal or database: --study would not help
        raise StudyError(f"{url}: the storage holds no studies; give the output folder or storage URL of a search's study")
    if len(names) != 1:
        raise UsageError(f"{url}: give --study NAME ({listed})")
    return names[0]


@dataclass(frozen=True)
class StoredStudy:
    """A study reopened from storage alone: the study, its record and its search file."""

    study: optuna.Study
    record: StudyRecord
    config: SearchConfig
    storage: Any  # the opened Optuna storage (reused to load the study again with a sampler)


def open_stored_study(url: str, name: str | None, **storage_options: Any) -> StoredStudy:
    """The one way ``worker``, ``best``, ``report`` and ``train --from`` reopen a study (the record
    says where its files are). ``url`` may be an output folder or a database path; ``name`` may be
    left out when the storage holds one study."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = resolve_storage(url)
    check_storage_file(url, new_study=False)  # a folder, a missing folder, a file that is not a database: what to do
    local = storage_file(url)
    if local is not None and not local.exists():  # reading a study must never create a database
        raise StudyError(f"{local}: no such study database or journal file")
    storage = with_storage_retries(
        lambda: make_storage(url, new_study=False, **storage_options), what="opening the storage", backoff=OPENING
    )
    study_name = name or only_study(storage, url)
    try:
        study = with_storage_retries(
            lambda: optuna.load_study(study_name=study_name, storage=storage), what="loading the study"
        )
    except KeyError:
        raise StudyError(f"no study named {study_name!r} in {url}; {_study_names(storage)[1]}") from None
    record = StudyRecord.read(study)
    config = parse_config(record.space_yaml, record.space_path, record.space_dir())
    return StoredStudy(study, record, config, storage)


# --- training a trial: in a child process, with faults injected and a time limit ----------------


@dataclass(frozen=True)
class IsolatedTrainer:
    """Trains one trial's model, in a forked child when possible (``Objective.trainer``).

    After each epoch the child applies injected faults (``YAML2TORCH_INJECT_FAULT``), checks the
    loss is finite and hands the epoch result to the worker, where ``on_epoch`` reports to Optuna
    (and may prune). The trained weights come back to the worker's model. Without isolation (CUDA
    already initialized, or --no-isolate) training runs here; the time limit is checked per epoch.
    """

    time_limit: float | None = None
    isolate: bool = True
    threads: int | None = None  # fixed (--threads); None: measured on each trial's first steps
    max_threads: int = 1  # the measured rule's cap
    memory: ThreadMemory = field(default_factory=ThreadMemory)  # thread counts that lost, across trials

    def __call__(self, trial: Any, model: Any, data: Any, settings: Any, seed: int, on_epoch: Any) -> list[EpochResult]:
        faults = FaultPlan.from_env()
        number = trial.number
        threads = ThreadChooser(most=self.max_threads, fixed=self.threads, skip=self.memory.skip(time.monotonic()))

        def train_here(channel: Any) -> tuple[list[EpochResult], bytes]:
            def after_epoch(result: EpochResult) -> None:
                check_finite_loss(faults.at_epoch(number, result.epoch, result.train_loss), result.epoch)
                channel.call(result)

            history = train_model(model, data, settings, seed, after_epoch, threads)
            return history, state_dict_bytes(model)

        verdicts: list[ThreadVerdict] = []  # the latest epoch's, learnt from even when the trial is pruned

        def on_result(result: EpochResult) -> None:
            if result.threads is not None:
                verdicts[:] = [result.threads]
            on_epoch(result)

        try:
            return self._train(train_here, on_result, model, data.device.type == "cpu")
        finally:
            if verdicts:
                self.memory.learn(verdicts[0], time.monotonic())

    def _train(self, train_here: Any, on_epoch: Any, model: Any, cpu: bool) -> list[EpochResult]:
        if self.isolate and isolation_available() and cpu:
            history, state = run_isolated(
                train_here, time_limit=self.time_limit, on_call=on_epoch, child_threads=self.threads or 1
            )
            load_state_dict(model, state)
            return history
        started = time.monotonic()

        def on_call(result: EpochResult) -> None:
            on_epoch(result)
            if self.time_limit is not None and time.monotonic() - started > self.time_limit:
                raise TrialTimedOut(f"timed out: exceeded the per-trial time limit of {self.time_limit:g}s")

        history, _ = train_here(InProcessChannel(on_call=on_call))
        return history


def _prepare_isolation(options: RunOptions, device: Any, time_limit: float | None, say: Callable[[str], None]):
    """Whether trials fork, and the call that restores torch's thread count afterwards."""
    import torch

    previous = torch.get_num_threads()
    isolate = options.isolate and isolation_available() and device.type == "cpu"
    if isolate:
        keep_parent_single_threaded()
        if fork_works(options.thread_cap()):
            warm_up_torch()
        else:
            isolate = False
            if time_limit:  # only the time limit needs a child process; say what it loses
                say(
                    "yaml2torch: warning: trials train in this process: torch's thread pool was started here "
                    "before the search (a forked trial would hang); --time-limit is checked after each epoch"
                )
    if isolate:
        torch.set_num_threads(1)  # the parent only samples, compiles and waits; children train
    else:  # training runs here; on a GPU the CPU threads only feed it: one worker's share of cores
        torch.set_num_threads(options.thread_cap())
    return isolate, lambda: torch.set_num_threads(previous)


def run_trials(
    study: optuna.Study,
    config: SearchConfig,
    options: RunOptions,
    settings: RunSettings,
    data: DataCache,
    progress: Any,
    say: Callable[[str], None] = _say,
) -> WorkerSummary:
    """This process as one worker of the study, until the budget or the timeout."""
    isolate, restore_threads = _prepare_isolation(options, data.device, settings.time_limit, say)
    store = make_artifact_store(settings.artifacts or options.out_dir / "artifacts")
    objective = Objective(
        config,
        data,
        options.out_dir,
        epochs=settings.epochs,
        search_model=options.search_model,
        trainer=IsolatedTrainer(settings.time_limit, isolate, options.threads, options.thread_cap()),
        upload_weights=lambda trial, path: upload_file(trial, path, store),
        progress=progress,
    )
    worker = WorkerOptions(
        total_trials=settings.trials,
        timeout=settings.timeout,
        heartbeat_interval=options.heartbeat_interval,
        grace_period=options.grace_period,
    )
    lock = StudyLock(options.storage_url, study.study_name)
    try:
        with stop_on_signals():
            try:
                summary = run_worker(
                    study, objective, worker, lock=lock, say=say, on_trial_done=getattr(progress, "trial_done", None)
                )
            except StopRequested as stop:
                if stop.interrupted_trial is None:  # else the worker loop said which trial it stopped
                    say(f"yaml2torch: stopped by {stop.signal_name} between trials")
                stop.said = True
                raise
    finally:
        restore_threads()
    if not options.quiet:
        say(f"yaml2torch: {summary.line()}")
    return summary


# --- several workers on this machine ------------------------------------------------------------


def worker_command(options: RunOptions, study: str, index: int, device: str | None) -> list[str]:
    """The ``yaml2torch worker`` command line of local worker ``index``."""
    command = [sys.executable, "-m", "yaml2torch", "worker", "--storage", options.storage_url, "--study", study]
    command += ["--out", str(options.out_dir), "--worker-index", str(index)]
    command += ["--threads", str(options.threads)] if options.threads else ["--max-threads", str(options.thread_cap())]
    command += ["--heartbeat-interval", str(options.heartbeat_interval), "--grace-period", str(options.grace_period)]
    command += ["--quiet"] if options.quiet else []  # (a launched worker never draws bars: the search does)
    command += [*(["--device", device] if device else []), *([] if options.isolate else ["--no-isolate"])]
    return command


def default_workers(workers: int | None, devices: tuple[str, ...], device: str | None, gpus: int) -> int:
    """Workers on this machine: as asked; else one per ``--devices`` entry; else one per GPU when
    several are visible and the device was left to us (each then feeds its GPU with
    cores / workers CPU threads); else one."""
    if workers is not None:
        return workers
    if devices:
        return len(devices)
    return gpus if device in (None, "auto") and gpus > 1 else 1


def default_devices(options: RunOptions) -> tuple[str, ...]:
    """One worker per GPU when several are visible and the device was left to us."""
    if options.devices:
        return options.devices
    if options.device not in (None, "auto"):
        return (options.device,)
    import torch

    count = torch.cuda.device_count()
    return tuple(f"cuda:{i}" for i in range(count)) if count > 1 else ()


def run_local_workers(
    study: optuna.Study, options: RunOptions, total: int | None, progress: Any, say: Callable[[str], None]
) -> None:
    devices = default_devices(options)
    commands = [
        worker_command(options, study.study_name, i, devices[i % len(devices)] if devices else options.device)
        for i in range(options.workers)
    ]
    if not options.quiet:
        say(f"yaml2torch: {len(commands)} workers on {options.storage_url} (study {study.study_name})")
    seen = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}

    def report_new_trials() -> None:
        try:
            trials = study.get_trials(deepcopy=False)
        except Exception:  # noqa: BLE001 - progress only; the workers do the real work
            return
        for trial in trials:
            if trial.state.is_finished() and trial.number not in seen:
                seen.add(trial.number)
                progress.trial_done(study, trial)

    def busy() -> bool:
        try:
            trials = study.get_trials(deepcopy=False)
        except Exception:  # noqa: BLE001 - cannot tell: a stop then says what it usually does
            return True
        return any(t.state == TrialState.RUNNING for t in trials) or may_start(trials, total)

    def say_in_order(line: str) -> None:
        report_new_trials()  # a worker's closing line comes after its trials' progress lines
        say(line)

    launch_workers(commands, on_poll=report_new_trials, busy=busy, say=say_in_order)


# --- the commands' entry points ------------------------------------------------------------------


def run_search(config: SearchConfig, options: RunOptions) -> SearchResult:
    """Run (or resume) a search to its budget, then export best/Pareto files and the test score."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # Before any torch op here: a thread pool started now would hang forked trials. A library
    # caller gets its thread count back afterwards.
    previous = keep_parent_single_threaded() if options.isolate else None
    try:
        summary, study = _search_and_export(config, options)
    finally:
        if previous is not None:
            import torch

            torch.set_num_threads(previous)
    return SearchResult(study, options.out_dir, summary)


def _search_and_export(config: SearchConfig, options: RunOptions) -> tuple[dict[str, Any], optuna.Study]:
    from yaml2torch.search.export import export_study
    from yaml2torch.search.progress import SearchProgress

    if config.model is None and config.python is None and options.search_model is None:  # before any study exists
        raise SpecError(
            Location(str(config.path), 1, 1),
            "the search file has neither model: (a template) nor python: (a function), so no trial has anything "
            "to build; add one of them (docs/search.md)",
        )
    data = DataCache(replace(config.data, limit=options.data_limit or config.data.limit), resolve_device(options.device))
    data.splits  # noqa: B018 - a missing or unreadable data source fails here, before any study exists
    if data_channels(config.data) is None:  # known only now: an .npz, a folder without channels:
        check_template_channels(config, data.splits.channels)
    for device in options.devices:  # each worker's device, refused here rather than by each worker
        resolve_device(device, option="--devices entry")
    if options.artifacts is not None:  # a folder that cannot be made is refused before the study is
        make_artifact_store(options.artifacts)
    study = open_study(config, options)
    settings = options.settings(config)
    with_storage_retries(lambda: write_settings(study, settings), what="recording the study settings")
    trials = study.get_trials(deepcopy=False)
    can_start = may_start(trials, settings.trials)
    if not can_start and not options.quiet:
        _say(nothing_to_run(study.study_name, trials, settings.trials))
    with SearchProgress(config, study, total=settings.trials, enabled=options.progress) as progress:
        if can_start:
            if options.workers > 1:
                run_local_workers(study, options, settings.trials, progress, _say)
            else:
                run_trials(study, config, options, settings, data, progress)
        summary = export_study(study, config, options.out_dir, data, option="--out")
        progress.closing_table(study, config, summary)
    return summary, study


def nothing_to_run(study: str, trials: list[Any], total: int | None) -> str:
    """Why a rerun starts no trial: the budget was spent before (else a rerun looks like a search)."""
    counted = len(counted_trials(trials))
    has = f"already has its {total} trial{'s' * (total != 1)}"
    if counted != total:  # more than this run's budget (a worker's --trials, or the recorded one)
        has = f"already has {counted} trials, its budget is {total}"
    return f"yaml2torch: study {study} {has}; nothing to run (raise --trials to continue)"


def run_joined_worker(options: RunOptions, out_dir: Path | None) -> WorkerSummary:
    """``yaml2torch worker``: join a stored study and run its trials with its recorded settings.

    Trial folders go to ``out_dir``, else to the folder the study recorded when it exists here,
    else to ``generated/<study>/``.
    """
    from yaml2torch.search.progress import SearchProgress

    if options.storage is None:
        raise UsageError("a worker needs --storage")
    given = options.storage  # as the user wrote it, for the advice below
    stored = open_stored_study(
        options.storage, options.study, heartbeat_interval=options.heartbeat_interval, grace_period=options.grace_period
    )
    name = stored.study.study_name
    storage = resolve_storage(options.storage)
    out = stored.record.trials_root(out_dir, Path("generated") / name)
    options = replace(options, out_dir=out, storage=storage, study=name)
    _make_out_dir(options.out_dir)
    claim_trials_folder(options.out_dir, name, new=False)
    recorded = stored.record.settings
    settings = replace(
        recorded,
        trials=options.trials if options.trials is not None else recorded.trials,
        timeout=options.timeout if options.timeout is not None else recorded.timeout,
        time_limit=options.time_limit if options.time_limit is not None else recorded.time_limit,
        artifacts=options.artifacts or recorded.artifacts,
    )
    config = stored.config
    finished = _finished(stored.study)
    # Each worker gets its own sampler seed, or parallel workers would sample the same trials.
    index = options.worker_index
    offset = finished + 7919 * (index + 1) if index is not None else os.getpid()
    study = optuna.load_study(
        study_name=name,
        storage=stored.storage,  # opened with this worker's heartbeat settings
        sampler=make_sampler(config, offset),
        pruner=make_pruner(config),
    )
    # A worker the user started (not one of search --workers: the search says all this itself)
    # says when there is nothing to do, and when the exported best files no longer name the best.
    own = options.worker_index is None and not options.quiet
    trials = study.get_trials(deepcopy=False)
    idle = not may_start(trials, settings.trials) and not any(t.state == TrialState.RUNNING for t in trials)
    if idle and index is None:
        if own:
            _say(nothing_to_run(name, trials, settings.trials))
            say_if_export_is_stale(study, config, stored.record, given, _picked_number(study, config))
        return WorkerSummary()
    before = _picked_number(study, config) if own else None
    data = DataCache(
        replace(config.data, limit=settings.data_limit or config.data.limit), resolve_device(options.device)
    )
    with SearchProgress(config, study, total=settings.trials, enabled=options.progress) as progress:
        summary = run_trials(study, config, options, settings, data, progress)
    if own:
        say_if_export_is_stale(study, config, stored.record, given, before)
    return summary


def _picked_number(study: optuna.Study, config: SearchConfig) -> int | None:
    from yaml2torch.search.export import pick

    best, _ = pick(study, config)
    return None if best is None else best.number


def exported_pick(out_dir: str | None) -> tuple[Path, int | None] | None:
    """The summary.json that search (or best) wrote into the study's output folder and the trial
    it names; None when that file is not on this machine or cannot be read."""
    if out_dir is None:
        return None
    path = Path(out_dir) / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        return path, (summary.get("picked") or {}).get("number")
    except (OSError, ValueError, AttributeError):
        return None


def say_if_export_is_stale(
    study: optuna.Study, config: SearchConfig, record: StudyRecord, storage: str, before: int | None
) -> None:
    """A worker exports nothing (it may run on another machine, for a folder it cannot see, beside
    other workers): when the study's pick is not what the output folder's files show, say how to
    export it. Without those files here: when the trials this worker ran changed the pick."""
    now = _picked_number(study, config)
    if now is None:
        return
    exported = exported_pick(record.out_dir)
    if exported is not None and exported[1] == now:
        return
    if exported is None and now == before:
        return
    names = "no trial" if exported is None or exported[1] is None else f"trial {exported[1]}"
    shown = "" if exported is None else f" ({exported[0]} names {names})"
    here = record.out_dir if record.out_dir is not None and Path(record.out_dir).is_dir() else "DIR"
    _say(
        f"yaml2torch: the best trial is now {now}{shown}; "
        f"run yaml2torch best --storage {shlex.quote(storage)} -o {shlex.quote(here)} to export it"
    )
