"""The exceptions survivor raises on purpose; everything else is a bug."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


class SurvivorError(Exception):
    """Base of every error that is meant for the operator, not a traceback."""


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with the configuration, and where it is."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        if self.line > 0:
            return f"{self.file}:{self.line}: {self.message}"
        return f"{self.file}: {self.message}"


class ConfigError(SurvivorError):
    """The configuration cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: Iterable[ConfigProblem]) -> None:
        self.problems: tuple[ConfigProblem, ...] = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class StateError(SurvivorError):
    """A state file is unreadable, corrupt or of a version this code does not know."""


class ModuleError(SurvivorError):
    """A module cannot be run: missing, not executable, world-writable or outside module_dir."""


class UnsafeNameError(SurvivorError):
    """A name that would become a path is not safe (see model.check_name)."""
