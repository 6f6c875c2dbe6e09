"""Checking a spec against a backend's capabilities, before any data is read or model loaded."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .backend import Backend, Capabilities
from .errors import SpecError, UnsupportedFeature
from .spec import Spec

if TYPE_CHECKING:
    from .plugins import Registry

Feature = tuple[str, Callable[[Capabilities], bool]]


def requested_features(spec: Spec) -> list[Feature]:
    """The features ``spec`` needs, each with a test on a backend's capabilities."""
    features: list[Feature] = [(f"task {spec.task!r}", lambda c: spec.task in c.tasks)]
    if spec.task == "rl" and spec.rl.algorithm != "auto":
        algorithm = spec.rl.algorithm
        features.append((f"rl.algorithm {algorithm!r}", lambda c: algorithm in c.algorithms.get("rl", ())))
    if spec.lora is not None:
        features.append(("LoRA adapters (lora:)", lambda c: c.peft))
    if spec.task == "sft":
        if spec.sft.packing:
            features.append(("packing (sft.packing: true)", lambda c: c.packing))
        if spec.data_kind == "text":
            features.append(("plain-text causal LM data (data.text)", lambda c: c.plain_text))
        elif spec.sft.completion_only_loss:
            features.append(("completion-only loss (sft.completion_only_loss: true)",
                             lambda c: c.completion_only_loss))
    if spec.training.precision != "fp32":
        features.append((f"precision {spec.training.precision!r}",
                         lambda c: spec.training.precision in c.precisions))
    if spec.training.gradient_checkpointing:
        features.append(("gradient checkpointing", lambda c: c.gradient_checkpointing))
    return features


def check_backend_options(spec: Spec, registry: Registry) -> None:
    """Every ``backend_options`` key must name a registered backend (a typo would be silently ignored)."""
    unknown = sorted(set(spec.backend_options) - set(registry.backends))
    if unknown:
        known = ", ".join(registry.names())
        raise SpecError([(f"backend_options.{name}", f"no backend named {name!r} (registered: {known})")
                         for name in unknown], spec.source)


def check_support(spec: Spec, backend: Backend, registry: Registry | None = None) -> None:
    """Raise UnsupportedFeature naming the first feature ``backend`` lacks and the backends that have it."""
    if registry is not None:
        check_backend_options(spec, registry)
    for label, supported in requested_features(spec):
        if supported(backend.capabilities):
            continue
        others: list[str] = []
        if registry is not None:
            for name, item in sorted(registry.backends.items()):
                if name == backend.name or not supported(item.backend.capabilities):
                    continue
                not_yet = item.backend.check().kind == "not-implemented"
                others.append(f"{name} (not implemented yet)" if not_yet else name)
        raise UnsupportedFeature(backend.name, label, others)
