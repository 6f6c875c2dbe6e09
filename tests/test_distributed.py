"""One run on several processes: torchrun with the worker on every rank (tunebridge.execution.torchrun).

Real runs here are CPU DDP over gloo: two processes on one node, and two one-process "nodes" on loopback. Each
asserts the world size the trainer itself saw, so that no test can pass on a single process.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import tunebridge as tb
from tunebridge.cli import main
from tunebridge.execution import InProcess, Torchrun, executor_for
from tunebridge.execution.strategies import accelerate_config, strategy_environment, write_accelerate_config
from tunebridge.execution.torchrun import torchrun_command, torchrun_environment
from tunebridge.plugins import load_registry
from tunebridge.run import Run
from tunebridge.spec import LaunchSpec, parse_spec
from tunebridge.testing import contract_rows, sft_spec_dict, write_jsonl

import fake_backend

# --- the command and its environment (pure) -------------------------------------------------------------------


def test_one_node_is_a_standalone_rendezvous():
    cmd = torchrun_command("/env/python", LaunchSpec(nproc_per_node=2), ["-m", "tunebridge.worker", "/job"])
    assert cmd == ["/env/python", "-m", "torch.distributed.run", "--nproc-per-node", "2", "--standalone",
                   "--nnodes", "1", "-m", "tunebridge.worker", "/job"]


def test_several_nodes_meet_at_node_0_with_their_own_rank():
    launch = LaunchSpec(nproc_per_node=4, nnodes=2, node_rank=1, rdzv_endpoint="head.cluster:29500")
    cmd = torchrun_command("python", launch, ["-m", "tunebridge.worker", "/job"])
    assert cmd[cmd.index("--nnodes") + 1] == "2" and cmd[cmd.index("--node-rank") + 1] == "1"
    assert cmd[cmd.index("--master-addr") + 1] == "head.cluster" and cmd[cmd.index("--master-port") + 1] == "29500"
    assert "--standalone" not in cmd


def test_gloo_is_bound_to_loopback_only_when_the_run_stays_on_this_machine():
    one = torchrun_environment({}, LaunchSpec(nproc_per_node=2), {})
    assert one["GLOO_SOCKET_IFNAME"] == "lo" and one["TUNEBRIDGE_NODE_RANK"] == "0"
    local = torchrun_environment({}, LaunchSpec(nnodes=2, rdzv_endpoint="127.0.0.1:1234"), {})
    assert local["GLOO_SOCKET_IFNAME"] == "lo"
    remote = torchrun_environment({}, LaunchSpec(nnodes=2, node_rank=1, rdzv_endpoint="head:1234"), {})
    assert "GLOO_SOCKET_IFNAME" not in remote and remote["TUNEBRIDGE_NODE_RANK"] == "1"
    mine = torchrun_environment({"GLOO_SOCKET_IFNAME": "eth1"}, LaunchSpec(nproc_per_node=2), {})
    assert mine["GLOO_SOCKET_IFNAME"] == "eth1"


@pytest.mark.parametrize("strategy, kind, env_key", [
    ("fsdp", "FSDP", "ACCELERATE_USE_FSDP"),
    ("deepspeed-zero2", "DEEPSPEED", "ACCELERATE_USE_DEEPSPEED"),
    ("deepspeed-zero3", "DEEPSPEED", "ACCELERATE_USE_DEEPSPEED"),
])
def test_gpu_strategies_write_the_accelerate_config_and_its_environment(tmp_path, strategy, kind, env_key):
    """Only the generated files can be checked on a CPU machine (docs/distributed.md says so)."""
    config = accelerate_config(strategy, nproc_per_node=8, nnodes=2, precision="bf16")
    assert config["distributed_type"] == kind and config["num_processes"] == 16 and config["num_machines"] == 2
    assert config["mixed_precision"] == "bf16"
    env = strategy_environment(config)
    assert env[env_key] == "true" and env["ACCELERATE_MIXED_PRECISION"] == "bf16"
    if strategy == "fsdp":
        assert config["fsdp_config"]["fsdp_version"] == 2 and env["FSDP_VERSION"] == "2"
        assert env["FSDP_STATE_DICT_TYPE"] == "FULL_STATE_DICT"
    else:
        stage = int(strategy[-1])
        assert config["deepspeed_config"]["zero_stage"] == stage
        assert env["ACCELERATE_DEEPSPEED_ZERO_STAGE"] == str(stage)
        assert env["ACCELERATE_DEEPSPEED_ZERO3_INIT"] == str(stage == 3).lower()
    written = yaml.safe_load(write_accelerate_config(config, tmp_path).read_text())
    assert written == json.loads(json.dumps(config))
    with pytest.raises(ValueError, match="unknown launch.strategy"):
        accelerate_config("megatron", 1, 1, "fp32")


# --- the spec, the CLI flags and the plan -----------------------------------------------------------------------


@pytest.fixture
def rows(tmp_path):
    return write_jsonl(tmp_path / "rows.jsonl", contract_rows(16))


@pytest.mark.parametrize("launch, message", [
    ({"nnodes": 2, "node_rank": 2, "rdzv_endpoint": "h:1"}, "launch.node_rank: 2 is not below launch.nnodes"),
    ({"nnodes": 2}, "launch.rdzv_endpoint: several nodes need HOST:PORT"),
    ({"nnodes": 2, "rdzv_endpoint": "head"}, "launch.rdzv_endpoint: 'head' is not HOST:PORT"),
    ({"nproc_per_node": 0}, "launch.nproc_per_node"),
    ({"strategy": "megatron"}, "launch.strategy"),
])
def test_a_bad_launch_block_is_a_spec_error(rows, launch, message):
    with pytest.raises(tb.SpecError, match=message):
        parse_spec({**sft_spec_dict(rows, "trl"), "launch": launch})


def test_the_command_line_overrides_the_launch_block(rows, tmp_path, capsys):
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(yaml.safe_dump({**sft_spec_dict(rows, "trl"), "launch": {"nproc_per_node": 4}}))
    assert main(["plan", str(spec_file), "--json", "--nproc-per-node", "2"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["effective"]["world_size"] == 2 and plan["effective"]["effective_batch_size"] == 8
    assert any(n.startswith("torchrun: 2 process(es) per node") for n in plan["notes"])
    assert main(["plan", str(spec_file), "--nnodes", "2"]) == 1
    assert "launch.rdzv_endpoint" in capsys.readouterr().err


def test_the_plan_counts_steps_with_the_global_batch(rows):
    one = Run(parse_spec(sft_spec_dict(rows, "trl", max_steps=None, epochs=1, batch_size=2))).plan()
    two = Run(parse_spec(sft_spec_dict(rows, "trl", max_steps=None, epochs=1, batch_size=2)),
              launch={"nproc_per_node": 2}).plan()
    assert one.effective["world_size"] == 1 and two.effective["world_size"] == 2
    assert two.effective["effective_batch_size"] == 2 * one.effective["effective_batch_size"]
    assert one.optimizer_steps == -(-one.train_rows // 2) and two.optimizer_steps == -(-one.train_rows // 4)


def test_the_core_picks_the_executor(rows):
    registry = load_registry()
    spec = parse_spec(sft_spec_dict(rows, "trl"))
    assert isinstance(executor_for(registry.get("trl"), spec), InProcess)
    assert isinstance(executor_for(registry.get("trl"), spec.with_launch(nproc_per_node=2)), Torchrun)
    assert executor_for(registry.get("autotrain"), spec.with_launch(nproc_per_node=2)).kind == "framework-cli"


@pytest.mark.parametrize("backend", ["trlx", "autotrain"])
def test_a_backend_without_multi_process_training_refuses_a_launch(rows, tmp_path, backend):
    spec = parse_spec(sft_spec_dict(rows, backend))
    with pytest.raises(tb.UnsupportedFeature, match=r"training on 2 processes.*trl") as info:
        Run(spec, launch={"nproc_per_node": 2}).validate()
    assert "launch.nproc_per_node 1" in str(info.value)


def test_a_strategy_the_backend_lacks_is_refused_naming_it(rows, tmp_path, monkeypatch):
    from tunebridge.backends.trl.backend import TRLBackend

    monkeypatch.setattr(TRLBackend, "capabilities",
                        __import__("dataclasses").replace(TRLBackend.capabilities, distributed=frozenset({"ddp"})))
    with pytest.raises(tb.UnsupportedFeature, match="strategy fsdp"):
        Run(parse_spec(sft_spec_dict(rows, "trl")), launch={"nproc_per_node": 2, "strategy": "fsdp"}).validate()


def test_a_callable_reward_cannot_cross_to_the_ranks(tmp_path):
    data = write_jsonl(tmp_path / "p.jsonl", contract_rows(8))
    spec = parse_spec({"task": "rl", "model": {"builtin": "tiny-llama"}, "data": {"path": str(data)},
                       "rl": {"reward": lambda prompts, completions, **kw: [0.0] * len(completions),
                              "algorithm": "grpo"}})
    with pytest.raises(tb.UnsupportedFeature, match="a Python callable as rl.reward"):
        Run(spec, launch={"nproc_per_node": 2}).validate()


# --- a rank that fails or dies ----------------------------------------------------------------------------------

RANKED_BACKEND = '''
import os, shutil, signal, sys, time
from tunebridge.backend import Backend, BackendOutput, BackendStatus, Capabilities, Plan
from tunebridge.hookspecs import hookimpl

class Ranked(Backend):
    name = "ranked"
    capabilities = Capabilities(tasks=frozenset({"sft"}), completion_only_loss=True, distributed=frozenset({"ddp"}))

    def plan(self, spec, examples=None):
        return Plan(self.name, {"mode": spec.name})

    def train(self, job):
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        print(f"rank {rank} of {world} starting", flush=True)
        if rank == 1 and job.spec.name == "raise":
            raise ValueError("rank 1 ran out of luck")
        if rank == 1 and job.spec.name == "kill":
            print("rank 1 about to be killed", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        if job.spec.name == "alone":
            world = 1
        if job.spec.name in ("raise", "kill"):
            time.sleep(60)  # rank 0 waits: torchrun must stop it when rank 1 fails
        job.reporter.set_total_steps(2)
        for step in (1, 2):
            job.reporter.log(step, {"loss": 1.0 / step, "rank": rank})
        if rank == 0:
            shutil.copytree(job.model_path, job.model_dir)
        return BackendOutput({"global_step": 2}, {"ran": True}, global_step=2, world_size=world,
                             distributed_type="MULTI_CPU")

@hookimpl
def register_backends(register):
    register(Ranked)
'''


@pytest.fixture
def ranked(tmp_path, monkeypatch):
    pytest.importorskip("torch", reason="torchrun comes with torch: needs the [trl] extra")
    site = fake_backend.install_plugin(tmp_path / "site", "ranked_backend", RANKED_BACKEND)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("PYTHONPATH", str(site))
    return load_registry()


def ranked_spec(rows, mode):
    return parse_spec({**sft_spec_dict(rows, "ranked", max_steps=2), "name": mode, "launch": {"nproc_per_node": 2}})


def test_two_ranks_one_run_folder_written_by_rank_0(ranked, rows, tmp_path):
    result = Run(ranked_spec(rows, "ok"), registry=ranked).train(tmp_path / "out")
    assert result.world_size == 2 and [r["rank"] for r in result.log_history] == [0, 0]
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "logs", "metrics.jsonl", "model", "run.json",
                                                     "worker.log"]
    assert [p.name for p in (out / "logs").iterdir()] == ["rank-1.log"]
    assert "rank 1 of 2 starting" in (out / "logs" / "rank-1.log").read_text()
    assert "rank 0 of 2 starting" in (out / "worker.log").read_text()
    record = json.loads((out / "run.json").read_text())
    assert record["world_size"] == 2 and record["execution"]["executor"] == "torchrun"
    assert record["global_batch_size"] == 8 and record["spec"]["launch"]["nproc_per_node"] == 2


def test_a_rank_that_raises_stops_the_run_naming_it(ranked, rows, tmp_path):
    import time

    started = time.monotonic()
    with pytest.raises(tb.RunFailed, match=r"rank 1 of 2 \(ranked\) failed: ValueError: rank 1 ran out of luck") \
            as info:
        Run(ranked_spec(rows, "raise"), registry=ranked).train(tmp_path / "out")
    assert "rank-1.log" in str(info.value) and "rank 1 of 2 starting" in str(info.value)
    assert time.monotonic() - started < 55  # rank 0 did not sleep its minute out
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "failed"


def test_a_rank_that_is_killed_is_named_with_its_log(ranked, rows, tmp_path):
    with pytest.raises(tb.RunFailed, match=r"rank 1 of 2 \(ranked\) died") as info:
        Run(ranked_spec(rows, "kill"), registry=ranked).train(tmp_path / "out")
    assert "rank 1 about to be killed" in str(info.value)


def test_a_trainer_that_does_not_see_the_world_fails_the_run(ranked, rows, tmp_path):
    """Rank 0 says it trained alone (what accelerate does under torchrun without use_cpu on a CPU machine)."""
    with pytest.raises(tb.RunFailed, match="launched on 2 processes but 'ranked'.s trainer saw a world of 1"):
        Run(ranked_spec(rows, "alone"), registry=ranked).train(tmp_path / "out")
    assert json.loads((tmp_path / "out" / "run.json").read_text())["status"] == "failed"


# --- real DDP on CPU with TRL -----------------------------------------------------------------------------------


def _trl_ready():
    from tunebridge.plugins import get_registry

    status = get_registry().get("trl").check()
    if not status.ready:
        pytest.skip(f"needs the trl backend ready here: {status.describe()}")


def _losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
            if "loss" in json.loads(line)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    rows = write_jsonl(folder / "rows.jsonl", contract_rows(24))
    spec = sft_spec_dict(rows, "trl", max_steps=3, batch_size=4, logging_steps=1, max_length=64)
    spec["data"]["eval_fraction"] = 0  # every row trains: the same batches on one process and on two
    spec_file = folder / "one.yaml"
    spec_file.write_text(yaml.safe_dump(spec))
    two = {**spec, "training": {**spec["training"], "batch_size": 2}}
    two_file = folder / "two.yaml"
    two_file.write_text(yaml.safe_dump(two))
    return folder, spec_file, two_file


@pytest.fixture(scope="module")
def one_process(ddp_data):
    _trl_ready()
    folder, spec_file, _ = ddp_data
    out = folder / "one-process"
    assert main(["train", str(spec_file), "--output", str(out), "--quiet"]) == 0
    return out


def test_two_processes_with_half_the_batch_log_the_losses_of_one(ddp_data, one_process, capsys):
    folder, _, two_file = ddp_data
    out = folder / "two-processes"
    assert main(["train", str(two_file), "--output", str(out), "--quiet", "--nproc-per-node", "2"]) == 0
    assert "processes      2 (MULTI_CPU); global batch 4 per step" in capsys.readouterr().out
    record = json.loads((out / "run.json").read_text())
    assert record["world_size"] == 2 and record["distributed_type"] == "MULTI_CPU"
    assert record["global_step"] == 3 == json.loads((one_process / "run.json").read_text())["global_step"]
    assert _losses(out) == pytest.approx(_losses(one_process), rel=1e-3) and len(_losses(out)) == 3
    assert (out / "model" / "config.json").is_file() and (out / "logs" / "rank-1.log").is_file()


def test_two_nodes_on_loopback_form_one_world(ddp_data, one_process):
    folder, _, two_file = ddp_data
    port = str(_free_port())
    outs = [folder / "node-0", folder / "node-1"]
    procs = [subprocess.Popen([sys.executable, "-m", "tunebridge", "train", str(two_file), "--output", str(out),
                               "--quiet", "--nnodes", "2", "--node-rank", str(rank), "--nproc-per-node", "1",
                               "--rdzv-endpoint", f"127.0.0.1:{port}"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for rank, out in enumerate(outs)]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], logs
    record = json.loads((outs[0] / "run.json").read_text())
    assert record["world_size"] == 2 and record["execution"]["nnodes"] == 2
    assert _losses(outs[0]) == pytest.approx(_losses(one_process), rel=1e-3)
    assert (outs[0] / "model" / "config.json").is_file()
    assert [p.name for p in outs[1].iterdir()] == ["logs"]  # node 1 wrote only its logs
    assert sorted(p.name for p in (outs[1] / "logs").iterdir()) == ["rank-1.log", "torchrun.log"]
    assert "node 1 of 2: its ranks trained; node 0 wrote the run folder" in logs[1]
