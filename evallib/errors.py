"""Exceptions raised by evallib. All derive from ``ValueError`` so callers may catch either."""


class EvallibError(ValueError):
    """Base class for evallib's input errors."""


class ParamsError(EvallibError):
    """A params file is missing, unreadable or does not match the schema."""


class DataError(EvallibError):
    """The evaluation data cannot be used (empty folder, one class, unknown labels...)."""


class ModelError(EvallibError):
    """The model file cannot be loaded or does not fit the preprocessing."""
