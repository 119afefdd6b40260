"""Search-side subcommands (search, best, report, train); registered by yaml2torch.cli."""

from __future__ import annotations

import argparse


def register(commands: argparse._SubParsersAction) -> None:
    """Add the search-side subcommands. (Filled in by the search work.)"""
