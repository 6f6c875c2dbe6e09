"""A backend written for the tests: no framework, copies the base model, logs made-up but real steps."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path
from types import SimpleNamespace

from tunebridge.backend import Backend, BackendOutput, Capabilities, Plan
from tunebridge.hookspecs import hookimpl


class FakeBackend(Backend):
    name = "fake"
    description = "test backend"
    capabilities = Capabilities(tasks=frozenset({"sft"}), algorithms={"sft": ("sft",)}, completion_only_loss=True)
    fail_at_step: int | None = None

    def plan(self, spec, examples=None):
        return Plan(self.name, {"steps": spec.training.max_steps, "options": spec.backend_options.get("fake", {})})

    def train(self, job):
        steps = job.spec.training.max_steps or 3
        for step in range(1, steps + 1):
            if self.fail_at_step == step:
                raise RuntimeError(f"boom at step {step}")
            job.reporter.log(step, {"loss": 2.0 / step, "learning_rate": 0.1})
        shutil.copytree(job.model_path, job.model_dir)
        return BackendOutput({"train_loss": 1.0, "global_step": steps}, self.plan(job.spec).native_config,
                             global_step=steps)


class PackingBackend(FakeBackend):
    name = "packer"
    capabilities = Capabilities(tasks=frozenset({"sft", "reward"}), packing=True, completion_only_loss=True)


@hookimpl
def register_backends(register):
    register(FakeBackend)
    register(PackingBackend)


def plugin_with(*backends):
    """A plugin object registering the given backend classes."""

    @hookimpl
    def register_backends(register):
        for backend in backends:
            register(backend)

    return SimpleNamespace(__name__="test_plugin", register_backends=register_backends)


def install_plugin(site: Path, module: str, source: str) -> Path:
    """Write ``module``.py (``source``) into ``site`` as an installed-looking distribution whose ``tunebridge``
    entry point registers it, so that this process and worker subprocesses (PYTHONPATH=site) load it."""
    site.mkdir(parents=True, exist_ok=True)
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    dist = module.replace("_", "-")
    info = site / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[tunebridge]\n{module.removesuffix('_backend')} = {module}\n")
    return site
