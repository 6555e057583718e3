"""The HTTP service: a Starlette app over an AppState (and, when given, the job queue).

    app = create_app(state, extra_routes=slack_routes + github_routes, runner=JobRunner(state))
    uvicorn.run(app, host="127.0.0.1", port=8750)

Endpoints (JSON; errors are ``{"error": "..."}`` with the status that says what happened):

    POST /api/match            {"text": "...", "repo": "core", "k": 5} -> ranked modules, matcher, versions,
                                                                  notes, low_confidence
    GET  /api/repos            the served repositories, their graph and model versions
    GET  /api/modules          ?repo=  the module tree (flat, with parents)
    GET  /api/modules/{id}     ?repo=  one module (ids contain slashes), its dependencies and history
    GET  /api/model            ?repo=  the current model, its validation metrics and report plots
    GET  /api/model/plots/{n}  ?repo=  one report plot (PNG)
    GET  /api/runs             ?repo=  recent index/refresh runs of the store
    GET  /api/jobs             ?repo=&limit=  recent jobs (state, duration, outcome) and pending ones
    POST /api/refresh          {"repo": ...} | {"path": ...} | {} (all)  -> 202, queued (token)
    POST /api/feedback         {"repo", "text", "modules": [...], "key"}   -> 201 (token)
    GET  /healthz, GET /metrics (Prometheus text), GET / (the page), /static/*

Write endpoints need ``Authorization: Bearer <api_token>``; with no token configured they are refused
(403). When the service listens beyond loopback (``host``), reads need the read or the write token too,
unless ``open_reads`` is set; /healthz, /readyz and the page itself stay open. 400 bad JSON or input, 401 bad token, 404 unknown repository or module, 413 body over
``body_limit`` (enforced while reading), 503 not indexed yet or no job queue.
"""
from __future__ import annotations

import hmac
import json
import logging
import re
import sqlite3
import subprocess
import threading
import time
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Sequence

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from . import settings
from .state import AppState, RepoState, RepoUnavailable, low_confidence

log = logging.getLogger(__name__)

MAX_K = 50
PLOT_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.png$")
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


class BodyTooLarge(Exception):
    pass


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


# --- middleware: request metrics and the body limit ---------------------------------------------
class Metrics:
    """Request counts and latency histograms per route template, kept in memory."""

    def __init__(self):
        self._lock = threading.Lock()
        self.counts: dict[tuple[str, str, str], int] = {}
        self.hist: dict[str, list] = {}  # route -> [bucket counts..., sum, count]

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            key = (route, method, str(status))
            self.counts[key] = self.counts.get(key, 0) + 1
            h = self.hist.setdefault(route, [0] * len(BUCKETS) + [0.0, 0])
            for i, b in enumerate(BUCKETS):
                if seconds <= b:
                    h[i] += 1
            h[-2] += seconds
            h[-1] += 1

    def snapshot(self):
        with self._lock:
            return dict(self.counts), {k: list(v) for k, v in self.hist.items()}


class ServiceMiddleware:
    """Pure ASGI: times every request by route template, and refuses bodies over the limit (413).

    The limit is checked against Content-Length up front and against the bytes as they arrive, so
    a chunked upload is cut off while it is read, not after it was buffered.
    """

    def __init__(self, app, metrics: Metrics, limit: int):
        self.app, self.metrics, self.limit = app, metrics, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        t0 = time.perf_counter()
        status = {"code": 500, "started": False}

        async def send_wrapper(message):
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
            await send(message)

        received = 0

        async def receive_wrapper():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge()
            return message

        try:
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.limit:
                raise BodyTooLarge()
            await self.app(scope, receive_wrapper, send_wrapper)
        except BodyTooLarge:
            if status["started"]:
                raise
            await error(413, f"request body over {self.limit} bytes")(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "other"
            if isinstance(route, Mount):
                label = route.path + "/*"
            self.metrics.observe(label, scope.get("method", ""), status["code"], time.perf_counter() - t0)


# --- helpers ------------------------------------------------------------------------------------
def _state(request: Request) -> AppState:
    return request.app.state.modmatch


def _repo(request: Request, name: str | None) -> RepoState:
    try:
        return _state(request).repo(name or request.query_params.get("repo") or None)
    except KeyError as e:
        raise ApiError(404, str(e.args[0]) if e.args else "unknown repository") from None


async def _json_body(request: Request, allow_empty: bool = False) -> dict:
    raw = await request.body()
    if not raw.strip():
        if allow_empty:
            return {}
        raise ApiError(400, "a JSON object is required")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "the body is not valid JSON") from None
    except RecursionError:
        raise ApiError(400, "the body nests too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the body must be a JSON object")
    try:  # a lone surrogate ("\\ud800") is valid JSON but no text: refuse it here, not in the engines
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(400, "the body holds a string that is not valid Unicode (a lone surrogate)") from None
    except RecursionError:
        raise ApiError(400, "the body nests too deeply") from None
    return data


def _bearer_matches(request: Request, tokens: list[str]) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    given_b = given.strip().encode("utf-8", "replace")
    return scheme.lower() == "bearer" and any(hmac.compare_digest(given_b, t.encode()) for t in tokens)


def _require_token(request: Request) -> None:
    expected = request.app.state.api_token or settings.get("api_token")
    if not expected:
        raise ApiError(403, "writes are disabled: no api_token is configured on the server")
    if not _bearer_matches(request, [expected]):
        raise ApiError(401, "missing or wrong API token", {"WWW-Authenticate": "Bearer"})


def _require_read(request: Request) -> None:
    """Reads (answers, modules, files, commit texts, jobs, metrics) need a token when the service listens beyond
    loopback, unless the operator opened them (`open_reads`); the read token or the write token will do."""
    if not request.app.state.protect_reads:
        return
    tokens = [t for t in (settings.get("read_token"), request.app.state.api_token or settings.get("api_token")) if t]
    if not tokens:
        raise ApiError(403, "reads are closed: this service listens beyond loopback and no read_token (or "
                            "api_token) is configured; set MODMATCH_READ_TOKEN_FILE, or MODMATCH_OPEN_READS=true "
                            "for an open intranet")
    if not _bearer_matches(request, tokens):
        raise ApiError(401, "missing or wrong token (reads need the read or API token)", {"WWW-Authenticate": "Bearer"})


def is_loopback(host: str | None) -> bool:
    import ipaddress

    h = (host or "127.0.0.1").strip("[]")
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def _indexed(rs: RepoState) -> None:
    if not rs.indexed():
        if rs.status == "rebuilding":
            raise ApiError(503, f"repository {rs.name!r}: {rs.error or 'its database is being rebuilt from git'}",
                           {"Retry-After": "10"})
        raise ApiError(503, f"repository {rs.name!r} is not indexed yet (a refresh is queued or run `modmatch index`)",
                       {"Retry-After": "30"})


def _handle(fn):
    """Turn the errors of the engines into statuses: 404 unknown, 400 bad input, 503 not indexed."""
    from indexer.errors import NotIndexedError, UnknownModuleError
    from inference.errors import BadInputError

    async def endpoint(request: Request) -> Response:
        try:
            return await fn(request)
        except ApiError as e:
            return error(e.status, e.message, e.headers)
        except NotIndexedError as e:
            return error(503, str(e))
        except UnknownModuleError as e:
            return error(404, str(e))
        except BadInputError as e:
            return error(400, str(e))
        except RepoUnavailable as e:
            return error(503, str(e), {"Retry-After": "5"})

    endpoint.__name__ = fn.__name__
    endpoint.__doc__ = fn.__doc__
    return endpoint


def model_info(rs: RepoState) -> dict:
    """The repository's current model (metadata.json of the run current.json points at) and report plots."""
    info: dict = {"model": None, "plots": sorted(p.name for p in rs.models.plots())}
    cur, meta = rs.models.current(), rs.models.current_metadata()
    if cur is not None and meta:
        meta = {k: v for k, v in meta.items() if not (isinstance(v, list) and len(v) > 50)}  # not every module ID
        info["model"] = {"run": cur["run"], "published_at": cur.get("published_at"), **meta}
    return info


def _find_by_path(state: AppState, path: str) -> list[str]:
    """The served repositories at `path`, or cloned from it (a push to a bare server repository)."""
    from .hooks import clean_git_env

    target = Path(path).expanduser().resolve()
    hits = [n for n, rs in state.repos.items() if rs.root == target]
    if hits:
        return hits
    for n, rs in state.repos.items():
        r = subprocess.run(["git", "-C", str(rs.root), "config", "--get", "remote.origin.url"], capture_output=True,
                           text=True, env=clean_git_env())
        url = r.stdout.strip().removeprefix("file://")
        if url and "://" not in url and ":" not in url.split("/")[0]:
            if (rs.root / url).resolve() == target or Path(url).expanduser().resolve() == target:
                hits.append(n)
    return hits


# --- endpoints ----------------------------------------------------------------------------------
@_handle
async def match_endpoint(request: Request) -> Response:
    _require_read(request)
    data = await _json_body(request)
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "`text` must be a non-empty string")
    k = data.get("k", 5)
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ApiError(400, f"`k` must be an integer from 1 to {MAX_K}")
    repo = data.get("repo")
    if repo is not None and not isinstance(repo, str):
        raise ApiError(400, "`repo` must be a string")
    rs = _repo(request, repo)
    _indexed(rs)
    answer, low = await run_in_threadpool(_answer, rs, text, k, request.app.state.match_wait)
    return JSONResponse({"repo": rs.name, **answer.to_dict(), "low_confidence": low})


def _answer(rs: RepoState, text: str, k: int, wait: float | None):
    """The answer and its low-confidence caution, in one trip to the thread pool."""
    answer = rs.match(text, k, wait)
    return answer, low_confidence(rs, answer)


def _repo_summary(rs: RepoState) -> dict:
    try:
        info = rs.store.graph_info()
    except sqlite3.DatabaseError as e:
        raise rs.damaged(e) from None
    return {"name": rs.name, "indexed": bool(info), "graph_version": info.get("version"), "commit": info.get("commit"),
            "built_at": info.get("built_at"), "model_version": rs.model_version, "matcher": rs.matcher_name,
            "status": rs.status, "loaded": rs.loaded, "reloading": rs.reloading, "matcher_build": rs.matcher_build(),
            "operating_point": rs.operating_point()}


@_handle
async def repos_endpoint(request: Request) -> Response:
    _require_read(request)
    st = _state(request)
    return JSONResponse({"default": st.default, "repos": [_repo_summary(rs) for rs in st.repos.values()]})


@_handle
async def modules_endpoint(request: Request) -> Response:
    _require_read(request)
    rs = _repo(request, None)
    _indexed(rs)
    g = await run_in_threadpool(lambda: rs.graph)
    mods = [{"id": m.id, "name": m.name, "parent": m.parent, "description": m.description,
             "files": m.stats.get("files", 0), "children": g.children(m.id)} for m in g.modules.values()]
    return JSONResponse({"repo": rs.name, "graph_version": g.version, "modules": mods})


@_handle
async def module_endpoint(request: Request) -> Response:
    _require_read(request)
    rs = _repo(request, None)
    _indexed(rs)
    mid = request.path_params["id"]
    g = await run_in_threadpool(lambda: rs.graph)
    if mid not in g.modules:
        raise ApiError(404, f"unknown module {mid!r}")
    m = g.modules[mid]
    d = m.to_dict()
    d["children"] = g.children(mid)
    d["dependencies"] = g.dependencies(mid)
    d["dependents"] = g.dependents(mid)
    d["history"] = [h.to_dict() for h in g.history if mid in h.modules][-10:]
    return JSONResponse({"repo": rs.name, "graph_version": g.version, "module": d})


@_handle
async def model_endpoint(request: Request) -> Response:
    _require_read(request)
    rs = _repo(request, None)
    info = await run_in_threadpool(model_info, rs)
    return JSONResponse({"repo": rs.name, "matcher": rs.matcher_name, "model_version": rs.model_version, **info})


@_handle
async def plot_endpoint(request: Request) -> Response:
    _require_read(request)
    rs = _repo(request, None)
    name = request.path_params["name"]
    if not PLOT_NAME.match(name):
        raise ApiError(404, "no such plot")
    for p in rs.models.plots():  # only files the listing offers, never a path from the request
        if p.name == name:
            return FileResponse(p, media_type="image/png")
    raise ApiError(404, "no such plot")


@_handle
async def runs_endpoint(request: Request) -> Response:
    _require_read(request)
    rs = _repo(request, None)
    try:
        runs = await run_in_threadpool(rs.store.runs, 30)
    except sqlite3.DatabaseError as e:
        raise rs.damaged(e) from None
    for r in runs:
        try:
            r["detail"] = json.loads(r["detail"]) if r["detail"] else {}
        except (TypeError, ValueError):
            pass
    return JSONResponse({"repo": rs.name, "runs": runs})


def _limit(request: Request, default: int = 50) -> int:
    raw = request.query_params.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= 500:
        raise ApiError(400, "`limit` must be an integer from 1 to 500")
    return int(raw)


@_handle
async def jobs_endpoint(request: Request) -> Response:
    _require_read(request)
    runner = request.app.state.jobs
    limit = _limit(request)
    repo = request.query_params.get("repo") or None
    if repo:
        _repo(request, repo)
    if runner is None:
        return JSONResponse({"jobs": [], "pending": [], "note": "no job queue in this process"})
    jobs = await run_in_threadpool(runner.recent, limit, repo)
    pending = await run_in_threadpool(runner.pending) if runner.scheduler.running else []
    return JSONResponse({"jobs": jobs, "pending": pending})


@_handle
async def refresh_endpoint(request: Request) -> Response:
    _require_token(request)
    data = await _json_body(request, allow_empty=True)
    st = _state(request)
    if st.queue_refresh is None:
        raise ApiError(503, "no job queue in this process")
    reason = str(data.get("reason") or "api")[:200]
    if data.get("repo") is not None:
        if not isinstance(data["repo"], str):
            raise ApiError(400, "`repo` must be a string")
        names = [_repo(request, data["repo"]).name]
    elif data.get("path") is not None:
        if not isinstance(data["path"], str):
            raise ApiError(400, "`path` must be a string")
        names = await run_in_threadpool(_find_by_path, st, data["path"])
        if not names:
            raise ApiError(404, "no served repository at that path")
        if reason.startswith("hook:post-receive"):
            reason = "post-receive"
    else:
        names = list(st.repos)
    jobs = [await run_in_threadpool(st.queue_refresh, n, reason) for n in names]
    return JSONResponse({"queued": jobs, "repos": names}, status_code=202)


@_handle
async def feedback_endpoint(request: Request) -> Response:
    _require_token(request)
    data = await _json_body(request)
    text, modules, key = data.get("text"), data.get("modules"), data.get("key")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "`text` must be a non-empty string")
    if not isinstance(modules, list) or not modules or not all(isinstance(m, str) for m in modules):
        raise ApiError(400, "`modules` must be a non-empty list of module IDs")
    if key is not None and not isinstance(key, str):
        raise ApiError(400, "`key` must be a string")
    rs = _repo(request, data.get("repo"))
    _indexed(rs)
    try:
        added = await run_in_threadpool(rs.add_feedback, text, modules, str(data.get("source") or "api"), key)
    except ValueError as e:
        raise ApiError(400, str(e)) from None
    runner = request.app.state.jobs
    if added and runner is not None:
        await run_in_threadpool(runner.on_feedback, rs.name)
    return JSONResponse({"repo": rs.name, "added": added}, status_code=201 if added else 200)


def health(st: AppState) -> dict:
    """Live is always true when this answers; ready only when every repository is indexed and its matcher built (an
    unloaded one is ready: its next question loads it from the matcher cache)."""
    repos = {}
    for n, rs in st.repos.items():
        try:
            repos[n] = rs.health()
        except Exception as e:  # the store is unreadable: say so, still answer
            repos[n] = {"indexed": False, "matcher": "broken", "error": f"{type(e).__name__}: {e}"[:300]}
    ready = bool(repos) and all(r.get("indexed") and r.get("matcher") in ("ready", "unloaded") for r in repos.values())
    return {"status": "ok", "live": True, "ready": ready, "loaded": len(st.loaded()), "max_loaded": st.max_loaded,
            "repos": repos}


async def healthz_endpoint(request: Request) -> Response:
    """Liveness (200 while the process answers) with the readiness detail; /readyz is the readiness probe."""
    return JSONResponse(await run_in_threadpool(health, _state(request)))


async def readyz_endpoint(request: Request) -> Response:
    """200 when every repository can answer now, else 503: a load balancer sends traffic only when this says so."""
    h = await run_in_threadpool(health, _state(request))
    return JSONResponse(h, status_code=200 if h["ready"] else 503)


def _label(v) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**kw) -> str:
    return "{" + ",".join(f'{k}="{_label(v)}"' for k, v in kw.items()) + "}"


def render_metrics(app: Starlette) -> str:
    st: AppState = app.state.modmatch
    runner = app.state.jobs
    counts, hist = app.state.metrics.snapshot()
    out: list[str] = []

    def head(name: str, kind: str, help_: str) -> None:
        out.append(f"# HELP {name} {help_}")
        out.append(f"# TYPE {name} {kind}")

    head("modmatch_http_requests_total", "counter", "HTTP requests by route template, method and status.")
    for (route, method, status), n in sorted(counts.items()):
        out.append(f"modmatch_http_requests_total{_labels(route=route, method=method, status=status)} {n}")
    head("modmatch_http_request_duration_seconds", "histogram", "HTTP request latency by route template.")
    for route, h in sorted(hist.items()):
        for i, b in enumerate(BUCKETS):
            out.append(f"modmatch_http_request_duration_seconds_bucket{_labels(route=route, le=b)} {h[i]}")
        out.append(f"modmatch_http_request_duration_seconds_bucket{_labels(route=route, le='+Inf')} {h[-1]}")
        out.append(f"modmatch_http_request_duration_seconds_sum{_labels(route=route)} {h[-2]:.6f}")
        out.append(f"modmatch_http_request_duration_seconds_count{_labels(route=route)} {h[-1]}")
    head("modmatch_jobs_queued", "gauge", "Jobs waiting in the queue.")
    out.append(f"modmatch_jobs_queued {runner.queue_depth() if runner else 0}")
    head("modmatch_jobs_running", "gauge", "Jobs running now.")
    out.append(f"modmatch_jobs_running {len(runner.running) if runner else 0}")
    head("modmatch_repo_info", "gauge", "Served repositories with their graph and model versions (value 1).")
    for n, rs in st.repos.items():
        try:
            info = rs.store.graph_info()
        except sqlite3.DatabaseError as e:
            rs.damaged(e)
            info = {}
        out.append(f"modmatch_repo_info{_labels(repo=n, graph_version=info.get('version') or '', commit=info.get('commit') or '', model_version=rs.model_version or '', matcher=rs.matcher_name)} 1")
    head("modmatch_repo_ready", "gauge", "1 when the repository's matcher is built and answering, else 0.")
    for n, rs in st.repos.items():
        out.append(f"modmatch_repo_ready{_labels(repo=n, status=rs.status)} {1 if rs.ready else 0}")
    head("modmatch_repos_loaded", "gauge", "Repositories whose graph and matcher are in memory (max_loaded_repos bounds "
         "them; 0: no bound).")
    out.append(f"modmatch_repos_loaded{_labels(max=st.max_loaded)} {len(st.loaded())}")
    head("modmatch_database_recoveries_total", "counter",
         "Damaged repository databases moved aside and rebuilt from git (kept as *.corrupt-* files).")
    for n, rs in st.repos.items():
        out.append(f"modmatch_database_recoveries_total{_labels(repo=n)} {len(rs.recoveries())}")
    head("modmatch_graph_modules", "gauge", "Modules in the served graph.")
    for n, rs in st.repos.items():
        g = rs._graph
        out.append(f"modmatch_graph_modules{_labels(repo=n)} {len(g) if g is not None else 0}")
    if runner is not None:
        head("modmatch_last_refresh_timestamp_seconds", "gauge", "When the last successful refresh finished.")
        times = {n: runner.last_times(n) for n in st.repos}
        for n, t in times.items():
            if t["refresh"]:
                out.append(f"modmatch_last_refresh_timestamp_seconds{_labels(repo=n)} {t['refresh']:.3f}")
        head("modmatch_last_training_timestamp_seconds", "gauge", "When the last successful training run finished.")
        for n, t in times.items():
            if t["train"]:
                out.append(f"modmatch_last_training_timestamp_seconds{_labels(repo=n)} {t['train']:.3f}")
        head("modmatch_jobs", "gauge", "Jobs recorded, by state.")
        for state, c in sorted(runner.log.counts().items()):
            out.append(f"modmatch_jobs{_labels(state=state)} {c}")
    return "\n".join(out) + "\n"


@_handle
async def metrics_endpoint(request: Request) -> Response:
    _require_read(request)
    text = await run_in_threadpool(render_metrics, request.app)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4; charset=utf-8")


async def page_endpoint(request: Request) -> Response:
    html = (resources.files("bot") / "web" / "index.html").read_text(encoding="utf-8")
    return HTMLResponse(html, headers={"Content-Security-Policy": "default-src 'self'; img-src 'self' data:",
                                       "X-Content-Type-Options": "nosniff"})


# --- the app ------------------------------------------------------------------------------------
async def _http_error(request: Request, exc: HTTPException) -> Response:
    return error(exc.status_code, exc.detail or "error", getattr(exc, "headers", None))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.exception("service.error path=%s", request.url.path)
    return error(500, "internal error")


def routes() -> list[BaseRoute]:
    return [
        Route("/", page_endpoint, methods=["GET"]),
        Route("/healthz", healthz_endpoint, methods=["GET"]),
        Route("/readyz", readyz_endpoint, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/api/match", match_endpoint, methods=["POST"]),
        Route("/api/repos", repos_endpoint, methods=["GET"]),
        Route("/api/modules", modules_endpoint, methods=["GET"]),
        Route("/api/modules/{id:path}", module_endpoint, methods=["GET"]),
        Route("/api/model", model_endpoint, methods=["GET"]),
        Route("/api/model/plots/{name}", plot_endpoint, methods=["GET"]),
        Route("/api/runs", runs_endpoint, methods=["GET"]),
        Route("/api/jobs", jobs_endpoint, methods=["GET"]),
        Route("/api/refresh", refresh_endpoint, methods=["POST"]),
        Route("/api/feedback", feedback_endpoint, methods=["POST"]),
        Mount("/static", app=StaticFiles(packages=[("bot", "web")]), name="static"),
    ]


def create_app(state: AppState, extra_routes: Sequence[BaseRoute] = (), *, runner=None,
               body_limit: int | None = None, api_token: str | None = None, warm: bool = True,
               match_wait: float | None = None, host: str | None = None) -> Starlette:
    """The ASGI app. `extra_routes` (Slack, GitHub) come first and share the limits and metrics;
    `runner` (a bot.jobs.JobRunner) is started and stopped with the app when given."""
    from starlette.middleware import Middleware

    limit = body_limit if body_limit is not None else settings.get_int("body_limit", 1_048_576)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app):
        if runner is not None and not runner.scheduler.running:
            runner.start()
        if warm:  # build every repository's matcher now, one after the other, in the background
            for rs in state.repos.values():
                try:
                    if rs.indexed():
                        rs.warm()
                except Exception as e:
                    log.warning("service.warm-failed repo=%s error=%s", rs.name, e)
        try:
            yield
        finally:
            if runner is not None:
                runner.shutdown()

    app = Starlette(routes=list(extra_routes) + routes(),
                    middleware=[Middleware(ServiceMiddleware, metrics=metrics, limit=limit)],
                    exception_handlers={HTTPException: _http_error, Exception: _server_error},
                    lifespan=lifespan)
    app.state.modmatch = state
    app.state.jobs = runner
    app.state.metrics = metrics
    app.state.api_token = api_token
    app.state.protect_reads = not is_loopback(host) and not settings.get_bool("open_reads")
    app.state.match_wait = match_wait if match_wait is not None else settings.get_float("match_wait", 20)
    return app
