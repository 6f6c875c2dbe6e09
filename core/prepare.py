"""From validated examples to what training needs: the starting model and tokenizer folders (a builtin model
is built), the final examples (chat rendered with the tokenizer, token-length rules applied), and the paths an
``--overwrite`` must never delete. One place for a run, ``plan``, ``export`` and ``compare``."""

from __future__ import annotations

from pathlib import Path

from .errors import SpecError, TunebridgeError
from .examples import Examples, prepare_examples
from .lengths import apply_length_rules
from .spec import Spec


def corpus(examples: Examples) -> list[str]:
    """Text to train the builtin tokenizer on: every rendered example (message contents for chat)."""
    texts: list[str] = []
    for ex in examples.train + examples.eval:
        if "messages" in ex:
            texts += [m["content"] for m in ex["messages"]]
        else:
            texts += [ex[k] for k in ("prompt", "completion", "text", "chosen", "rejected") if ex.get(k)]
    return texts


def resolve_model(spec: Spec, examples: Examples, notes: list[str] | None = None) -> tuple[Path, Path]:
    """The starting model folder (or hub id) and the tokenizer folder; a builtin model is built (cached, checked
    against its manifest once per process). ``notes`` receives what the user should know (a damaged cache
    entry rebuilt)."""
    model = spec.model
    if model.builtin:
        from .builtin_models import build_builtin

        path = build_builtin(model.builtin, corpus(examples), seed=spec.training.seed, notes=notes)
    else:
        local = spec.resolve_path(model.path or "")
        path = local if local.exists() else Path(model.path or "")
    tokenizer = spec.resolve_path(model.tokenizer) if model.tokenizer else path
    return path, tokenizer


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


def finish_examples(spec: Spec, examples: Examples, tokenizer_path: Path) -> Examples:
    """Render chat data with the tokenizer's template; apply the token-length rules (counted, dropped, cut)."""
    tok = load_tokenizer(spec, tokenizer_path)
    if examples.kind == "chat":
        if not tok.chat_template:
            raise TunebridgeError(f"the tokenizer at {tokenizer_path} has no chat template (data.template: chat)")

        def chat(messages: list, add_generation_prompt: bool) -> str:
            return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)

        examples = prepare_examples(spec, chat=chat)
    finished = apply_length_rules(examples, tok, spec)
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
