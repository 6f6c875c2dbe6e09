"""From validated examples to what training needs: the starting model and tokenizer folders (a builtin model
is built), the final examples (chat rendered with the tokenizer, token-length rules applied), and the paths an
``--overwrite`` must never delete. One place for a run, ``plan``, ``export`` and ``compare``."""

from __future__ import annotations

import random
from pathlib import Path

from .errors import SpecError, TunebridgeError
from .examples import Examples, Preparing, prepare_examples
from .lengths import apply_length_rules
from .spec import Spec

SAMPLE_SEED = 0  # the builtin tokenizer's sample of a large corpus does not move with training.seed


def sample_indices(n: int, limit: int | None) -> list[int] | None:
    """Which of ``n`` examples a bounded corpus reads: all (None) up to ``limit``, else a seeded sample of
    ``limit`` of them, in their order."""
    if limit is None or n <= limit:
        return None
    return sorted(random.Random(SAMPLE_SEED).sample(range(n), limit))


def corpus(examples: Examples, limit: int | None = None) -> list[str]:
    """Text to train the builtin tokenizer on: the rendered examples (message contents for chat); with ``limit``,
    a seeded sample of at most ``limit`` examples (train and eval together), so the cost stays bounded."""
    everything = examples.train + examples.eval
    picked = sample_indices(len(everything), limit)
    chosen = everything if picked is None else [everything[i] for i in picked]
    texts: list[str] = []
    for ex in chosen:
        if "messages" in ex:
            texts += [m["content"] for m in ex["messages"]]
        else:
            texts += [ex[k] for k in ("prompt", "completion", "text", "chosen", "rejected") if ex.get(k)]
    return texts


def resolve_model(spec: Spec, examples: Examples, progress: Preparing | None = None,
                  notes: list[str] | None = None) -> tuple[Path, Path]:
    """The starting model folder (or hub id) and the tokenizer folder; a builtin model is built (cached, checked
    against its manifest once per process) with a tokenizer trained on a bounded sample of the examples
    (``builtin_models.TOKENIZER_SAMPLE``). ``notes`` receives what the user should know (a damaged cache entry
    rebuilt)."""
    model = spec.model
    if model.builtin:
        from .builtin_models import TOKENIZER_SAMPLE, build_builtin, sample_note

        total = len(examples.train) + len(examples.eval)
        sampled = total > TOKENIZER_SAMPLE
        if progress is not None:
            progress("building the builtin model", min(total, TOKENIZER_SAMPLE), total)
        path = build_builtin(model.builtin, corpus(examples, TOKENIZER_SAMPLE), seed=spec.training.seed,
                             sample=sample_note(TOKENIZER_SAMPLE, total, SAMPLE_SEED) if sampled else None,
                             notes=notes)
    else:
        local = spec.resolve_path(model.path or "")
        path = local if local.exists() else Path(model.path or "")
    tokenizer = spec.resolve_path(model.tokenizer) if model.tokenizer else path
    return path, tokenizer


def check_model_source(spec: Spec) -> None:
    """A model path written as a local path must exist (anything else is looked up as a hub id), and a local
    folder must hold a model (config.json) or a tokenizer: a SpecError naming the field, before any run folder."""
    for field in ("path", "tokenizer"):
        value = getattr(spec.model, field)
        if not value:
            continue
        local = spec.resolve_path(value)
        looks_local = value.startswith((".", "/", "~")) or value.count("/") > 1 or "\\" in value
        if looks_local and not local.exists():
            raise SpecError([(f"model.{field}", f"no such folder: {local}")], spec.source)
        if local.exists():
            problem = _not_a_model(local) if field == "path" else _not_a_tokenizer(local)
            if problem:
                raise SpecError([(f"model.{field}", problem)], spec.source)


def _not_a_model(folder: Path) -> str | None:
    if not folder.is_dir():
        return f"{folder} is a file; give the folder holding the model (config.json and its weights)"
    if not (folder / "config.json").is_file() and not (folder / "adapter_config.json").is_file():
        return (f"{folder} is not a model folder (it has no config.json); give a folder saved with "
                "save_pretrained, e.g. a run's model/")
    return None


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json", "vocab.txt")


def _not_a_tokenizer(folder: Path) -> str | None:
    if not folder.is_dir():
        return f"{folder} is a file; give the folder holding the tokenizer (tokenizer.json or tokenizer_config.json)"
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return f"{folder} holds no tokenizer (none of {', '.join(TOKENIZER_FILES)})"
    return None


def load_tokenizer(spec: Spec, tokenizer_path: Path) -> object:
    """The run's tokenizer; a folder it cannot load from is a SpecError naming the field."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(tokenizer_path))
    except Exception as exc:  # a folder without tokenizer files, a broken tokenizer.json, an unknown hub id
        field = "model.tokenizer" if spec.model.tokenizer else "model.path"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise SpecError([(field, f"cannot load a tokenizer from {tokenizer_path}: {type(exc).__name__}: {first}")],
                        spec.source) from None


def finish_examples(spec: Spec, examples: Examples, tokenizer_path: Path,
                    progress: Preparing | None = None) -> Examples:
    """Render chat data with the tokenizer's template; tokenise sft examples (in batches) and apply the
    token-length rules (counted, dropped, cut)."""
    tok = load_tokenizer(spec, tokenizer_path)
    if examples.kind == "chat":
        if not tok.chat_template:
            raise TunebridgeError(f"the tokenizer at {tokenizer_path} has no chat template (data.template: chat)")

        def chat(messages: list, add_generation_prompt: bool) -> str:
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

        examples = prepare_examples(spec, chat=chat, progress=progress, source=examples.source)
    finished = apply_length_rules(examples, tok, spec, progress)
    finished.tokenizer_path = tokenizer_path
    return finished


def protected_paths(spec: Spec) -> list[Path]:
    """What --overwrite must never delete: the data, the model and tokenizer, the spec, the model cache."""
    from .builtin_models import cache_root

    paths = [spec.resolve_path(spec.data.path), cache_root()]
    paths += [spec.resolve_path(v) for v in (spec.model.path, spec.model.tokenizer) if v]
    if spec.source:
        paths.append(Path(spec.source))
    return paths
