"""A fake GitHub REST API: the endpoints modmatch uses, with in-memory repositories.

    with FakeGitHub() as gh:
        repo = gh.add_repo("acme/app")
        repo.issues[1] = {...}
        Github(base_url=gh.url, auth=Auth.Token("t")).get_repo("acme/app")

Fault injection: `gh.fail_next[("GET", "/repos/acme/app")] = [502, 502]` answers those statuses first.
App auth: with `app_public_key` set, POST /app/installations/{id}/access_tokens checks the JWT."""
from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass, field
from urllib.parse import unquote

from .server import Call, FakeServer

TOKEN = "ghp_test"


@dataclass
class Repo:
    full_name: str
    default_branch: str = "main"
    labels: dict[str, dict] = field(default_factory=dict)  # lower-cased name → label
    issues: dict[int, dict] = field(default_factory=dict)  # number → {title, body, labels: [names], comments: [...]}
    pulls: dict[int, dict] = field(default_factory=dict)  # number → {title, body, files: [filename]}


class FakeGitHub(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.repos: dict[str, Repo] = {}
        self.fail_next: dict[tuple[str, str], list[int]] = {}
        self.login = "modmatch-bot"
        self.tokens = {TOKEN}
        self.app_public_key = None  # PEM; enables the App endpoints
        self.app_slug = "modmatch"
        self._ids = itertools.count(1000)
        self._lock2 = threading.Lock()

    def add_repo(self, full_name: str, **kw) -> Repo:
        r = self.repos[full_name] = Repo(full_name, **kw)
        return r

    def requests(self, method: str | None = None, contains: str = "") -> list[Call]:
        return [c for c in list(self.calls) if (method is None or c["method"] == method) and contains in c["path"]]

    # --- JSON shapes ----------------------------------------------------------------------------
    def _repo_json(self, r: Repo) -> dict:
        owner, name = r.full_name.split("/")
        return {"id": abs(hash(r.full_name)) % 10**6, "name": name, "full_name": r.full_name,
                "owner": {"login": owner, "type": "Organization"}, "default_branch": r.default_branch,
                "url": f"{self.url}/repos/{r.full_name}", "private": False}

    def _label_json(self, r: Repo, lb: dict) -> dict:
        return {"id": lb["id"], "name": lb["name"], "color": lb["color"], "description": lb.get("description"),
                "url": f"{self.url}/repos/{r.full_name}/labels/{lb['name']}", "default": False}

    def _issue_json(self, r: Repo, n: int) -> dict:
        i = r.issues[n]
        return {"id": n, "number": n, "title": i.get("title", ""), "body": i.get("body", ""), "state": "open",
                "labels": [self._label_json(r, r.labels[x.lower()]) for x in i.get("labels", []) if x.lower() in r.labels],
                "url": f"{self.url}/repos/{r.full_name}/issues/{n}", "user": {"login": "someone", "type": "User"},
                "pull_request": i.get("pull_request"), "repository_url": f"{self.url}/repos/{r.full_name}"}

    def _pull_json(self, r: Repo, n: int) -> dict:
        p = r.pulls[n]
        return {"id": n, "number": n, "title": p.get("title", ""), "body": p.get("body", ""), "merged": True,
                "state": "closed", "url": f"{self.url}/repos/{r.full_name}/pulls/{n}"}

    def ensure_label(self, r: Repo, name: str, description: str = "", color: str = "ededed") -> dict:
        with self._lock2:
            if name.lower() not in r.labels:
                r.labels[name.lower()] = {"id": next(self._ids), "name": name, "color": color, "description": description}
            return r.labels[name.lower()]

    # --- routing --------------------------------------------------------------------------------
    def handle(self, call: Call):
        method, path = call["method"], unquote(call["path"])
        fails = self.fail_next.get((method, path))
        if fails:
            status = fails.pop(0)
            return status, {"message": "Server Error" if status >= 500 else
                            "You have exceeded a secondary rate limit"}, {"Retry-After": "0"} if status == 403 else None
        auth = call["headers"].get("authorization") or ""
        if path.startswith("/app"):
            return self._app(call, method, path, auth)
        if not auth.startswith(("token ", "Bearer ")) or auth.split(" ", 1)[1] not in self.tokens:
            return 401, {"message": "Bad credentials"}, None
        if path == "/user" and method == "GET":
            return 200, {"login": self.login, "id": 1, "type": "User", "url": f"{self.url}/users/{self.login}"}, None
        parts = path.strip("/").split("/")
        if len(parts) < 3 or parts[0] != "repos":
            return 404, {"message": "Not Found"}, None
        full = f"{parts[1]}/{parts[2]}"
        r = self.repos.get(full)
        if r is None:
            return 404, {"message": "Not Found"}, None
        rest = parts[3:]
        body = call["body"] if isinstance(call["body"], dict) else {}
        if not rest and method == "GET":
            return 200, self._repo_json(r), None
        if rest == ["labels"]:
            if method == "GET":
                return 200, [self._label_json(r, lb) for lb in r.labels.values()], None
            if method == "POST":
                name = body.get("name", "")
                if name.lower() in r.labels:
                    return 422, {"message": "Validation Failed", "errors": [{"code": "already_exists"}]}, None
                if len(name) > 50 or len(body.get("description") or "") > 100:
                    return 422, {"message": "Validation Failed", "errors": [{"code": "invalid"}]}, None
                lb = self.ensure_label(r, name, body.get("description") or "", body.get("color") or "ededed")
                return 201, self._label_json(r, lb), None
        if len(rest) == 2 and rest[0] == "labels" and method == "GET":
            lb = r.labels.get(rest[1].lower())
            return (200, self._label_json(r, lb), None) if lb else (404, {"message": "Not Found"}, None)
        if len(rest) >= 2 and rest[0] == "issues" and rest[1].isdigit():
            n = int(rest[1])
            if n not in r.issues:
                return 404, {"message": "Not Found"}, None
            issue = r.issues[n]
            if len(rest) == 2 and method == "GET":
                return 200, self._issue_json(r, n), None
            if rest[2:] == ["labels"] and method == "POST":
                raw = call["body"]  # GitHub accepts ["a", "b"] or {"labels": ["a", "b"]}
                names = raw if isinstance(raw, list) else (raw or {}).get("labels", [])
                for name in names:
                    self.ensure_label(r, name)  # GitHub creates unknown labels too
                    if name.lower() not in {x.lower() for x in issue.setdefault("labels", [])}:
                        issue["labels"].append(name)
                return 200, [self._label_json(r, r.labels[x.lower()]) for x in issue["labels"]], None
            if rest[2:] == ["comments"] and method == "POST":
                c = {"id": next(self._ids), "body": body.get("body", ""), "user": {"login": self.login},
                     "url": f"{self.url}/repos/{full}/issues/comments/1"}
                issue.setdefault("comments", []).append(c)
                return 201, c, None
        if len(rest) >= 2 and rest[0] == "pulls" and rest[1].isdigit():
            n = int(rest[1])
            if n not in r.pulls:
                return 404, {"message": "Not Found"}, None
            if len(rest) == 2 and method == "GET":
                return 200, self._pull_json(r, n), None
            if rest[2:] == ["files"] and method == "GET":
                page = int(call["query"].get("page", "1"))
                files = r.pulls[n].get("files", []) if page == 1 else []
                return 200, [{"filename": f, "status": "modified", "sha": "0" * 40, "additions": 1, "deletions": 0,
                              "changes": 1} for f in files], None
        return 404, {"message": "Not Found"}, None

    def _app(self, call: Call, method: str, path: str, auth: str):
        import jwt

        if self.app_public_key is None or not auth.startswith("Bearer "):
            return 401, {"message": "A JSON web token could not be decoded"}, None
        try:
            jwt.decode(auth.split(" ", 1)[1], self.app_public_key, algorithms=["RS256"])
        except jwt.PyJWTError:
            return 401, {"message": "bad JWT"}, None
        if path == "/app" and method == "GET":
            return 200, {"id": 1, "slug": self.app_slug, "name": "modmatch", "owner": {"login": "acme"}}, None
        parts = path.strip("/").split("/")
        if len(parts) == 4 and parts[1] == "installations" and parts[3] == "access_tokens" and method == "POST":
            token = f"ghs_installation_{parts[2]}"
            self.tokens.add(token)
            return 201, {"token": token, "expires_at": "2099-01-01T00:00:00Z", "permissions": {}}, None
        return 404, {"message": "Not Found"}, None
