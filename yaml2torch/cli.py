"""Command line: ``yaml2torch compile|summary|diff|search|worker|best|report|train|schema|blocks|fmt|check|textconv``.

The top layer: it defines every command's options here and calls the handlers (compile,
summary and diff below; the search side's in ``yaml2torch.search.commands``). Nothing imports
this module. A ``UserError`` prints one line ``yaml2torch: error: ...`` and exits 2; any other
exception is a bug and keeps its traceback. A reader of standard output that went away
(``| head``) ends a command quietly with 141 (``run_command``). torch is imported only by commands (or specs) that need it.
"""

from __future__ import annotations

import argparse
import atexit
import difflib
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO, cast

from yaml2torch import __version__
from yaml2torch.errors import CannotWrite, UsageError, UserError
from yaml2torch.files import refuse_overwriting_inputs, write_atomic
from yaml2torch.scale.defaults import DEFAULT_GRACE_PERIOD, DEFAULT_HEARTBEAT_INTERVAL
from yaml2torch.scale.signals import stop_on_signals

if TYPE_CHECKING:
    from yaml2torch.spec.ultralytics import UltralyticsOptions

EXIT_USAGE = 2
EXIT_OUTPUT_CLOSED = 128 + 13  # standard output's reader went away: a tool killed by SIGPIPE exits so


def print_warnings(warnings: Sequence[object]) -> None:
    for warning in warnings:
        print(f"yaml2torch: warning: {warning}", file=sys.stderr)


# --- compile / summary / diff ------------------------------------------------------------


def add_ultralytics_options(p: argparse.ArgumentParser) -> None:
    """``--scale``/``--nc`` for ultralytics model files (yaml2torch.spec.ultralytics)."""
    p.add_argument("--scale", help="ultralytics files: the scale to build (n, s, m, l, x; default from the file name)")
    p.add_argument("--nc", type=int, help="ultralytics files: the number of classes (overrides the file's nc)")


def ultralytics_options(args: argparse.Namespace) -> UltralyticsOptions:
    from yaml2torch.spec.ultralytics import UltralyticsOptions

    return UltralyticsOptions(args.scale, args.nc)


def cmd_compile(args: argparse.Namespace) -> int:
    from yaml2torch.compiler import compile_file

    if not args.class_name.isidentifier():
        raise UsageError(f"--class-name {args.class_name!r} is not a Python identifier")
    outputs = [] if args.output is None or args.check else [args.output]
    outputs += [args.output.with_suffix(".pth")] if outputs and args.weights is not None else []
    refuse_overwriting_inputs(outputs, [args.spec, args.weights])
    compiled = compile_file(args.spec, class_name=args.class_name, options=ultralytics_options(args))
    compiled.refuse_overwriting_inputs(outputs)  # the YamlModule sub-specs and plugin modules it read
    print_warnings(compiled.warnings)
    if args.check:
        if args.output is None:
            raise UsageError("--check needs -o OUT.py to compare against")
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else None
        if current != compiled.source:
            options = f" {compiled.ir.options}" if compiled.ir.options else ""
            state = "missing" if current is None else "stale"
            print(f"{args.output} is {state}: run 'yaml2torch compile {args.spec}{options} -o {args.output}'", file=sys.stderr)
            return 1
        return 0
    if args.weights is not None:
        from yaml2torch.weights import convert_weights_file

        if args.output is None:
            raise UsageError("--weights needs -o OUT.py (the weights are written beside it)")
        weights_out = convert_weights_file(compiled, args.weights, args.output.with_suffix(".pth"), args.class_name)
    if args.output is None:
        sys.stdout.write(compiled.source)
    else:
        write_atomic(args.output, compiled.source)
        if args.weights is not None:
            print(f"wrote {args.output} and {weights_out}", file=sys.stderr)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from yaml2torch.compiler import analyze
    from yaml2torch.errors import Diagnostics
    from yaml2torch.spec.load import load_spec
    from yaml2torch.summary import summary_json, summary_table

    diagnostics = Diagnostics()
    spec = load_spec(args.spec, diagnostics, ultralytics_options(args))
    if args.input_size is not None:
        spec = spec.with_input_size(tuple(args.input_size))
    ir = analyze(spec, diagnostics)
    print_warnings(diagnostics.warnings)
    if args.json:
        print(json.dumps(summary_json(ir), indent=2))
    else:
        summary_table(ir)
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    from yaml2torch.compiler import compile_file
    from yaml2torch.render.model_file import format_count

    for path in (args.a, args.b):
        if path.suffix == ".py":
            raise UsageError(f"{path}: diff takes two specs (.yaml) and compares the files they generate")
    a, b = compile_file(args.a), compile_file(args.b)
    print_warnings([*a.warnings, *b.warnings])
    if a.arch_hash == b.arch_hash:
        print(f"same architecture (hash {a.arch_hash[:12]}): {a.params:,} params, MACs {format_count(a.macs)}")
        return 0
    diff = difflib.unified_diff(
        a.source.splitlines(keepends=True),
        b.source.splitlines(keepends=True),
        fromfile=f"{args.a} (model.py)",
        tofile=f"{args.b} (model.py)",
    )
    sys.stdout.writelines(diff)

    def change(old: int | None, new: int | None) -> str:
        if old is None or new is None:
            return f"{format_count(old)} -> {format_count(new)}"
        pct = f" ({(new - old) / old:+.1%})" if old else ""
        return f"{old:,} -> {new:,} ({new - old:+,}){pct}"

    print(f"params: {change(a.params, b.params)}")
    print(f"MACs:   {change(a.macs, b.macs)}")
    return 1  # as diff(1) and git diff --exit-code: the architectures differ


# --- tooling: schema / blocks / fmt / check / textconv (yaml2torch.tooling) ------------------


def cmd_schema(args: argparse.Namespace) -> int:
    from yaml2torch.tooling.schema import schema_text

    sys.stdout.write(schema_text(args.kind))
    return 0


def cmd_blocks(args: argparse.Namespace) -> int:
    from yaml2torch.tooling import block_list

    if args.json:
        print(json.dumps(block_list.blocks_json(), indent=2))
    else:
        sys.stdout.write(block_list.blocks_markdown() if args.markdown else block_list.blocks_table())
    return 0


def cmd_fmt(args: argparse.Namespace) -> int:
    from yaml2torch.tooling.fmt import format_files, write_files

    rewrites = format_files(args.files, note=lambda message: print(f"yaml2torch: note: {message}", file=sys.stderr))
    if args.check:
        for file, _text in rewrites:
            print(f"would reformat {file}", file=sys.stderr)
        return 1 if rewrites else 0
    write_files(rewrites, written=lambda file: print(f"reformatted {file}", file=sys.stderr))
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """Exit 0 when every spec compiles (and with --fresh, every model file is current), 1 when a
    model file is stale or missing, 2 on an error (a spec that does not compile, a folder in a
    model file's place)."""
    from yaml2torch.tooling.checks import check_files, exit_status

    results = check_files(args.specs, args.fresh, args.out_dir)
    for result in results:
        if result.line:
            print(result.line, file=sys.stderr)
    return exit_status(results)


def cmd_textconv(args: argparse.Namespace) -> int:
    from yaml2torch.tooling.textconv import textconv

    sys.stdout.flush()
    sys.stdout.buffer.write(textconv(args.file, args.base_dir).encode("utf-8", errors="replace"))
    sys.stdout.buffer.flush()
    return 0


# --- option types: checked where they enter, as the same values are in YAML ----------------------


def _positive(kind: type, what: str):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (0 < value < float("inf")):  # also refuses nan
            raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in its messages
    return parse


positive_int = _positive(int, "a positive integer")
positive_float = _positive(float, "a positive number of seconds")


def study_name(text: str) -> str:
    """A study name is also a folder name: the rule of a search file's ``study:``."""
    from yaml2torch.study_record import study_name_problem

    if (problem := study_name_problem(text)) is not None:
        raise argparse.ArgumentTypeError(problem)
    return text


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line like every other error."""

    commands: argparse._SubParsersAction | None = None  # the top-level parser's subcommands

    def error(self, message: str) -> NoReturn:
        # "yaml2torch: error: train: ...": the command once, as the handlers' own usage errors name it
        where = "" if self.prog == "yaml2torch" else f"{self.prog.removeprefix('yaml2torch ')}: "
        print(f"yaml2torch: error: {where}{message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(EXIT_USAGE)

    def parse_args(self, args: Sequence[str] | None = None, namespace: None = None) -> argparse.Namespace:  # type: ignore[override]  # narrower than argparse's overloads: the CLI never passes a namespace
        """Like argparse, but an unknown option is reported by the command it was given to."""
        given = list(sys.argv[1:] if args is None else args)
        parsed, unknown = self.parse_known_args(given)
        if unknown:
            command = self.commands.choices.get(parsed.command) if self.commands is not None else None
            before_command = parsed.command in given and given.index(unknown[0]) < given.index(parsed.command)
            (self if command is None or before_command else command).error(
                f"unrecognized arguments: {' '.join(unknown)}"
            )
        return parsed


def cmd_export(args: argparse.Namespace) -> int:
    from yaml2torch.compiler import compile_file
    from yaml2torch.deploy import export_format, export_model

    export_format(args.output)  # a bad file name fails before any work
    compiled = compile_file(args.spec, options=ultralytics_options(args))
    print_warnings(compiled.warnings)
    exported = export_model(compiled, args.weights, args.output)
    print(f"wrote {exported.path} ({exported.format}, input (N, {', '.join(map(str, exported.input_shape))}))", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="yaml2torch", description="Compile YAML model specs to PyTorch and search architectures.")
    parser.add_argument("--version", action="version", version=f"yaml2torch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=_Parser)
    parser.commands = commands

    p = commands.add_parser("compile", help="compile a spec to one standalone model.py")
    p.add_argument("spec", type=Path, help="the model spec (.yaml), or an ultralytics model file")
    p.add_argument("-o", "--output", type=Path, help="output file (stdout when omitted)")
    p.add_argument("--class-name", default="Model", help="name of the model class (default Model)")
    p.add_argument("--check", action="store_true", help="exit 1 when OUT differs from what would be written")
    p.add_argument(
        "--weights", type=Path, help="a torchvision/ultralytics state_dict to map onto the model position by position; writes OUT.pth"
    )
    add_ultralytics_options(p)
    p.set_defaults(handler=cmd_compile)

    p = commands.add_parser("summary", help="per-row shapes, params and MACs without building weights")
    p.add_argument("spec", type=Path, help="the model spec (.yaml), or an ultralytics model file")
    p.add_argument(
        "--input-size", type=int, nargs=2, metavar=("H", "W"), help="the input image size (overrides the spec's input_size)"
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    add_ultralytics_options(p)
    p.set_defaults(handler=cmd_summary)

    p = commands.add_parser(
        "diff", help="unified diff of two generated files, then the params/MACs change (exit 1 when they differ, like diff)"
    )
    p.add_argument("a", type=Path, help="the old spec (.yaml)")
    p.add_argument("b", type=Path, help="the new spec (.yaml)")
    p.set_defaults(handler=cmd_diff)

    p = commands.add_parser("export", help="a spec and its trained weights as ONNX (.onnx) or torch.export (.pt2)")
    p.add_argument("spec", type=Path, help="the model spec the weights were trained for (best.yaml)")
    p.add_argument("--weights", type=Path, required=True, help="the trained state_dict (model.pt, best_model.pt)")
    p.add_argument("-o", "--output", type=Path, required=True, help="model.onnx or model.pt2 (dynamic batch size)")
    add_ultralytics_options(p)
    p.set_defaults(handler=cmd_export)

    _add_search_commands(commands)
    _add_tooling_commands(commands)
    return parser


def _add_tooling_commands(commands: argparse._SubParsersAction) -> None:
    p = commands.add_parser("schema", help="print the JSON Schema (draft 2020-12) of model specs or search files")
    p.add_argument("kind", choices=("model", "search"), help="model: model specs; search: search-space files")
    p.set_defaults(handler=cmd_schema)

    p = commands.add_parser("blocks", help="list every block: arguments, types, defaults, twin, origin")
    form = p.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="print JSON instead of the table")
    form.add_argument("--markdown", action="store_true", help="the block reference (docs/blocks.md)")
    p.set_defaults(handler=cmd_blocks)

    p = commands.add_parser("fmt", help="rewrite specs / search files in the canonical layout (comments kept)")
    p.add_argument("files", type=Path, nargs="+", help="spec or search files; a folder: every spec *.yaml/*.yml in it")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 when a file would change")
    p.set_defaults(handler=cmd_fmt)

    p = commands.add_parser(
        "check",
        help="compile specs in memory (nothing written); --fresh: their model files are current; exit 0 fine, 1 stale, 2 error",
    )
    p.add_argument("specs", type=Path, nargs="+", help="specs; a YamlModule sub-spec also checks the specs of its repository that include it")
    p.add_argument("--fresh", action="store_true", help="also compare the model file: <stem>.py beside each spec (or in --out-dir); a search's best_model.py and trial model.py too")
    p.add_argument("--out-dir", type=Path, help="where the model files are (default: beside each spec)")
    p.set_defaults(handler=cmd_check)

    p = commands.add_parser("textconv", help="print a spec's generated model.py (a git diff textconv driver)")
    p.add_argument("file", type=Path, help="the spec file (git passes the work tree's file or a temporary copy)")
    p.add_argument("--base-dir", type=Path, help="resolve YamlModule files against this folder")
    p.set_defaults(handler=cmd_textconv)


def _add_trial_options(p: argparse.ArgumentParser) -> None:
    """How this process runs trials: shared by search and worker."""
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1")
    p.add_argument("--timeout", type=positive_float, help="seconds this run may start trials for")
    p.add_argument("--time-limit", type=positive_float, metavar="S", help="stop and fail a trial that runs longer than S seconds")
    p.add_argument("--artifacts", help="artifact store folder for weights (default OUT/artifacts; recorded in the study)")
    p.add_argument(
        "--no-isolate",
        dest="isolate",
        action="store_false",
        help="train in the worker process instead of a child process per trial (no hard time limit)",
    )
    p.add_argument(
        "--threads",
        type=positive_int,
        help="torch threads per trial (default: measured on each trial's first steps, see docs/search.md)",
    )
    p.add_argument(
        "--max-threads",
        type=positive_int,
        metavar="N",
        help="the most threads the measured default tries (default: usable CPU cores, divided by search's --workers)",
    )
    p.add_argument(
        "--heartbeat-interval",
        type=positive_int,
        default=DEFAULT_HEARTBEAT_INTERVAL,
        metavar="S",
        help=f"seconds between heartbeats (default {DEFAULT_HEARTBEAT_INTERVAL})",
    )
    p.add_argument(
        "--grace-period",
        type=positive_int,
        default=DEFAULT_GRACE_PERIOD,
        metavar="S",
        help=f"a running trial silent this long is stale (default {DEFAULT_GRACE_PERIOD})",
    )
    p.add_argument(
        "--quiet", action="store_true", help="only errors and warnings: no progress bars, closing table or summary lines"
    )


def _reading_a_study(
    handler: Callable[[argparse.Namespace], int], study: Callable[[argparse.Namespace], str | None]
) -> Callable[[argparse.Namespace], int]:
    """``handler``, for a command that reads the stored study ``study(args)`` names: a path that is
    not there is refused in report's words ("no such folder or file"), not with the storage
    layer's list of URL forms (which reads as if a folder were not accepted)."""

    def run(args: argparse.Namespace) -> int:
        _refuse_a_missing_path(study(args))
        return handler(args)

    return run


def _refuse_a_missing_path(text: str | None) -> None:
    from yaml2torch.scale.storage import JOURNAL_SUFFIXES
    from yaml2torch.search.run import SQLITE_SUFFIXES

    if text is None or "://" in text or os.path.lexists(text) or text.endswith((*JOURNAL_SUFFIXES, *SQLITE_SUFFIXES)):
        return  # a URL, a path that is there, or a study file whose absence the storage layer names
    raise UsageError(f"{text}: no such folder or file")


def _add_search_commands(commands: argparse._SubParsersAction) -> None:
    from yaml2torch.search import commands as search
    from yaml2torch.search.config import image_size_option, seed_option

    p = commands.add_parser("search", help="run an architecture search from a search-space YAML")
    p.add_argument("space", type=Path, help="the search-space file")
    p.add_argument("--trials", type=positive_int, help="total number of trials in the study (exact; overrides the file)")
    p.add_argument("--storage", help="any Optuna storage URL (default: the journal file OUT/study.log, or an older OUT/study.db already there)")
    p.add_argument("--study", type=study_name, help="study name (default: the file's study: or its file name)")
    p.add_argument("-o", "--out", type=Path, help="output folder (default generated/<study>/)")
    p.add_argument("--epochs", type=positive_int, help="override train.epochs (for quick checks)")
    p.add_argument("--limit", type=positive_int, help="use a stratified subset of this many samples (for quick checks)")
    p.add_argument("--resume", action="store_true", help="continue an existing study (running the same command does too)")
    p.add_argument("--workers", type=positive_int, help="worker processes sharing the study on this machine (default storage: as without --workers)")
    p.add_argument("--devices", help="comma-separated devices for the workers, e.g. cuda:0,cuda:1 (round robin)")
    _add_trial_options(p)
    p.set_defaults(handler=search.cmd_search)

    p = commands.add_parser("worker", help="join a stored study and run its trials (any machine)")
    p.add_argument("--storage", required=True, help="the study's storage: a URL, OUT/study.log (or another journal or SQLite file), or OUT")
    p.add_argument("--study", type=study_name, help="study name (default: the storage's only study)")
    p.add_argument("-o", "--out", type=Path, help="folder for trial files (default: the study's, else generated/<study>/)")
    p.add_argument("--trials", type=positive_int, help="study-wide trial budget (default: the one recorded in the study)")
    p.add_argument("--worker-index", type=int, help=argparse.SUPPRESS)
    p.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)  # set by search --workers
    _add_trial_options(p)
    p.set_defaults(handler=_reading_a_study(search.cmd_worker, lambda args: args.storage))

    p = commands.add_parser("best", help="export the best / Pareto trials of a stored study")
    p.add_argument("--storage", required=True, help="a storage URL, OUT/study.log (or another journal or SQLite file), or the output folder")
    p.add_argument("--study", type=study_name, help="study name (default: the storage's only study)")
    p.add_argument(
        "-o", "--output", type=Path, required=True, help="folder for best.yaml, best_model.py/.pt and summary.json"
    )
    p.add_argument("--from", dest="trials_from", type=Path, help="the search's output folder holding trials/ (for weights and the test score)")
    p.add_argument("--artifacts", help="artifact store folder holding the weights (default: the one the study recorded)")
    p.add_argument("--json", action="store_true", help="print the pick and its test scores as JSON (default: one line)")
    p.set_defaults(handler=_reading_a_study(search.cmd_best, lambda args: args.storage))

    p = commands.add_parser("report", help="an HTML report of a stored study (report OUT_DIR writes OUT_DIR/report.html)")
    p.add_argument("source", nargs="?", help="the search's output folder (or its study.log)")
    p.add_argument("--storage", help="a storage URL instead of the folder")
    p.add_argument("--study", type=study_name, help="study name (default: the storage's only study)")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="the HTML file (default: report.html in the search's output folder, the one holding the study file; "
        "for a database server URL, the output folder the study recorded)",
    )
    # report OUT --storage URL is refused by cmd_report (one study, given once); it checks OUT itself
    p.set_defaults(handler=_reading_a_study(search.cmd_report, lambda args: args.storage if args.source is None else None))

    p = commands.add_parser("train", help="train one architecture with the search's machinery")
    p.add_argument("spec", type=Path, nargs="?", help="a model spec (or --from a stored study)")
    p.add_argument("--from", dest="trials_from", metavar="OUT_DIR", help="a stored study: output folder, OUT/study.log or URL")
    p.add_argument("--study", type=study_name, help="with --from: the study (default: the storage's only study)")
    p.add_argument("--trial", type=int, help="with --from: the trial number (default: the picked trial)")
    p.add_argument("--threads", type=positive_int, help="torch threads (default: measured on the first steps)")
    p.add_argument("--max-threads", type=positive_int, metavar="N", help="the most threads the measured default tries (default: usable cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--data", default="digits", help="digits, folder, cifar10 or npz")
    p.add_argument("--data-path", type=Path, help="folder / file for the non-built-in sources")
    p.add_argument("--config", type=Path, help="a search file whose data: and train: settings to use")
    p.add_argument("--epochs", type=positive_int, help="training epochs (default: the trial's, --config's or the built-in setting)")
    p.add_argument("--batch-size", type=positive_int, help="batch size (default: the trial's, --config's or the built-in setting)")
    p.add_argument("--lr", type=positive_float, help="learning rate (default: the trial's, --config's or the built-in setting)")
    p.add_argument("--image-size", type=image_size_option, help="input image size (default: the trial's, --config's or the built-in setting)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1")
    p.add_argument("--seed", type=seed_option, default=0, help="random seed (default 0)")
    p.add_argument("-o", "--output", type=Path, required=True, help="output folder: spec.yaml, model.py, model.pt, metrics.json")
    p.add_argument("--json", action="store_true", help="print the validation and test scores as JSON (default: one line)")
    p.set_defaults(handler=_reading_a_study(search.cmd_train, lambda args: args.trials_from))


def main(argv: Sequence[str] | None = None) -> int:
    status = run_command(argv)
    if argv is None:  # the program: only interpreter shutdown remains, the work is done
        _exit_on_signals(status)
    return status


def _exit_on_signals(status: int) -> None:
    """From now on SIGINT/SIGTERM end the process at once with the finished command's status
    (not 130/143 after a complete success, and no traceback from an exit handler)."""

    def exit_now(signum: int, frame: object) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, exit_now)
    # Late in shutdown Python drops its own handlers (back to the default: killed, not our status);
    # an ignored signal stays ignored, and by the time atexit runs every thread has been joined.
    atexit.register(_ignore_stop_signals)


def _ignore_stop_signals() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)


def run_command(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run its command; the exit status. While it runs, standard output and
    error are guarded (``_Guarded``): a reader that went away ends the command quietly."""
    # A stream closed before we started (`2>&-`) is None in Python: what goes there goes nowhere.
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w"))  # noqa: SIM115 - the process's own stream, for its lifetime
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = cast(TextIO, _Guarded(stdout, lambda exc: _stdout_failed(stdout, exc)))
    sys.stderr = cast(TextIO, _Guarded(stderr, lambda exc: _stderr_failed(stderr, exc)))
    command = None
    try:
        args = build_parser().parse_args(argv)
        command = args.command
        return _run_handler(args)
    except _OutputClosed:
        # The reader of standard output went away (`yaml2torch ... | head`): stop without a word,
        # as a tool killed by SIGPIPE would; textconv's promise to git is exit 0 whatever happens.
        return 0 if command == "textconv" else EXIT_OUTPUT_CLOSED
    finally:
        sys.stdout, sys.stderr = stdout, stderr


def _run_handler(args: argparse.Namespace) -> int:
    try:
        # SIGTERM, like Ctrl-C, stops any command with one line and status 128+signal, never
        # inside a storage call or halfway through a write (yaml2torch/scale/signals.py).
        with stop_on_signals():
            status = args.handler(args)
            sys.stdout.flush()  # a full disk or a closed pipe shows here, not at interpreter exit
            return status
    except UserError as exc:
        print(f"yaml2torch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        if not getattr(exc, "said", False):  # a search's stop line already said it
            print("yaml2torch: interrupted", file=sys.stderr)
        return getattr(exc, "exit_status", 130)  # 143 after SIGTERM (yaml2torch.scale.signals.StopRequested)
    except Exception as exc:
        # A full or read-only disk met where no layer expected a write to fail: not a bug, one line.
        from yaml2torch.scale.storage import as_cannot_write

        if (cannot_write := as_cannot_write(exc)) is None:
            raise
        print(f"yaml2torch: error: {cannot_write}", file=sys.stderr)
        return EXIT_USAGE


# --- standard output and error: a closed pipe or a full disk is no traceback ---------------------


class _OutputClosed(Exception):
    """Standard output's reader went away (a closed pipe); what is left to write goes nowhere."""


class _Guarded:
    """A standard stream (text, or its ``buffer``) whose write errors go to ``failed``; everything
    else is the stream's own. Its ``failed`` returns (the error is dropped) or raises."""

    def __init__(self, stream: Any, failed: Callable[[OSError], None]) -> None:
        self._stream = stream
        self._failed = failed

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except OSError as exc:
            self._failed(exc)
            return None

    def write(self, data: Any) -> Any:
        return self._call(self._stream.write, data)

    def writelines(self, lines: Any) -> None:
        self._call(self._stream.writelines, lines)

    def flush(self) -> None:
        self._call(self._stream.flush)

    @property
    def buffer(self) -> _Guarded:
        return _Guarded(self._stream.buffer, self._failed)


def _stdout_failed(stream: TextIO, exc: OSError) -> None:
    """Standard output cannot take more: its reader went away (``_OutputClosed``), or its disk is
    full (``CannotWrite``, one line naming standard output, not some file)."""
    _discard(stream)
    if isinstance(exc, BrokenPipeError):
        raise _OutputClosed from None
    raise CannotWrite(f"standard output: cannot write: {exc.strerror or exc}") from None


def _stderr_failed(stream: TextIO, exc: OSError) -> None:
    """A closed standard error (``search ... 2>&1 | head -1``) does not stop the work: what is
    left to say goes nowhere. Any other error is raised."""
    if not isinstance(exc, BrokenPipeError):
        raise exc
    _discard(stream)


def _discard(stream: TextIO) -> None:
    """Point the stream's file descriptor at the null device (the Python docs' advice for SIGPIPE):
    what is still buffered goes nowhere instead of failing again when the interpreter exits."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):  # not a real file (a test's capture)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
