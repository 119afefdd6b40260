"""Formatting: black, in-process."""

from yaml2torch.format.black_formatter import BlackFormatter

__all__ = ["BlackFormatter"]
