"""Command line: ``yaml2torch compile|summary|diff|search|worker|best|report|train``.

User errors print one line ``yaml2torch: error: FILE:LINE:COL: message`` and exit 2.
torch is imported only by commands (or specs) that need it.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from yaml2torch import __version__
from yaml2torch.errors import SpecError

EXIT_USAGE = 2


class CommandError(Exception):
    """A user error outside any spec (bad option combination, missing file)."""


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write via a temporary file in the same folder, then rename: complete or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8") if isinstance(text, str) else text
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp makes the file 0600; give it the mode a plain open() would (or the old file's)
        os.fchmod(fd, path.stat().st_mode & 0o7777 if path.is_file() else 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)  # the only portable way to read it; restored at once
    os.umask(mask)
    return mask


def print_warnings(warnings: Sequence[object]) -> None:
    for warning in warnings:
        print(f"yaml2torch: warning: {warning}", file=sys.stderr)


# --- compile / summary / diff ------------------------------------------------------------


def add_ultralytics_options(p: argparse.ArgumentParser) -> None:
    """``--scale``/``--nc`` for ultralytics model files (yaml2torch.spec.ultralytics)."""
    p.add_argument("--scale", help="ultralytics files: the scale to build (n, s, m, l, x; default from the file name)")
    p.add_argument("--nc", type=int, help="ultralytics files: the number of classes (overrides the file's nc)")


def ultralytics_options(args: argparse.Namespace) -> object:
    from yaml2torch.spec.ultralytics import UltralyticsOptions

    return UltralyticsOptions(args.scale, args.nc)


def cmd_compile(args: argparse.Namespace) -> int:
    from yaml2torch.compiler import compile_file

    if not args.class_name.isidentifier():
        raise CommandError(f"--class-name {args.class_name!r} is not a Python identifier")
    compiled = compile_file(args.spec, class_name=args.class_name, options=ultralytics_options(args))
    print_warnings(compiled.warnings)
    if args.check:
        if args.output is None:
            raise CommandError("--check needs -o OUT.py to compare against")
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else None
        if current != compiled.source:
            options = f" {compiled.ir.options}" if compiled.ir.options else ""
            print(f"{args.output} is stale: run 'yaml2torch compile {args.spec}{options} -o {args.output}'", file=sys.stderr)
            return 1
        return 0
    if args.weights is not None:
        from yaml2torch.weights import convert_weights_file

        if args.output is None:
            raise CommandError("--weights needs -o OUT.py (the weights are written beside it)")
        weights_out = convert_weights_file(compiled, args.weights, args.output.with_suffix(".pth"), args.class_name)
    if args.output is None:
        sys.stdout.write(compiled.source)
    else:
        try:
            write_atomic(args.output, compiled.source)
        except OSError as exc:  # a folder in the way, no permission: a user error, not a crash
            raise CommandError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        if args.weights is not None:
            print(f"wrote {args.output} and {weights_out}", file=sys.stderr)
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from yaml2torch.compiler import analyze
    from yaml2torch.errors import Diagnostics
    from yaml2torch.spec.model_spec import load_spec
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

    a, b = compile_file(args.a), compile_file(args.b)
    print_warnings([*a.warnings, *b.warnings])
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
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="yaml2torch", description="Compile YAML model specs to PyTorch and search architectures.")
    parser.add_argument("--version", action="version", version=f"yaml2torch {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("compile", help="compile a spec to one standalone model.py")
    p.add_argument("spec", type=Path)
    p.add_argument("-o", "--output", type=Path, help="output file (stdout when omitted)")
    p.add_argument("--class-name", default="Model", help="name of the model class (default Model)")
    p.add_argument("--check", action="store_true", help="exit 1 when OUT differs from what would be written")
    p.add_argument(
        "--weights", type=Path, help="a torchvision/ultralytics state_dict to map onto the model position by position; writes OUT.pth"
    )
    add_ultralytics_options(p)
    p.set_defaults(handler=cmd_compile)

    p = commands.add_parser("summary", help="per-row shapes, params and MACs without building weights")
    p.add_argument("spec", type=Path)
    p.add_argument("--input-size", type=int, nargs=2, metavar=("H", "W"))
    p.add_argument("--json", action="store_true")
    add_ultralytics_options(p)
    p.set_defaults(handler=cmd_summary)

    p = commands.add_parser("diff", help="unified diff of two generated files, then the params/MACs change")
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    p.set_defaults(handler=cmd_diff)

    for register in _extra_commands():
        register(commands)
    return parser


def _extra_commands() -> list[Callable[[argparse._SubParsersAction], None]]:
    from yaml2torch.scale.commands import register as register_scale
    from yaml2torch.search.commands import register

    return [register, register_scale]  # scale after search: it adds options to search and best


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except SpecError as exc:
        print(f"yaml2torch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:
        print(f"yaml2torch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        print("yaml2torch: interrupted", file=sys.stderr)
        return getattr(exc, "exit_status", 130)  # 143 after SIGTERM (yaml2torch.scale.signals.StopRequested)


if __name__ == "__main__":
    sys.exit(main())
