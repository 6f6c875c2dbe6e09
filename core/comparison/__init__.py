"""``tunebridge compare``: one spec on several backends, one held-out split, one neutral evaluation, one report.

The package is ``tunebridge.comparison`` so that ``tunebridge.compare`` stays the function (a submodule of
that name would replace it on the package once imported).

    import tunebridge as tb
    record = tb.compare("examples/compare-tiny.yaml", backends=["trl", "trlx"], output_dir="runs/cmp")

See docs/compare.md. Nothing heavy is imported until a compare runs.
"""

from __future__ import annotations

from .runner import AVAILABLE, CompareError, compare, held_out_spec, parse_backends, resolve_backends

__all__ = ["AVAILABLE", "CompareError", "compare", "held_out_spec", "parse_backends", "resolve_backends"]
