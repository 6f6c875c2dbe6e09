"""Models tunebridge builds locally, so a first run needs no download: ``model: {builtin: tiny-llama}``
(or ``tiny-gpt2``, a GPT-2-architecture twin: trlx's PPO reference branch supports GPT-2 but not Llama).

The tokenizer is a byte-level BPE trained with ``tokenizers`` on the run's own text: every example up to
``TOKENIZER_SAMPLE`` (10,000) examples, and beyond that a sample of 10,000 of them drawn with a fixed seed
(``tunebridge.prepare.corpus``), so building it does not grow with the dataset. The model is a tiny causal LM
initialised from the seed. Both are cached by a hash of (corpus sample, what the sample is, seed, config), so
the same data and seed give the same folder. The folder loads on transformers 5 (TRL) and 4.x
(trlx, AutoTrain): ``tokenizer_class`` is ``PreTrainedTokenizerFast`` and ``pytorch_model.bin`` is written
beside the safetensors file.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from .errors import TunebridgeError
from .hf_compat import make_tokenizer_portable
from .progress import note

CACHE_ENV = "TUNEBRIDGE_CACHE_DIR"
BUILDER_VERSION = "1"
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ '<|assistant|>' }}{% generation %}"
    "{{ message['content'] + '</s>' }}{% endgeneration %}"
    "{% else %}{{ '<|' + message['role'] + '|>' + message['content'] + '</s>' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)
TINY_LLAMA = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 2048,
    "tie_word_embeddings": False,
}
TINY_GPT2 = {"n_layer": 2, "n_embd": 64, "n_head": 4, "n_positions": 2048, "n_inner": 128,
             "tie_word_embeddings": False}
ARCHITECTURES = {"tiny-llama": TINY_LLAMA, "tiny-gpt2": TINY_GPT2}
VOCAB_SIZE = 1024
TOKENIZER_SAMPLE = 10_000  # examples the builtin tokenizer is trained on, at most (a seeded sample beyond)
MANIFEST = "manifest.json"
_VERIFIED: set[Path] = set()  # entries checked against their manifest in this process


def sample_note(limit: int, total: int, seed: int) -> str:
    """How a sampled corpus was drawn (part of the cache key and of the model folder's record)."""
    return f"{limit} of {total} examples, sampled with seed {seed}"


def cache_root() -> Path:
    """Where built models are cached: ``$TUNEBRIDGE_CACHE_DIR`` or ``~/.cache/tunebridge``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "tunebridge"


def _key(corpus: list[str], seed: int, name: str, sample: str | None = None) -> str:
    h = hashlib.sha256()
    what = {"v": BUILDER_VERSION, "seed": seed, "cfg": ARCHITECTURES[name], "vocab": VOCAB_SIZE}
    if sample is not None:  # the whole corpus keeps the key it always had
        what["sample"] = sample
    h.update(json.dumps(what).encode())
    for line in corpus:
        h.update(line.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def build_tiny_llama(corpus: Iterable[str], seed: int = 42, cache_dir: Path | None = None) -> Path:
    """Build (or reuse from the cache) a tiny Llama model + tokenizer folder trained on ``corpus``."""
    return build_builtin("tiny-llama", corpus, seed, cache_dir)


def build_builtin(name: str, corpus: Iterable[str], seed: int = 42, cache_dir: Path | None = None,
                  sample: str | None = None, notes: list[str] | None = None) -> Path:
    """Build (or reuse from the cache) the builtin model ``name`` with a tokenizer trained on ``corpus``.

    ``sample`` says how ``corpus`` was drawn from a larger one (see ``sample_note``); it is part of the key.
    A cache entry is checked against its manifest (every file's size and sha256) the first time this process
    uses it; a damaged entry is rebuilt, and ``notes`` (and stderr) say so.
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"no builtin model {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    lines = [t for t in corpus if t and t.strip()]
    if not lines:
        raise ValueError("the builtin model needs some text to train its tokenizer on")
    root = cache_dir or cache_root()
    target = root / "builtin" / f"{name}-{_key(lines, seed, name, sample)}"
    if target in _VERIFIED:
        return target
    damage = check_entry(target) if target.exists() else "missing"
    if damage is None:
        _VERIFIED.add(target)
        return target
    try:
        root.joinpath("builtin").mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=root / "builtin"))
    except OSError as exc:
        raise TunebridgeError(f"cannot build the builtin model {name!r} in the cache {root}: "
                              f"{exc.strerror or exc} (set {CACHE_ENV} to a writable folder)") from None
    try:
        _write_tokenizer(lines, tmp)
        _write_model(tmp, seed, name)
        (tmp / "tunebridge_builtin.json").write_text(json.dumps(
            {"name": name, "seed": seed, "tokenizer_texts": len(lines), "sample": sample or "the whole corpus"}))
        write_manifest(tmp)
        _install(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise TunebridgeError(f"cannot build the builtin model {name!r} in the cache {root}: "
                              f"{exc.strerror or exc} (free some space or set {CACHE_ENV} to another folder)"
                              ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if damage != "missing":
        message = f"the cached builtin model {target} was damaged ({damage}); rebuilt it"
        note(message)
        if notes is not None:
            notes.append(message)
    _VERIFIED.add(target)
    return target


def _install(tmp: Path, target: Path) -> None:
    """Move a finished build into place; a damaged entry there is moved aside first, then deleted."""
    old = None
    if target.exists():
        old = target.with_name(f".damaged-{target.name}-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        try:
            target.rename(old)
        except FileNotFoundError:  # another process moved it first
            old = None
    try:
        tmp.rename(target)
    except OSError:  # another process finished first: keep its entry if it is sound
        if check_entry(target) is not None:
            raise
        shutil.rmtree(tmp, ignore_errors=True)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: Path) -> None:
    """Write ``manifest.json`` (each file's size and sha256) last, atomically."""
    files = {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": _digest(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}
    tmp = folder / f".{MANIFEST}.tmp"
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump({"builder": BUILDER_VERSION, "files": files}, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / MANIFEST)


def check_entry(folder: Path) -> str | None:
    """None when ``folder`` matches its manifest, else what is wrong (``model.safetensors: size 10, expected 20``)."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
    except FileNotFoundError:
        return f"no {MANIFEST}: built by an older tunebridge or cut off while building"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"{MANIFEST} unreadable: {exc}"
    if not files or "config.json" not in files:
        return f"{MANIFEST} lists no model"
    for rel, want in files.items():
        path = folder / rel
        try:
            size = path.stat().st_size
        except OSError:
            return f"{rel}: missing"
        if size != want.get("size"):
            return f"{rel}: size {size}, expected {want.get('size')}"
        try:
            if _digest(path) != want.get("sha256"):
                return f"{rel}: sha256 mismatch"
        except OSError as exc:
            return f"{rel}: unreadable ({exc.strerror or exc})"
    return None


def _write_tokenizer(lines: list[str], folder: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(lines, trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    hf_tok.chat_template = CHAT_TEMPLATE
    hf_tok.padding_side = "right"
    hf_tok.model_max_length = TINY_LLAMA["max_position_embeddings"]
    hf_tok.save_pretrained(folder)
    make_tokenizer_portable(folder)


def _write_model(folder: Path, seed: int, name: str) -> None:
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()

    tok = AutoTokenizer.from_pretrained(folder)
    ids = {"vocab_size": len(tok), "bos_token_id": tok.bos_token_id, "eos_token_id": tok.eos_token_id,
           "pad_token_id": tok.pad_token_id}
    torch.manual_seed(seed)
    if name == "tiny-gpt2":
        model = GPT2LMHeadModel(GPT2Config(**ids, **TINY_GPT2))
    else:
        model = LlamaForCausalLM(LlamaConfig(**ids, **TINY_LLAMA))
    model.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")  # trlx loads this file by name
