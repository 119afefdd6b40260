"""Rendering: ModelIR -> Python source through the Jinja2 templates in ``templates/``."""
