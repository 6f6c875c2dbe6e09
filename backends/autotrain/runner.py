"""Running an AutoTrain project for a TrainingJob and collecting the result in tunebridge's layout."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tunebridge.backend import BackendOutput, FrameworkCommand, TrainingJob
from tunebridge.hf_compat import make_tokenizer_portable
from tunebridge.progress import preference_names

from . import launch
from .config import autotrain_config, base_model_ref
from .export import eos_token, write_project
from .results import NOT_MODEL, LogFollower, global_step_from_events, judge, model_files

LOG_FILE = "autotrain.log"


def command(job: TrainingJob, python: Path) -> FrameworkCommand:
    """Write the project into ``job.work_dir/autotrain``; the command that runs it; how its result is collected."""
    folder = job.work_dir / "autotrain"
    project = autotrain_config(job.spec, job.examples, base_model_ref(job.model_path))
    write_project(project, job.examples, folder, eos_token(job.tokenizer_path))
    follower = LogFollower(logging_steps=int(project.config["params"]["logging_steps"]))
    job.reporter.total_steps = None  # packing and whole epochs: AutoTrain's own count, read from its log
    preference = job.spec.task == "preference"  # trl 0.13's rewards/chosen ... in the neutral names

    def on_line(line: str) -> None:
        known = follower.total_steps
        record = follower.feed(line)
        if follower.total_steps != known and follower.total_steps:
            job.reporter.set_total_steps(follower.total_steps)
        if record is not None:
            logged = {k: v for k, v in record.items() if k != "step"}
            job.reporter.log(record["step"], preference_names(logged) if preference else logged)

    def finish(returncode: int, log_path: Path) -> BackendOutput:
        project_dir = folder / project.config["project_name"]
        judge(project_dir, follower, returncode, log_path)
        scalars = launch.read_scalars(python, project_dir / "runs")
        # 0 is a real answer (an epoch too short for one accumulation makes no step): only None means unknown.
        found = [global_step_from_events(scalars), follower.total_steps,
                 follower.records[-1]["step"] if follower.records else None]
        global_step = next((n for n in found if n is not None), 0)
        if "tensorboard" in job.spec.training.report_to and (project_dir / "runs").is_dir():
            from tunebridge.trackers import tensorboard_dir

            shutil.copytree(project_dir / "runs", tensorboard_dir(job.output_dir), dirs_exist_ok=True)
        model_format = _collect_model(project_dir, job.model_dir, job.spec.lora)
        native = {"autotrain_config": project.config, "autotrain_log": LOG_FILE, "work_folder": "work/autotrain",
                  "environment": launch.environment_versions(python)}
        return BackendOutput(metrics=_metrics(follower, global_step), native_config=native,
                             model_format=model_format, global_step=global_step)

    argv, env = launch.autotrain_command(python, folder, seed=job.spec.training.seed)
    return FrameworkCommand(argv=argv, cwd=folder, env=env, log_name=LOG_FILE, on_line=on_line, finish=finish)


def _collect_model(project_dir: Path, model_dir: Path, lora: Any) -> str:
    """Move the saved model (weights, config, tokenizer) out of AutoTrain's project folder."""
    found = model_files(project_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    for item in project_dir.iterdir():
        if item.name in NOT_MODEL or item.name.startswith("checkpoint-"):
            continue
        shutil.move(str(item), model_dir / item.name)
    shutil.rmtree(project_dir / "autotrain-data", ignore_errors=True)  # a copy of data/ in Arrow format
    make_tokenizer_portable(model_dir)
    if found == "adapter":
        return "adapter"
    return "merged" if lora is not None else "full"


def _metrics(follower: LogFollower, global_step: int) -> dict[str, Any]:
    metrics: dict[str, Any] = dict(follower.summary)
    metrics["global_step"] = global_step
    return metrics
