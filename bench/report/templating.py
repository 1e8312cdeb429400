"""The two Jinja environments: HTML (autoescaped) and LaTeX (LaTeX-safe delimiters, no autoescape)."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).parent / "templates"


@cache
def html_env() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2"]),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


@cache
def latex_env() -> Environment:
    """`((* *))` blocks, `((( )))` values and `((= =))` comments, so LaTeX's braces and % need no escaping."""
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=False, undefined=StrictUndefined,
                       block_start_string="((*", block_end_string="*))", variable_start_string="(((",
                       variable_end_string=")))", comment_start_string="((=", comment_end_string="=))",
                       trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
