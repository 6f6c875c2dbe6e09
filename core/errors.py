"""Exceptions that tunebridge raises on purpose. Each one carries a message a user can act on."""

from __future__ import annotations


class TunebridgeError(Exception):
    """Base class for every error tunebridge raises deliberately."""


class SpecError(TunebridgeError):
    """The spec is invalid. ``problems`` holds ``(field path, message)`` pairs."""

    def __init__(self, problems: list[tuple[str, str]], source: str | None = None):
        self.problems = problems
        self.source = source
        where = f" in {source}" if source else ""
        lines = [f"invalid spec{where}:"] + [f"  {path}: {msg}" for path, msg in problems]
        super().__init__("\n".join(lines))


class DataError(TunebridgeError):
    """The training data cannot be used. ``problems`` holds one line per bad row or field."""

    def __init__(self, message: str, problems: list[str] | None = None, total: int | None = None):
        self.problems = problems or []
        self.total = total if total is not None else len(self.problems)
        lines = [message]
        lines += [f"  {p}" for p in self.problems]
        if self.total > len(self.problems):
            lines.append(f"  ... and {self.total - len(self.problems)} more")
        super().__init__("\n".join(lines))


class UnsupportedFeature(TunebridgeError):
    """The chosen backend cannot do something the spec asks for."""

    def __init__(self, backend: str, feature: str, alternatives: list[str] | None = None, hint: str = ""):
        self.backend = backend
        self.feature = feature
        self.alternatives = alternatives or []
        msg = f"backend {backend!r} does not support {feature}"
        if self.alternatives:
            msg += f"; backends that do: {', '.join(self.alternatives)}"
        if hint:
            msg += f". {hint}"
        super().__init__(msg)


class BackendNotFound(TunebridgeError):
    """No backend of that name is registered."""


class BackendUnavailable(TunebridgeError):
    """The backend is registered but cannot run here (missing dependency, broken install)."""


class OutputExistsError(TunebridgeError):
    """The output folder is not empty and overwriting was not asked for."""


class RunFailed(TunebridgeError):
    """Training started but did not finish. ``output_dir`` keeps what was written."""

    def __init__(self, message: str, output_dir: str):
        self.output_dir = output_dir
        super().__init__(f"{message}\n(what the run wrote is kept in {output_dir})")
