"""The parameters of a sweep: ``--param KEY=V1,V2`` parsed, applied to a spec and validated (no Ray, no torch).

- ``KEY=V1,V2,...``: a grid; every combination of the grid parameters is one trial.
- ``KEY=choice:V1,V2,...``: random search, one value drawn per sample (``--samples N``).
- ``KEY=loguniform:LO,HI``: random search, a value drawn log-uniformly between LO and HI (0 < LO < HI).

Keys are dotted spec paths (``training.learning_rate``, ``lora.r``). Values are read like YAML scalars
(``3e-3`` is a number, ``true`` a boolean, ``[q_proj, v_proj]`` a list). Each value is applied to the spec the
user wrote and validated against the spec schema before any trial starts.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import dataclass
from typing import Any

from ..errors import SpecError, TunebridgeError

KINDS = ("grid", "choice", "loguniform")


class ParamError(TunebridgeError):
    """A ``--param`` that cannot be used (bad syntax, or a value the spec schema refuses)."""


@dataclass(frozen=True)
class Param:
    """One swept setting: a dotted spec path, how it is searched, and its values (LO, HI for loguniform)."""

    key: str
    kind: str
    values: tuple[Any, ...]
    text: str = ""  # as written on the command line, for messages

    @property
    def random(self) -> bool:
        """Whether the value is drawn at random (needs ``--samples``)."""
        return self.kind != "grid"

    def to_dict(self) -> dict[str, Any]:
        """sweep.json ``params``."""
        return {"key": self.key, "kind": self.kind, "values": list(self.values)}


def split_values(text: str) -> list[str]:
    """``a,[b,c],'d,e'`` -> ``['a', '[b,c]', "'d,e'"]``: commas inside brackets or quotes do not split."""
    parts, current, depth, quote = [], [], 0, ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return parts


def parse_value(text: str) -> Any:
    """A value as YAML reads it, with numbers YAML 1.1 leaves as strings (``3e-3``, ``inf``) made numbers."""
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"cannot read {text!r}: {exc}") from None
    if isinstance(value, str):
        for kind in (int, float):
            try:
                return kind(value)
            except ValueError:
                pass
    return value


def parse_param(text: str) -> Param:
    """One ``--param`` argument; ParamError when its syntax is wrong."""
    key, sep, rest = text.partition("=")
    key = key.strip()
    where = f"--param {text}"
    if not sep or not key:
        raise ParamError(f"{where}: expected KEY=V1,V2 (or KEY=choice:V1,V2 / KEY=loguniform:LO,HI), e.g. "
                         "--param training.learning_rate=1e-3,3e-3")
    parts = key.split(".")
    if any(not p.strip() for p in parts) or any(c.isspace() for c in key):
        raise ParamError(f"{where}: {key!r} is not a dotted spec path (e.g. training.learning_rate, lora.r)")
    kind, colon, values_text = rest.partition(":")
    if colon and kind.strip() in KINDS[1:]:
        kind = kind.strip()
    else:
        kind, values_text = "grid", rest
    if not values_text.strip():
        raise ParamError(f"{where}: no values after '='")
    try:
        values = [parse_value(v) for v in split_values(values_text)]
    except ValueError as exc:
        raise ParamError(f"{where}: {exc}") from None
    import math

    if any(isinstance(v, float) and not math.isfinite(v) for v in values):
        raise ParamError(f"{where}: inf and nan cannot be swept (sweep.json is JSON); give finite numbers")
    if any(v is None and raw == "" for v, raw in zip(values, split_values(values_text), strict=True)):
        raise ParamError(f"{where}: an empty value (two commas in a row, or a trailing comma)")
    if kind == "loguniform":
        if len(values) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            raise ParamError(f"{where}: loguniform takes two numbers, LO,HI (e.g. loguniform:1e-4,1e-2)")
        lo, hi = float(values[0]), float(values[1])
        if not 0 < lo < hi or hi == float("inf"):
            raise ParamError(f"{where}: loguniform needs 0 < LO < HI (finite), got {lo:g}, {hi:g}")
        values = [lo, hi]
    if len(set(map(repr, values))) != len(values):
        raise ParamError(f"{where}: a value is given twice")
    return Param(key, kind, tuple(values), text)


def parse_params(texts: list[str] | tuple[str, ...], samples: int | None = None) -> list[Param]:
    """Every ``--param``; a key given twice, random search without ``samples`` (or the reverse), are errors."""
    if not texts:
        raise ParamError("a sweep needs at least one --param KEY=V1,V2 (e.g. --param training.learning_rate=1e-3,3e-3)")
    params = [p if isinstance(p, Param) else parse_param(p) for p in texts]
    keys = [p.key for p in params]
    for key in keys:
        if keys.count(key) > 1:
            raise ParamError(f"--param {key} is given twice: list all its values in one --param")
        clash = [k for k in keys if k != key and k.startswith(key + ".")]
        if clash:
            raise ParamError(f"--param {key} and --param {clash[0]}: one is inside the other")
    random = [p for p in params if p.random]
    if samples is not None and samples < 1:
        raise ParamError(f"--samples {samples}: give a number of samples of 1 or more")
    if random and samples is None:
        raise ParamError(f"--param {random[0].text}: random search ({random[0].kind}:) needs --samples N")
    if samples is not None and not random:
        raise ParamError(f"--samples {samples} is for random search: give a --param KEY=choice:... or "
                         "KEY=loguniform:LO,HI (a grid alone already makes every combination)")
    return params


def apply(spec_dict: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``spec_dict`` with each dotted ``key: value`` set (missing mappings are created)."""
    out = copy.deepcopy(spec_dict)
    for key, value in values.items():
        parts = key.split(".")
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ParamError(f"--param {key}: {'.'.join(parts[:i + 1])} is {child!r} in the spec, not a mapping")
            node = child
        node[parts[-1]] = copy.deepcopy(value)
    return out


def written_dict(spec: Any) -> dict[str, Any]:
    """What the user wrote in ``spec`` (defaults left out, so that a trial adapts them like a plain run)."""
    return spec.model_dump(exclude_unset=True)


def spec_with(spec: Any, values: dict[str, Any]) -> Any:
    """``spec`` with the trial's ``values`` applied, validated, relative paths still resolved against the spec
    file's folder. SpecError when the schema refuses the result."""
    from ..spec import parse_spec

    return parse_spec(apply(written_dict(spec), values), base_dir=spec.base_dir, source=spec.source)


def validate(spec: Any, params: list[Param]) -> None:
    """Every value of every parameter applied alone to ``spec`` and checked against the schema.

    ``ParamError: --param training.learning_rate=abc: training.learning_rate: Input should be a valid number``.
    """
    for param in params:
        for value in param.values:
            try:
                spec_with(spec, {param.key: value})
            except SpecError as exc:
                problems = "; ".join(f"{path}: {msg}" for path, msg in exc.problems)
                raise ParamError(f"--param {param.key}={_show(value)}: {problems}") from None


def grid(params: list[Param]) -> list[dict[str, Any]]:
    """The trials of the grid parameters (every combination, in order); [{}] when there are none."""
    grid_params = [p for p in params if not p.random]
    return [dict(zip([p.key for p in grid_params], combo, strict=True))
            for combo in itertools.product(*[p.values for p in grid_params])]


def trial_count(params: list[Param], samples: int | None) -> int:
    """How many trials the sweep makes: the grid's combinations, times ``samples`` with random search."""
    return len(grid(params)) * (samples or 1)


def _show(value: Any) -> str:
    if isinstance(value, str):
        return value
    import json

    return json.dumps(value, default=str)
