"""Check an AutoTrain config.yml with AutoTrain's own parser and parameter model, without training.

Runs inside the AutoTrain environment: ``python validate_config.py config.yml`` (from the project folder).
Prints ``OK <task> <trainer> <model> <data_path>``, or the error and exit status 1. Imports nothing from
tunebridge. ``llm_munge_data`` is not called: it would write the project folder.
"""

import os
import sys


def validate(path: str):
    """Parse ``path`` as ``autotrain --config`` does; returns the LLMTrainingParams (raises on any problem)."""
    from autotrain.backends.base import AVAILABLE_HARDWARE
    from autotrain.parser import AutoTrainConfigParser

    parser = AutoTrainConfigParser(path)
    if parser.backend not in AVAILABLE_HARDWARE:
        raise ValueError(f"invalid backend: {parser.backend}")
    params = parser.task_param_map[parser.task](**parser.parsed_config)
    if parser.task == "lm_training":
        found = [e for e in ("csv", "jsonl") if os.path.exists(f"{params.data_path}/{params.train_split}.{e}")]
        if not found:
            raise ValueError(f"no {params.train_split}.csv/.jsonl in {params.data_path}")
    return params


if __name__ == "__main__":
    try:
        p = validate(sys.argv[1])
    except Exception as exc:  # report every failure the same way
        print(f"INVALID {type(exc).__name__}: {exc}")
        sys.exit(1)
    print("OK", p.trainer, p.model, p.data_path, p.project_name)
