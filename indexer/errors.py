"""Errors the indexer raises. The CLI turns each into one clear line."""


class IndexerError(Exception):
    """Base class for every indexer failure a user can act on."""


class ConfigError(IndexerError):
    """`.modmatch.toml` is malformed or contradicts itself."""


class NotIndexedError(IndexerError):
    """The repository has no graph yet: run `modmatch index` first."""


class UnknownModuleError(IndexerError):
    """A module ID that the graph does not hold."""


class SourceError(IndexerError):
    """The repository cannot be read (missing path, unreadable commit, ...)."""
