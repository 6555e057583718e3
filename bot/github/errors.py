"""Errors of the GitHub integration; the webhook route maps them to status codes."""


class GitHubError(Exception):
    """Base error of bot.github."""


class ValidationFailure(GitHubError):
    """A delivery that is not what GitHub sent: bad or missing signature, no secret configured (401)."""


class BadPayload(GitHubError):
    """A delivery whose body is not a JSON object, or whose headers are missing (400)."""


class ConfigError(GitHubError):
    """The bot cannot act on GitHub: no token and no App credentials (fails closed)."""
