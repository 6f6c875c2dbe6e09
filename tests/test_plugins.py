"""The plugin host: entry points, failure isolation, blocking, and `tunebridge backends`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

import tunebridge as tb
from tunebridge.hookspecs import hookimpl
from tunebridge.plugins import load_registry

import fake_backend


def test_builtin_backends_come_through_the_entry_point_group():
    registry = load_registry()
    assert {"trl", "trlx", "autotrain"} <= set(registry.names())
    for name in ("trl", "trlx", "autotrain"):
        assert registry.backends[name].package == "tunebridge"
        assert registry.backends[name].plugin == name
    assert registry.get("trlx").check().kind in ("missing", "ready")  # trlx lives in its own environment
    assert "rl" in registry.get("trlx").capabilities.tasks


def test_extra_plugin_registers_its_backends():
    registry = load_registry([fake_backend], entry_points=False)
    assert registry.names() == ["fake", "packer"]
    assert isinstance(registry.get("fake"), fake_backend.FakeBackend)


def test_a_failing_plugin_is_recorded_and_others_keep_working():
    @hookimpl
    def register_backends(register):
        raise RuntimeError("cannot find my framework")

    broken = SimpleNamespace(__name__="broken_plugin", register_backends=register_backends)
    registry = load_registry([broken, fake_backend], entry_points=False)
    assert registry.names() == ["fake", "packer"]
    assert registry.failures[0].plugin == "broken_plugin"
    assert "RuntimeError: cannot find my framework" in registry.failures[0].error
    with pytest.raises(tb.BackendNotFound, match="failed to load: RuntimeError"):
        registry.get("broken_plugin")


def test_duplicate_and_invalid_registrations_fail_that_plugin_only():
    registry = load_registry([fake_backend, fake_backend.plugin_with(fake_backend.FakeBackend)],
                             entry_points=False)
    assert "already registered" in registry.failures[0].error
    registry = load_registry([fake_backend.plugin_with(object)], entry_points=False)
    assert "not a tunebridge Backend" in registry.failures[0].error


def test_unknown_backend_lists_the_known_ones():
    with pytest.raises(tb.BackendNotFound, match="no backend named 'nope'; registered backends: fake, packer"):
        load_registry([fake_backend], entry_points=False).get("nope")


def test_disable_env_blocks_plugins_by_name(monkeypatch):
    monkeypatch.setenv("TUNEBRIDGE_DISABLE_PLUGINS", "trlx, autotrain")
    registry = load_registry()
    assert "trlx" not in registry.names() and "trl" in registry.names()
    assert sorted(registry.disabled) == ["autotrain", "trlx"]
    with pytest.raises(tb.BackendNotFound, match="disabled by TUNEBRIDGE_DISABLE_PLUGINS"):
        registry.get("trlx")


def _fake_distribution(root, module_source: str):
    """An installed-looking distribution with a `tunebridge` entry point, on a folder we add to sys.path."""
    (root / "badplug.py").write_text(textwrap.dedent(module_source))
    info = root / "badplug-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: badplug\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[tunebridge]\nbadplug = badplug\n")


def _backends_json(root, *args, env_extra=None):
    import os

    env = {**os.environ, "PYTHONPATH": str(root), **(env_extra or {})}
    proc = subprocess.run([sys.executable, "-m", "tunebridge", "backends", *args], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_a_third_party_entry_point_that_fails_to_import_is_reported(tmp_path):
    _fake_distribution(tmp_path, "raise ImportError('needs frobnicate>=2')\n")
    data = json.loads(_backends_json(tmp_path, "--json"))
    assert {"plugin": "badplug", "error": "ImportError: needs frobnicate>=2"} in data["failed_plugins"]
    assert {"trl", "trlx", "autotrain"} <= {b["name"] for b in data["backends"]}
    text = _backends_json(tmp_path)
    assert "badplug  (plugin failed to load)" in text and "needs frobnicate>=2" in text


def test_a_third_party_backend_is_listed_with_its_package_and_version(tmp_path):
    _fake_distribution(tmp_path, """
        from tunebridge.backend import Backend, BackendStatus, Capabilities
        from tunebridge.hookspecs import hookimpl

        class Mine(Backend):
            name = "mine"
            install_hint = "pip install mine-framework"
            capabilities = Capabilities(tasks=frozenset({"rl"}), algorithms={"rl": ("ppo",)})
            def check(self):
                return BackendStatus("missing", "not installed: mine-framework")
            def plan(self, spec, examples=None):
                raise NotImplementedError
            def train(self, job):
                raise NotImplementedError

        @hookimpl
        def register_backends(register):
            register(Mine)
    """)
    data = json.loads(_backends_json(tmp_path, "--json"))
    mine = next(b for b in data["backends"] if b["name"] == "mine")
    assert (mine["package"], mine["version"], mine["status"]) == ("badplug", "0.3", "missing")
    assert mine["install_hint"] == "pip install mine-framework"
    assert mine["capabilities"]["algorithms"] == {"rl": ["ppo"]}
    text = _backends_json(tmp_path)
    assert "mine  (badplug 0.3)" in text and "install: pip install mine-framework" in text
    blocked = json.loads(_backends_json(tmp_path, "--json", env_extra={"TUNEBRIDGE_DISABLE_PLUGINS": "badplug"}))
    assert "mine" not in {b["name"] for b in blocked["backends"]} and blocked["disabled_plugins"] == ["badplug"]


def test_a_misspelt_hook_is_an_error():
    @hookimpl
    def register_backend(register):  # no such hook: register_backends
        register(fake_backend.FakeBackend)

    typo = SimpleNamespace(__name__="typo_plugin", register_backend=register_backend)
    registry = load_registry([typo, fake_backend], entry_points=False)
    assert registry.names() == ["fake", "packer"]
    assert registry.failures[0].plugin == "typo_plugin"
    assert "PluginValidationError" in registry.failures[0].error and "register_backend" in registry.failures[0].error


def test_a_plugin_that_registers_no_backend_is_reported():
    registry = load_registry([fake_backend.plugin_with(), fake_backend], entry_points=False)
    assert registry.names() == ["fake", "packer"]
    assert registry.failures[0].plugin == "test_plugin" and "registered no backend" in registry.failures[0].error


def test_a_backend_missing_plan_or_train_is_refused_at_registration():
    from tunebridge.backend import Backend, Capabilities

    class NoTrain(Backend):
        name = "no-train"
        capabilities = Capabilities(tasks=frozenset({"sft"}))

        def plan(self, spec, examples=None):
            raise NotImplementedError

    class NoPlan(Backend):
        name = "no-plan"

        def train(self, job):
            raise NotImplementedError

    class CommandOnly(Backend):  # launcher "command": command() instead of train()
        name = "cli-only"
        launcher = "command"

        def plan(self, spec, examples=None):
            raise NotImplementedError

        def command(self, job, python):
            raise NotImplementedError

    class CommandWithoutCommand(CommandOnly):
        name = "cli-missing"
        command = Backend.command

    for cls, missing in ((NoTrain, "train"), (NoPlan, "plan"), (CommandWithoutCommand, "command")):
        registry = load_registry([fake_backend.plugin_with(cls)], entry_points=False)
        assert registry.names() == [], cls
        assert f"does not implement {missing}" in registry.failures[0].error, registry.failures
    assert load_registry([fake_backend.plugin_with(CommandOnly)], entry_points=False).names() == ["cli-only"]
    with pytest.raises(TypeError):
        NoTrain()


def test_a_backend_whose_check_raises_is_broken_and_the_others_are_not(tmp_path, spec):
    from tunebridge.execution import executor_for
    from tunebridge.run import Run

    class Raising(fake_backend.FakeBackend):
        name = "raising"

        def check(self):
            raise RuntimeError("cannot read my metadata")

    registry = load_registry([fake_backend.plugin_with(Raising, fake_backend.FakeBackend)], entry_points=False)
    status = executor_for(registry.get("raising")).status()
    assert status.kind == "broken" and "check() raised RuntimeError: cannot read my metadata" in status.detail
    assert executor_for(registry.get("fake")).status().ready
    Run(spec, backend="raising", registry=registry).validate()  # validate does not crash on it
    Run(spec, backend="fake", registry=registry).validate()  # nor does a neighbour's (it lists the others)
    with pytest.raises(tb.BackendUnavailable, match="broken: check\\(\\) raised RuntimeError"):
        Run(spec, backend="raising", registry=registry).train(tmp_path / "out")
    _fake_distribution(tmp_path, """
        from tunebridge.backend import Backend, Capabilities
        from tunebridge.hookspecs import hookimpl

        class Raising(Backend):
            name = "raising"
            capabilities = Capabilities(tasks=frozenset({"sft"}))
            def check(self):
                raise RuntimeError("cannot read my metadata")
            def plan(self, spec, examples=None):
                raise NotImplementedError
            def train(self, job):
                raise NotImplementedError

        @hookimpl
        def register_backends(register):
            register(Raising)
    """)
    data = json.loads(_backends_json(tmp_path, "--json"))
    raising = next(b for b in data["backends"] if b["name"] == "raising")
    assert raising["status"] == "broken" and "cannot read my metadata" in raising["detail"]
    assert next(b for b in data["backends"] if b["name"] == "trl")["status"] in ("ready", "missing")
    assert "status: broken - check() raised RuntimeError" in _backends_json(tmp_path)
