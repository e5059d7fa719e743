"""Errors of the diffusion engine; all are EngineUnavailable, so the app can catch one type and keep the warp engine.

Importing this module is cheap (no torch), so the CLI and the app can list these in their user-error handlers.
"""


class EngineUnavailable(RuntimeError):
    """The diffusion engine cannot run with these settings here; the message says why and what to do."""


class ModelUnavailable(EngineUnavailable):
    """Weights are missing locally (or downloads are off); the message says what to fetch and where to put it."""


class LoraFileError(EngineUnavailable):
    """The file is not an AUFX LoRA file or does not fit the loaded model; the message says which part."""
