"""Exception classes: each names the input (file, column, row, field) and what was expected."""


class STGraphError(Exception):
    """Base class of stgraph's domain errors."""


class STGraphValidationError(STGraphError, ValueError):
    """An :class:`~stgraph.data.STGraph` field has the wrong shape, dtype or range."""


class DataFormatError(STGraphError, ValueError):
    """A data file does not have the format expected (columns, rows, values)."""


class ChecksumError(STGraphError):
    """A file's sha256 does not match the registry or the checksum recorded with it; it was not
    read."""


class DatasetNotFoundError(STGraphError, FileNotFoundError):
    """A data set's files are neither local nor downloadable."""


class ConfigError(STGraphError, ValueError):
    """A configuration file has an unknown key, a wrong type or a bad value."""


class CheckpointError(STGraphError, ValueError):
    """A checkpoint directory is incomplete, or its tensors do not match its config."""


class RunLockedError(STGraphError):
    """A run directory is being written by another live process (one writer per directory)."""


class MemoryBudgetError(STGraphError, MemoryError):
    """An allocation was estimated beyond the memory budget and not attempted
    (:mod:`stgraph.utils.memory`)."""
