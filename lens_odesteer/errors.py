"""The exception hierarchy of lens_odesteer.

Every error the library raises on purpose derives from :class:`LensOdesteerError`, and also from
the matching built-in (``ValueError``, ``KeyError``, ...), so ``except ValueError`` keeps working.
Messages say what was received, what was expected and how to fix it.
"""

from __future__ import annotations

__all__ = [
    "ChecksumError",
    "DataNotFoundError",
    "DownloadError",
    "FileFormatError",
    "HookNameError",
    "IntegrationError",
    "InvalidActivationsError",
    "InvalidParameterError",
    "LensOdesteerError",
    "ModelLoadError",
    "NotFittedError",
    "ParameterTypeError",
    "ProvenanceError",
    "ScorerUnavailableError",
    "ShapeMismatchError",
    "SteeringConflictError",
]


class LensOdesteerError(Exception):
    """Base class of every error raised on purpose by lens_odesteer."""


class NotFittedError(LensOdesteerError, ValueError, AttributeError):
    """A method that needs fitted state was called before ``fit``."""


class InvalidActivationsError(LensOdesteerError, ValueError):
    """Activations with the wrong rank, dtype, size or non-finite values."""


class ShapeMismatchError(InvalidActivationsError):
    """Two tensors that must agree in a dimension (usually ``d_model``) do not."""


class InvalidParameterError(LensOdesteerError, ValueError):
    """A hyper-parameter or call argument outside its valid range or set."""


class ParameterTypeError(InvalidParameterError, TypeError):
    """An argument of the wrong type (a path given as bytes, provenance that is not a dict)."""


class HookNameError(LensOdesteerError, KeyError):
    """A hook name that does not exist on the model."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable.
        return str(self.args[0]) if self.args else ""


class FileFormatError(LensOdesteerError, ValueError):
    """A file that is missing, truncated, foreign or of an unsupported schema version."""


class DataNotFoundError(FileFormatError, FileNotFoundError):
    """An evaluation data file that is in none of the data folders searched."""


class DownloadError(LensOdesteerError, OSError):
    """A data file that could not be downloaded (no network, HTTP error, connection cut)."""


class ChecksumError(DownloadError):
    """Downloaded bytes whose sha256 is not the one pinned in the data manifest."""


class IntegrationError(LensOdesteerError, RuntimeError):
    """An ODE solve that could not finish (for example the adaptive solver ran out of steps)."""


class ModelLoadError(LensOdesteerError, OSError):
    """A model that cannot be found or fetched (e.g. a hub name on an offline machine)."""


class SteeringConflictError(LensOdesteerError, RuntimeError):
    """Two steering setups that would edit the same hook point (nesting, threads, reset_hooks)."""


class ProvenanceError(LensOdesteerError, ValueError):
    """A steerer attached to a model other than the one its recorded provenance names."""


class ScorerUnavailableError(LensOdesteerError, ImportError):
    """An optional scorer (classifier, lexicon, embedder) whose package is not installed."""


class ExportError(LensOdesteerError, RuntimeError):
    """A figure that cannot be written in a static format (no kaleido or no browser)."""
