"""Where a configuration item came from (`Location`) and what is wrong with it
(`Diagnostic`). Kept apart from pysendmail.errors, whose exit codes are an enum: the
cached configuration holds these and is loaded at every start (bench/README.md)."""

from __future__ import annotations

from pysendmail.record import record


@record(frozen=True)
class Location:
    """Where a configuration item came from: file, line (1-based) and column (1-based)."""

    file: str
    line: int
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@record(frozen=True)
class Diagnostic:
    """A warning or error found in a configuration file, kept for `pysendmail-cf check`."""

    location: Location
    message: str
    severity: str = "warning"  # "warning" or "error"

    def __str__(self) -> str:
        return f"{self.location}: {self.severity}: {self.message}"
