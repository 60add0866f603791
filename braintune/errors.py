"""The user-error types of braintune: a message that names the key, file, participant or run and says what to do.

Every command prints one of these as a single ``error: ...`` line and exits with status 2; any other exception
is a bug and keeps its traceback. Each layer raises the type that names its subject.
"""
from __future__ import annotations


class UserError(ValueError):
    """The user's input cannot be used as given (exit status 2, no traceback)."""


class ConfigError(UserError):
    """A config key or value is wrong; the message lists every problem and what is allowed."""


class DataError(UserError):
    """The dataset cannot be used as given; the message names the file / participant / run and what to do."""


class StimulusError(UserError):
    """A stimulus file cannot be used; the message names the file and what to do."""


class BackboneError(UserError):
    """A backbone cannot be built or loaded; the message names the key or checkpoint and what to do."""


class OutputError(UserError):
    """An output cannot be written (disk full, file-size limit, permissions, a file where a directory should be, an
    out_dir in use by another run); the message names the path and what to do."""
