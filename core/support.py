"""Checking a spec against a backend's capabilities, before any data is read or model loaded.

One rule for every backend: a feature the spec needs that the backend lacks fails when the user **wrote**
the setting (pydantic's fields-set tells), and adapts to what the backend does when the setting is a
default, recorded as a :class:`Difference` that plan, run.json, the model card and compare all show.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from .backend import Backend, Capabilities, checked_status
from .errors import SpecError, UnsupportedFeature
from .spec import Spec

if TYPE_CHECKING:
    from .plugins import Registry

_NO_FALLBACK = object()


@dataclass(frozen=True)
class Feature:
    """Something a spec needs from a backend: a label for errors, a test on capabilities, and, for a
    setting a backend may lack, the dotted spec path and the value a backend without it uses instead."""

    label: str
    supported: Callable[[Capabilities], bool]
    setting: str | None = None
    fallback: Any = _NO_FALLBACK
    why: str = ""


@dataclass(frozen=True)
class Difference:
    """A spec default that a backend cannot honour, adapted to what the backend does."""

    setting: str
    default: Any
    used: Any
    why: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data (run.json ``differences``)."""
        return asdict(self)

    def describe(self) -> str:
        """One line for humans."""
        return f"{self.setting}: default {_show(self.default)}, {_show(self.used)} on this backend ({self.why})"


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else repr(value)


def user_wrote(spec: Spec, setting: str) -> bool:
    """True when the dotted ``setting`` (e.g. ``sft.packing``) was written by the user, not defaulted."""
    node: Any = spec
    for part in setting.split("."):
        if not isinstance(node, BaseModel) or part not in node.model_fields_set:
            return False
        node = getattr(node, part)
    return True


def requested_features(spec: Spec) -> list[Feature]:
    """The features ``spec`` needs, each with a test on a backend's capabilities."""
    features: list[Feature] = [Feature(f"task {spec.task!r}", lambda c: spec.task in c.tasks)]
    if spec.task == "rl" and spec.rl.algorithm != "auto":
        algorithm = spec.rl.algorithm
        features.append(Feature(f"rl.algorithm {algorithm!r}", lambda c: algorithm in c.algorithms.get("rl", ())))
    if spec.task == "preference":
        chosen = spec.preference.resolved_algorithm
        written = "auto (dpo)" if spec.preference.algorithm == "auto" else repr(chosen)
        features.append(Feature(f"preference.algorithm {written}",
                                lambda c: chosen in c.algorithms.get("preference", ())))
    if spec.lora is not None:
        features.append(Feature("LoRA adapters (lora:)", lambda c: c.peft))
    if spec.task == "sft":
        if spec.sft.packing:
            features.append(Feature("packing (sft.packing: true)", lambda c: c.packing, "sft.packing", False,
                                    "the backend trains on one example per sequence"))
        else:
            features.append(Feature("unpacked examples (sft.packing: false)", lambda c: c.unpacked, "sft.packing",
                                    True, "the backend always packs examples into blocks of training.max_length "
                                    "tokens"))
        if spec.data_kind == "text":
            features.append(Feature("plain-text causal LM data (data.text)", lambda c: c.plain_text))
        elif spec.sft.completion_only_loss:
            features.append(Feature("completion-only loss (sft.completion_only_loss: true)",
                                    lambda c: c.completion_only_loss, "sft.completion_only_loss", False,
                                    "the backend trains on every token, the prompt included"))
    if spec.training.precision != "fp32":
        features.append(Feature(f"precision {spec.training.precision!r}",
                                lambda c: spec.training.precision in c.precisions))
    if spec.training.gradient_checkpointing:
        features.append(Feature("gradient checkpointing", lambda c: c.gradient_checkpointing))
    return features


def check_backend_options(spec: Spec, registry: Registry) -> None:
    """Every ``backend_options`` key must name a registered backend (a typo would be silently ignored)."""
    unknown = sorted(set(spec.backend_options) - set(registry.backends))
    if unknown:
        known = ", ".join(registry.names())
        raise SpecError([(f"backend_options.{name}", f"no backend named {name!r} (registered: {known})")
                         for name in unknown], spec.source)


def _backends_with(feature: Feature, backend: Backend, registry: Registry | None) -> list[str]:
    others: list[str] = []
    for name, item in sorted((registry.backends if registry else {}).items()):
        if name == backend.name or not feature.supported(item.backend.capabilities):
            continue
        not_yet = checked_status(item.backend).kind == "not-implemented"
        others.append(f"{name} (not implemented yet)" if not_yet else name)
    return others


def _set(spec: Spec, setting: str, value: Any) -> Spec:
    """A copy of ``spec`` with the dotted ``setting`` replaced, still counted as a default (not user-written)."""
    head, _, tail = setting.partition(".")
    if not tail:
        raise ValueError(f"adaptable settings live in a block: {setting!r}")
    block = getattr(spec, head)
    new_block = block.model_copy(update={tail: value})
    new_block.__pydantic_fields_set__.discard(tail)
    new = spec.model_copy(update={head: new_block})
    new.__pydantic_fields_set__ = set(spec.model_fields_set)
    new._base_dir, new._source = spec.base_dir, spec.source
    return new


def adapt_to_backend(spec: Spec, backend: Backend,
                     registry: Registry | None = None) -> tuple[Spec, list[Difference]]:
    """``spec`` as ``backend`` will run it, and the defaults it had to adapt.

    Raises UnsupportedFeature, naming the backends that have it, for a feature the backend lacks that the
    user asked for (or that has no fallback); SpecError for backend_options naming no backend.
    """
    if registry is not None:
        check_backend_options(spec, registry)
    differences: list[Difference] = []
    for _ in range(4):  # an adaptation can change which features are requested; this settles in one or two
        for feature in requested_features(spec):
            if feature.supported(backend.capabilities):
                continue
            adaptable = feature.setting is not None and feature.fallback is not _NO_FALLBACK
            if not adaptable or user_wrote(spec, feature.setting):
                raise UnsupportedFeature(backend.name, feature.label, _backends_with(feature, backend, registry))
            default = _get(spec, feature.setting)
            spec = _set(spec, feature.setting, feature.fallback)
            differences.append(Difference(feature.setting, default, feature.fallback, feature.why))
            break
        else:
            return spec, differences
    raise UnsupportedFeature(backend.name, "a combination of adapted settings")


def _get(spec: Spec, setting: str) -> Any:
    node: Any = spec
    for part in setting.split("."):
        node = getattr(node, part)
    return node


def check_support(spec: Spec, backend: Backend, registry: Registry | None = None) -> None:
    """Raise UnsupportedFeature naming the first feature ``backend`` lacks (and cannot adapt) and the backends
    that have it."""
    adapt_to_backend(spec, backend, registry)
