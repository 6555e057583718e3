"""Errors raised at inference time (matchers, model loading, evaluation)."""


class InferenceError(Exception):
    """Base class for inference failures a user can act on."""


class BadInputError(InferenceError):
    """The requirement text cannot be used (empty, binary, ...)."""


class UnknownMatcherError(InferenceError):
    """No matcher is registered under that name."""


class ModelNotFoundError(InferenceError):
    """No model exists at that name or path."""


class CasesError(InferenceError):
    """An evaluation case file is malformed or names unknown modules."""
