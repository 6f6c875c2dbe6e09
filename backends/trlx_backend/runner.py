"""Running trlx.train for a TrainingJob. Imported only in an interpreter that has trlx."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

from tunebridge.backend import BackendOutput, TrainingJob
from tunebridge.hf_compat import make_tokenizer_portable

from .adapters import StepMetrics, make_reward_fn, ppo_prompts, sft_samples
from .config import algorithm_of, native_config, total_steps_of


def _config(job: TrainingJob) -> tuple[Any, dict[str, Any]]:
    from trlx.data.configs import TRLConfig

    if job.plan is not None:  # computed once by the core, carried in the job
        native = copy.deepcopy(job.plan.native_config)
        native["TRLConfig"]["train"]["checkpoint_dir"] = str(job.work_dir / "checkpoints")
        if native["TRLConfig"]["train"].get("logging_dir"):
            native["TRLConfig"]["train"]["logging_dir"] = str(job.output_dir / "logs" / "tensorboard")
    else:
        native, _, _ = native_config(job.spec, job.examples, job.work_dir)
    config = native["TRLConfig"]
    config["model"]["model_path"] = str(loadable_base(job))
    config["tokenizer"]["tokenizer_path"] = str(job.tokenizer_path)
    return TRLConfig.from_dict(config), native


def loadable_base(job: TrainingJob) -> Path:
    """The starting model as trlx loads it. trlx's PPO/ILQL wrappers read ``<model>/pytorch_model.bin`` by name
    (and try the Hub without it); a folder saved by another backend holds only ``model.safetensors``. Then a
    view of the folder (its files linked) with that file added goes into ``work/base-model``; the user's folder
    is not touched."""
    source = Path(job.model_path)
    if algorithm_of(job.spec) == "sft" or not source.is_dir() or (source / "pytorch_model.bin").is_file():
        return source
    import torch
    from transformers import AutoModelForCausalLM

    view = job.work_dir / "base-model"
    view.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if not (view / item.name).exists():
            (view / item.name).symlink_to(item.resolve())
    model = AutoModelForCausalLM.from_pretrained(str(source))
    torch.save(model.state_dict(), view / "pytorch_model.bin")
    print(f"tunebridge: {source} has no pytorch_model.bin (trlx loads it by name): prepared {view}", flush=True)
    return view


def _capture_metrics(job: TrainingJob) -> tuple[StepMetrics, Any]:
    """Route trlx's ``accelerator.log(stats, step)`` calls (made even with tracker None) to the reporter."""
    from accelerate import Accelerator

    metrics = StepMetrics(job.reporter.log)
    original = Accelerator.log

    def log(self, values, step=None, log_kwargs=None):
        metrics.add(step, values)
        return original(self, values, step=step, log_kwargs=log_kwargs or {})

    Accelerator.log = log
    return metrics, original


def _follow_decorated_forward() -> None:
    """trlx filters forward() keyword arguments with ``inspect.getfullargspec``, which does not see through the
    decorators transformers 4.5x puts on Llama's forward (only ``self`` is left, so ``input_ids`` is dropped).
    Re-read the argument names with ``inspect.signature`` (which follows ``__wrapped__``) when that happened.
    A runtime shim in tunebridge's backend; trlx's own files are untouched."""
    import inspect

    from trlx.models.modeling_base import PreTrainedModelWrapper

    if getattr(PreTrainedModelWrapper, "_tunebridge_shim", False):
        return
    original = PreTrainedModelWrapper.get_compatible_forward_kwargs

    def get_compatible_forward_kwargs(self, **kwargs):
        if "input_ids" not in self.forward_kwargs:
            self.forward_kwargs = list(inspect.signature(self.base_model.forward).parameters)
        return original(self, **kwargs)

    PreTrainedModelWrapper.get_compatible_forward_kwargs = get_compatible_forward_kwargs
    PreTrainedModelWrapper._tunebridge_shim = True


def _sft_loss_in_train_mode() -> None:
    """trlx computes each loss with the model in eval mode (``learn`` calls ``model.train()`` only around the
    backward pass), so the model's dropout never applies and ``training.seed`` changes nothing. SFT on every
    other backend trains with dropout on: run trlx's SFT loss in train mode too (``learn`` puts the model back
    in eval mode after the backward pass). PPO and ILQL keep trlx's behaviour; their plan says so. A runtime
    shim in tunebridge's backend; trlx's own files are untouched."""
    from trlx.trainer.accelerate_sft_trainer import AccelerateSFTTrainer

    if getattr(AccelerateSFTTrainer, "_tunebridge_train_mode", False):
        return
    original = AccelerateSFTTrainer.loss

    def loss(self, batch):
        self.model.train()
        return original(self, batch)

    AccelerateSFTTrainer.loss = loss
    AccelerateSFTTrainer._tunebridge_train_mode = True


def train(job: TrainingJob) -> BackendOutput:
    """Train with trlx, save the model so it reloads (and check that it does), report metrics."""
    import trlx
    from accelerate import Accelerator

    os.environ.setdefault("WANDB_MODE", "disabled")
    _follow_decorated_forward()
    _sft_loss_in_train_mode()
    algorithm = algorithm_of(job.spec)
    config, native = _config(job)
    total = total_steps_of(job.spec, job.examples)
    job.reporter.set_total_steps(total)
    metrics, original_log = _capture_metrics(job)
    from transformers import AutoTokenizer

    eos = AutoTokenizer.from_pretrained(str(job.tokenizer_path)).eos_token
    try:
        if algorithm == "sft":
            trainer = trlx.train(samples=sft_samples(job.examples, eos), config=config)
        elif algorithm == "ilql":
            samples = sft_samples(job.examples, eos)
            rewards = [float(ex["reward"]) for ex in job.examples.train]
            trainer = trlx.train(samples=samples, rewards=rewards, config=config)
        else:
            from tunebridge.rewards import load_rewards

            batch = config.train.batch_size
            trainer = trlx.train(reward_fn=make_reward_fn(load_rewards(job.spec), eos),
                                 prompts=ppo_prompts(job.examples.train), eval_prompts=ppo_prompts(
                                     job.examples.train[:batch]), config=config)
    finally:
        Accelerator.log = original_log
        metrics.flush()
    steps = int(trainer.iter_count)
    losses = [r["loss"] for r in job.reporter.records if r.get("loss") is not None]
    summary: dict[str, Any] = {"global_step": steps}
    if losses:  # trlx reports no run-level loss; TRL's train_loss is the mean of the step losses too
        summary["train_loss"] = sum(losses) / len(losses)
    model_format = save_model(trainer, job)
    native["TRLConfig"]["train"]["checkpoint_dir"] = "work/checkpoints (in the output folder)"
    return BackendOutput(metrics=summary, native_config=native, model_format=model_format, global_step=steps)


def save_model(trainer: Any, job: TrainingJob) -> str:
    """Save the trained causal LM so that ``AutoModelForCausalLM.from_pretrained`` restores it exactly.

    trlx's PPO/ILQL models wrap the causal LM (with value/Q heads): saving the wrapper writes keys that
    from_pretrained silently ignores, so the wrapped base model is saved instead, then reloaded and compared.
    """
    import torch
    from transformers import AutoModelForCausalLM, PreTrainedModel

    model = trainer.accelerator.unwrap_model(trainer.model)
    if not isinstance(model, PreTrainedModel) and hasattr(model, "base_model"):
        model = model.base_model
    fmt = "full"  # no LoRA on trlx: trlx 0.7 imports a peft function that current peft releases removed
    model.config.use_cache = True  # PPO loads with use_cache=False (hydra branch); the saved model should not
    model.save_pretrained(job.model_dir)
    torch.save(model.state_dict(), job.model_dir / "pytorch_model.bin")  # so trlx's PPO/ILQL can start from it
    trainer.tokenizer.save_pretrained(job.model_dir)
    make_tokenizer_portable(job.model_dir)
    _check_reload(model, Path(job.model_dir), torch, AutoModelForCausalLM)
    return fmt


def _check_reload(model: Any, folder: Path, torch: Any, auto_cls: Any) -> None:
    ids = torch.tensor([[1, 2, 3, 4, 5]]) % model.config.vocab_size
    model.eval()
    reloaded = auto_cls.from_pretrained(folder).eval()
    with torch.no_grad():
        diff = (model(input_ids=ids).logits - reloaded(input_ids=ids).logits).abs().max().item()
    if diff > 1e-4:
        raise RuntimeError(f"the saved model in {folder} does not reload with the trained weights (max logit "
                           f"difference {diff:.3g})")
