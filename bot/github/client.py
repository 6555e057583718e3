"""PyGithub clients: a token, or a GitHub App (id + private key → installation token, refreshed by
PyGithub); a configurable API base URL (GitHub Enterprise Server: https://HOST/api/v3); retries with
backoff on 5xx and on secondary rate limits (PyGithub's GithubRetry, which honours Retry-After).

    clients = GitHubClients.from_settings()
    repo = clients.repo("owner/name", installation_id=event.installation_id)   # a github.Repository
"""
from __future__ import annotations

import logging
import threading

from .. import settings
from .errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_API_URL = "https://api.github.com"


class GitHubClients:
    def __init__(self, *, base_url: str | None = None, token: str | None = None, app_id: str | int | None = None,
                 private_key: str | None = None, installation_id: int | None = None, retries: int = 5,
                 backoff: float = 1.0, secondary_rate_wait: float = 60.0, max_rate_limit_wait: float = 300.0,
                 timeout: int = 15, bot_login: str | None = None, seconds_between_requests: float = 0.25,
                 seconds_between_writes: float = 1.0):
        self.base_url = (base_url or DEFAULT_API_URL).rstrip("/")
        self._token = token
        self._app_id = str(app_id) if app_id else None
        self._private_key = private_key
        self._installation_id = int(installation_id) if installation_id else None
        self.retries, self.backoff = retries, backoff
        self.secondary_rate_wait, self.max_rate_limit_wait, self.timeout = secondary_rate_wait, max_rate_limit_wait, timeout
        self._bot_login = bot_login
        # PyGithub's pacing (GitHub's advice against secondary rate limits); tests set 0
        self.seconds_between_requests, self.seconds_between_writes = seconds_between_requests, seconds_between_writes
        self._cache: dict[object, object] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls) -> "GitHubClients":
        return cls(base_url=settings.get("github_api_url"), token=settings.get("github_token"),
                   app_id=settings.get("github_app_id"), private_key=settings.get("github_private_key"),
                   installation_id=settings.get_int("github_installation_id") or None,
                   retries=max(0, settings.get_int("github_retries", 5)), bot_login=settings.get("github_bot_login"))

    @property
    def configured(self) -> bool:
        return bool(self._token or (self._app_id and self._private_key))

    def _kwargs(self) -> dict:
        from github import GithubRetry

        retry = GithubRetry(total=self.retries, backoff_factor=self.backoff, secondary_rate_wait=self.secondary_rate_wait,
                            max_rate_limit_wait=self.max_rate_limit_wait)
        return {"base_url": self.base_url, "retry": retry, "timeout": int(self.timeout),
                "seconds_between_requests": self.seconds_between_requests,
                "seconds_between_writes": self.seconds_between_writes}

    def _app_auth(self):
        from github import Auth

        return Auth.AppAuth(self._app_id, self._private_key)

    def github(self, full_name: str | None = None, installation_id: int | None = None):
        """A `github.Github` acting as the bot on `full_name`'s repository."""
        from github import Auth, Github, GithubIntegration

        if self._token:
            key: object = "token"
            with self._lock:
                if key not in self._cache:
                    self._cache[key] = Github(auth=Auth.Token(self._token), **self._kwargs())
                return self._cache[key]
        if not (self._app_id and self._private_key):
            raise ConfigError("no GitHub credentials: set MODMATCH_GITHUB_TOKEN, or MODMATCH_GITHUB_APP_ID and "
                              "MODMATCH_GITHUB_PRIVATE_KEY(_FILE)")
        inst = installation_id or self._installation_id
        with self._lock:
            if inst is None:
                if not full_name:
                    raise ConfigError("a GitHub App needs an installation id or a repository")
                gi = GithubIntegration(auth=self._app_auth(), **self._kwargs())
                owner, name = full_name.split("/", 1)
                inst = gi.get_repo_installation(owner, name).id
            key = ("installation", inst)
            if key not in self._cache:  # AppInstallationAuth refreshes the installation token when it expires
                auth = self._app_auth().get_installation_auth(int(inst))
                self._cache[key] = Github(auth=auth, **self._kwargs())
            return self._cache[key]

    def repo(self, full_name: str, installation_id: int | None = None):
        return self.github(full_name, installation_id).get_repo(full_name)

    def bot_login(self, full_name: str | None = None, installation_id: int | None = None) -> str | None:
        """The login the bot's own actions carry (its label events are not feedback)."""
        if self._bot_login:
            return self._bot_login
        try:
            if self._token:
                self._bot_login = self.github().get_user().login
            elif self._app_id and self._private_key:
                from github import GithubIntegration

                slug = GithubIntegration(auth=self._app_auth(), **self._kwargs()).get_app().slug
                self._bot_login = f"{slug}[bot]"
        except Exception as e:  # unknown: only senders of type Bot count as the bot then
            log.warning("github.client.bot-login-unknown error=%s", type(e).__name__)
        return self._bot_login
