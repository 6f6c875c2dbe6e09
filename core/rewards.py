"""Rewards for the rl task, in one neutral signature that every backend adapts:

    reward(prompts: list[str], completions: list[str], **columns) -> list[float]

``columns`` holds the other dataset columns, one list per column, aligned with ``prompts``. A reward
model folder is wrapped into the same signature. Functions are referenced as ``"pkg.module:function"``;
a module beside the spec file is found too.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import SpecError, TunebridgeError
from .spec import RewardSource, Spec

RewardFunction = Callable[..., Sequence[float]]


class RewardError(TunebridgeError):
    """A reward function returned something unusable."""


def _local_module(top: str, search_dir: Path | None) -> Path | None:
    """The file or package of module ``top`` in the spec's folder, if there is one."""
    if search_dir is None:
        return None
    for candidate in (search_dir / f"{top}.py", search_dir / top / "__init__.py"):
        if candidate.is_file():
            return candidate.resolve()
    return None


def import_function(reference: str, search_dir: Path | None = None) -> Callable[..., Any]:
    """Import ``"pkg.module:function"``. A module beside the spec (in ``search_dir``) wins over an installed one
    of the same name, as for a script next to it. It is loaded under a private name, so it never replaces an
    installed module for the rest of the process, and two specs' modules of the same name stay apart."""
    module_name, _, attr = reference.partition(":")
    top = module_name.split(".")[0]
    local = _local_module(top, search_dir)
    if local is None:
        module = importlib.import_module(module_name)
    else:
        module = _import_local(local, top, module_name, search_dir)
    target: Any = module
    for part in attr.split("."):
        if not hasattr(target, part):
            where = f" ({local})" if local is not None else ""
            raise AttributeError(f"module {module_name!r}{where} has no {part!r}")
        target = getattr(target, part)
    if not callable(target):
        raise TypeError(f"{reference} is not callable")
    return target


def _import_local(local: Path, top: str, module_name: str, search_dir: Path | None) -> Any:
    import hashlib
    import importlib.util

    private = f"_tunebridge_spec_{hashlib.sha1(str(local).encode()).hexdigest()[:12]}_{top}"
    if private not in sys.modules:
        package = [str(local.parent)] if local.name == "__init__.py" else None
        spec = importlib.util.spec_from_file_location(private, local, submodule_search_locations=package)
        module = importlib.util.module_from_spec(spec)
        sys.modules[private] = module
        sys.path.insert(0, str(search_dir))  # so that it can import its neighbours
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[private]
            raise
        finally:
            sys.path.remove(str(search_dir))
    return importlib.import_module(private + module_name[len(top):])


class NeutralReward:
    """A reward in the neutral signature that checks what it returns; ``name`` labels its metrics."""

    def __init__(self, fn: RewardFunction, name: str):
        self.fn = fn
        self.name = name
        self.__name__ = name

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        values = self.fn(prompts, completions, **columns)
        try:
            values = [float("nan") if v is None else float(v) for v in values]
        except (TypeError, ValueError):
            raise RewardError(f"reward {self.name!r} must return a list of numbers, got {values!r:.200}") from None
        if len(values) != len(completions):
            raise RewardError(f"reward {self.name!r} returned {len(values)} values for {len(completions)} completions")
        if all(math.isnan(v) for v in values):
            raise RewardError(f"reward {self.name!r} returned no number (all None/NaN)")
        return values


class RewardModelScorer:
    """Scores prompt + completion with a sequence-classification reward model (output 0 of its head)."""

    def __init__(self, path: Path, batch_size: int = 16):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(path))
        self.model = AutoModelForSequenceClassification.from_pretrained(str(path)).eval()
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.batch_size = batch_size

    def __call__(self, prompts: list[str], completions: list[str], **columns: Any) -> list[float]:
        scores: list[float] = []
        eos = self.tokenizer.eos_token or ""
        # Scored as the reward model was trained: prompt + answer + EOS.
        texts = [p + c + (eos if eos and not c.endswith(eos) else "")
                 for p, c in zip(prompts, completions, strict=True)]
        for start in range(0, len(texts), self.batch_size):
            batch = self.tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                   truncation=True)
            with self.torch.no_grad():
                logits = self.model(**batch).logits
            scores += logits[:, 0].float().tolist()
        return scores


def reward_names(spec: Spec) -> list[str]:
    """One distinct name per reward, for metrics (TRL's ``rewards/<name>/mean``): a function's name, or a reward
    model's folder name (a run folder's ``model/`` is named after the run folder); repeats get ``_2``, ``_3``."""
    names: list[str] = []
    for source in spec.rl.reward:
        name = source.name
        if source.model is not None and name == "model":
            name = spec.resolve_path(source.model).resolve().parent.name or name
        base, n = name, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.append(name)
    return names


def _resolve(source: RewardSource, spec: Spec, index: int, load_models: bool) -> NeutralReward | None:
    field = f"rl.reward[{index}]"
    name = reward_names(spec)[index]
    if source.model is not None:
        path = spec.resolve_path(source.model)
        if not (path / "config.json").is_file():
            raise SpecError([(f"{field}.model", f"no reward model folder at {path} (config.json missing)")],
                            spec.source)
        return NeutralReward(RewardModelScorer(path), name) if load_models else None
    fn = source.function
    if isinstance(fn, str):
        try:
            fn = import_function(fn, spec.base_dir)
        except Exception as exc:
            raise SpecError([(f"{field}.function", f"cannot import {source.function!r}: "
                              f"{type(exc).__name__}: {exc}")], spec.source) from None
    return NeutralReward(fn, name)


def check_rewards(spec: Spec) -> None:
    """Import every reward function and check every reward model folder, without loading models."""
    for i, source in enumerate(spec.rl.reward):
        _resolve(source, spec, i, load_models=False)


def load_rewards(spec: Spec) -> list[tuple[NeutralReward, float]]:
    """The spec's rewards as (neutral reward, weight) pairs, reward models loaded."""
    pairs = []
    for i, source in enumerate(spec.rl.reward):
        reward = _resolve(source, spec, i, load_models=True)
        assert reward is not None
        pairs.append((reward, source.weight))
    return pairs
