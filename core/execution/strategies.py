"""What ``launch.strategy`` means for the processes torchrun starts: the accelerate configuration TRL reads.

``ddp`` needs nothing (the trainer wraps the model in DistributedDataParallel when torchrun starts it). ``fsdp``
(FSDP2) and ``deepspeed-zero2`` / ``deepspeed-zero3`` are written as the accelerate config file TRL ships for
them (``accelerate launch --config_file``) and passed to every rank through the environment variables that
file stands for (accelerate reads them when the trainer builds its Accelerator). Pure functions: nothing here
imports torch or accelerate. FSDP and DeepSpeed need GPUs; on a CPU machine only these files can be checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

GPU_ONLY = ("fsdp", "deepspeed-zero2", "deepspeed-zero3")


def accelerate_config(strategy: str, nproc_per_node: int, nnodes: int, precision: str) -> dict[str, Any]:
    """The accelerate config (as ``accelerate launch --config_file`` reads it) for ``strategy``."""
    mixed = precision if precision in ("bf16", "fp16") else "no"
    config: dict[str, Any] = {"compute_environment": "LOCAL_MACHINE", "debug": False, "machine_rank": 0,
                              "main_training_function": "main", "mixed_precision": mixed,
                              "num_machines": nnodes, "num_processes": nproc_per_node * nnodes,
                              "rdzv_backend": "static", "same_network": True, "use_cpu": False}
    if strategy == "ddp":
        config["distributed_type"] = "MULTI_GPU"
    elif strategy == "fsdp":
        config["distributed_type"] = "FSDP"
        config["fsdp_config"] = {"fsdp_version": 2, "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
                                 "fsdp_cpu_ram_efficient_loading": True, "fsdp_offload_params": False,
                                 "fsdp_reshard_after_forward": True, "fsdp_state_dict_type": "FULL_STATE_DICT"}
    elif strategy in ("deepspeed-zero2", "deepspeed-zero3"):
        stage = int(strategy[-1])
        config["distributed_type"] = "DEEPSPEED"
        config["deepspeed_config"] = {"deepspeed_multinode_launcher": "standard", "offload_optimizer_device": "none",
                                      "offload_param_device": "none", "zero3_init_flag": stage == 3,
                                      "zero3_save_16bit_model": stage == 3, "zero_stage": stage}
    else:
        raise ValueError(f"unknown launch.strategy {strategy!r}")
    return config


def strategy_environment(config: dict[str, Any]) -> dict[str, str]:
    """The environment variables that ``accelerate launch --config_file`` sets for ``config`` (what each rank's
    Accelerator reads)."""
    env: dict[str, str] = {}
    if config["mixed_precision"] != "no":
        env["ACCELERATE_MIXED_PRECISION"] = config["mixed_precision"]
    if config["distributed_type"] == "FSDP":
        fsdp = config["fsdp_config"]
        env.update({"ACCELERATE_USE_FSDP": "true", "FSDP_VERSION": str(fsdp["fsdp_version"]),
                    "FSDP_AUTO_WRAP_POLICY": fsdp["fsdp_auto_wrap_policy"],
                    "FSDP_CPU_RAM_EFFICIENT_LOADING": str(fsdp["fsdp_cpu_ram_efficient_loading"]).lower(),
                    "FSDP_OFFLOAD_PARAMS": str(fsdp["fsdp_offload_params"]).lower(),
                    "FSDP_RESHARD_AFTER_FORWARD": str(fsdp["fsdp_reshard_after_forward"]).lower(),
                    "FSDP_STATE_DICT_TYPE": fsdp["fsdp_state_dict_type"]})
    elif config["distributed_type"] == "DEEPSPEED":
        ds = config["deepspeed_config"]
        env.update({"ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": str(ds["zero_stage"]),
                    "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": ds["offload_optimizer_device"],
                    "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE": ds["offload_param_device"],
                    "ACCELERATE_DEEPSPEED_ZERO3_INIT": str(ds["zero3_init_flag"]).lower(),
                    "ACCELERATE_DEEPSPEED_ZERO3_SAVE_16BIT_MODEL": str(ds["zero3_save_16bit_model"]).lower()})
    return env


def write_accelerate_config(config: dict[str, Any], folder: Path) -> Path:
    """Write ``config`` as ``accelerate_config.yaml`` into ``folder`` (kept with the run, for the record and for
    ``accelerate launch --config_file``); returns its path."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "accelerate_config.yaml"
    path.write_text(yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=True), encoding="utf-8")
    return path
