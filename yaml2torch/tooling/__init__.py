"""Tools around the compiler for editors, reviews and CI: JSON Schemas, the block listing, ``fmt``,
the pre-commit check and the git textconv driver.

This package sits beside ``search/`` (it reads the block catalogue and the search file's keys);
the compiler never imports it, and only ``cli.py`` calls it.
"""
