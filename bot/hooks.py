"""Git hooks that keep the served graph fresh: `modmatch hooks install|uninstall [PATH] [--server]`.

In a clone, ``post-merge``, ``post-checkout`` (branch switches) and ``post-rewrite`` (amend, rebase)
tell the running service to refresh (POST /api/refresh with the token from MODMATCH_API_TOKEN or
MODMATCH_API_TOKEN_FILE); in a bare server repository ``post-receive`` does. When no service
answers, the hook runs ``modmatch refresh`` instead (or MODMATCH_HOOK_COMMAND). Either way it runs in
the background with a timeout and the hook exits 0: a hook never blocks or fails a git command.

A hook already present is kept: it moves to ``<name>.modmatch-chained`` and the modmatch hook runs it
first, with the same arguments and standard input. ``uninstall`` removes exactly what was added and
puts chained hooks back. What the hooks did is logged to MODMATCH_HOOK_LOG ($MODMATCH_HOME/hooks.log).
"""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from . import settings

MARKER = "# modmatch-hook v1"
CHAINED = ".modmatch-chained"
CLIENT_HOOKS = ("post-merge", "post-checkout", "post-rewrite")
SERVER_HOOKS = ("post-receive",)
STDIN_HOOKS = ("post-rewrite", "post-receive")  # git writes to these hooks' standard input
NOTIFY_TIMEOUT = 5.0
REFRESH_TIMEOUT = 900


class HookError(Exception):
    pass


def clean_git_env() -> dict[str, str]:
    """The environment without GIT_DIR & co., which a hook inherits and which would mislead other git commands."""
    return {k: v for k, v in os.environ.items()
            if not (k.startswith("GIT_") and k not in ("GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_GLOBAL", "GIT_SSH",
                                                        "GIT_SSH_COMMAND", "GIT_ASKPASS"))}


def service_url() -> str:
    return (settings.get("url") or f"http://{settings.get('host') or '127.0.0.1'}:{settings.get('port') or 8750}").rstrip("/")


def _git(path: Path, *args: str) -> str:
    r = subprocess.run(["git", "-C", str(path), *args], capture_output=True, text=True, env=clean_git_env())
    if r.returncode != 0:
        raise HookError(f"{path}: not a git repository ({r.stderr.strip()})")
    return r.stdout.strip()


def hooks_dir(path: str | Path) -> tuple[Path, bool]:
    """(the hooks folder git uses, whether the repository is bare); honours core.hooksPath."""
    p = Path(path).expanduser().resolve()
    bare = _git(p, "rev-parse", "--is-bare-repository") == "true"
    d = Path(_git(p, "rev-parse", "--git-path", "hooks"))
    return (d if d.is_absolute() else (p / d)).resolve(), bare


def recorded_env() -> dict[str, str]:
    """What a hook must know that git's environment may not carry: the data folder, and where the API token is
    kept (the path of the token file, never the token itself)."""
    env = {settings.env_name("home"): str(settings.home().resolve())}
    token_file, hook_log = settings.secret_file("api_token"), settings.get("hook_log")
    if token_file:
        env[settings.env_name("api_token") + "_FILE"] = str(Path(token_file).expanduser().resolve())
    if hook_log:
        env[settings.env_name("hook_log")] = str(Path(hook_log).expanduser().resolve())
    return env


def token_note() -> str | None:
    """Why an installed hook could not authenticate to the service, or None when it can."""
    token_file = settings.secret_file("api_token")
    if token_file:
        if settings.get("api_token"):
            return None
        return f"MODMATCH_API_TOKEN_FILE={token_file} cannot be read or is empty"
    if settings.in_environment("api_token"):
        return ("the API token comes from MODMATCH_API_TOKEN, which git does not pass to hooks: keep it in a file "
                "(mode 600), set MODMATCH_API_TOKEN_FILE to it and install again; the hook records the file's path")
    return ("no API token is configured: the service refuses the hooks' refresh requests (401/403) until "
            "MODMATCH_API_TOKEN_FILE is set when installing")


def script(name: str, python: str, url: str, env: dict[str, str] | None = None) -> str:
    q = shlex.quote
    stdin = name in STDIN_HOOKS
    lines = [
        "#!/bin/sh",
        MARKER,
        "# Installed by `modmatch hooks install`; `modmatch hooks uninstall` removes it and restores any",
        f"# hook it replaced ({name}{CHAINED}). Tells modmatch the repository changed, in the background;",
        "# it never blocks or fails the git command.",
        f"hook_name={name}",
        'hook_dir=$(cd "$(dirname "$0")" && pwd)',
        f'chained="$hook_dir/$hook_name{CHAINED}"',
        "repo=$(pwd -P)",
    ]
    if stdin:
        lines += ['input=$(mktemp "${TMPDIR:-/tmp}/modmatch-hook.XXXXXX") || input=/dev/null',
                  '[ "$input" = /dev/null ] || cat > "$input"',
                  'if [ -x "$chained" ]; then "$chained" "$@" < "$input"; fi',
                  '[ "$input" = /dev/null ] || rm -f "$input"']
    else:
        lines += ['if [ -x "$chained" ]; then "$chained" "$@"; fi']
    if name == "post-checkout":
        lines += ['[ "$3" = 1 ] || exit 0  # a checkout of files, not of a branch: nothing to refresh']
    lines += [
        *[f'[ -n "${{{k}:-}}" ] || {k}={q(v)}; export {k}' for k, v in (env or {}).items()],
        f"py={q(python)}",
        f'url="${{MODMATCH_URL:-{url}}}"',
        'if [ -x "$py" ]; then',
        '    ( "$py" -m bot.hooks notify --hook "$hook_name" --path "$repo" --url "$url" '
        '</dev/null >/dev/null 2>&1 & ) >/dev/null 2>&1',
        "fi",
        "exit 0",
        "",
    ]
    return "\n".join(lines)


def is_ours(p: Path) -> bool:
    try:
        return MARKER in p.read_text(errors="replace")
    except OSError:
        return False


def install(path: str | Path, server: bool = False, url: str | None = None, python: str | None = None) -> list[str]:
    """Install the hooks; returns what was done, one line per hook."""
    d, bare = hooks_dir(path)
    d.mkdir(parents=True, exist_ok=True)
    names = SERVER_HOOKS if (server or bare) else CLIENT_HOOKS
    done = []
    for name in names:
        hook = d / name
        chained = d / (name + CHAINED)
        note = "installed"
        if hook.exists() and not is_ours(hook):
            if chained.exists():
                raise HookError(f"{chained} already exists: move it away first")
            os.replace(hook, chained)
            note = f"installed, the existing hook runs first ({chained.name})"
        elif hook.exists():
            note = "updated"
        tmp = d / f".{name}.modmatch-tmp"
        tmp.write_text(script(name, python or sys.executable, url or service_url(), recorded_env()))
        tmp.chmod(0o755)
        os.replace(tmp, hook)
        done.append(f"{hook}: {note}")
    return done


def uninstall(path: str | Path) -> list[str]:
    d, _ = hooks_dir(path)
    done = []
    for name in CLIENT_HOOKS + SERVER_HOOKS:
        hook, chained = d / name, d / (name + CHAINED)
        if hook.exists() and is_ours(hook):
            hook.unlink()
            done.append(f"{hook}: removed")
        if chained.exists():
            if hook.exists():
                done.append(f"{hook}: not ours, left alone; {chained.name} kept")
            else:
                os.replace(chained, hook)
                done.append(f"{hook}: restored the hook it had replaced")
    return done


def hook_token_problem(path: str | Path) -> str | None:
    """Why the installed hooks of `path` cannot authenticate to the service (None when they can): they read the
    token file recorded at install, else git's environment, which rarely carries MODMATCH_API_TOKEN."""
    import re

    d, _ = hooks_dir(path)
    for name in CLIENT_HOOKS + SERVER_HOOKS:
        hook = d / name
        if hook.exists() and is_ours(hook):
            m = re.search(r"MODMATCH_API_TOKEN_FILE=(\S+); export", hook.read_text(errors="replace"))
            if m:
                f = Path(shlex.split(m.group(1))[0])
                try:
                    return None if f.read_text().strip() else f"the recorded token file {f} is empty"
                except OSError:
                    return f"the recorded token file {f} cannot be read"
            return token_note()
    return None


def status(path: str | Path) -> dict[str, str]:
    d, _ = hooks_dir(path)
    out = {}
    for name in CLIENT_HOOKS + SERVER_HOOKS:
        hook = d / name
        if hook.exists():
            out[name] = "modmatch" + (" (chaining)" if (d / (name + CHAINED)).exists() else "") if is_ours(hook) else "other"
    return out


# --- what the installed hook runs (in the background) ------------------------------------------
def _log(line: str) -> None:
    p = Path(settings.get("hook_log") or (settings.home() / "hooks.log"))
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with open(p, "a", encoding="utf-8") as fh:
            fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {line}\n")
    except OSError:
        pass


def _post(url: str, payload: dict, timeout: float) -> int:
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json"}
    token = settings.get("api_token")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + "/api/refresh", data=json.dumps(payload).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def notify(path: str, hook: str, url: str | None = None) -> str:
    """Ask the service to refresh `path`; if none answers (or it does not serve it), refresh here."""
    url = (url or service_url()).rstrip("/")
    try:
        code = _post(url, {"path": path, "reason": f"hook:{hook}"}, NOTIFY_TIMEOUT)
    except OSError as e:
        code = 0
        _log(f"hook={hook} path={path} service={url} unreachable ({type(e).__name__})")
    if 200 <= code < 300:
        _log(f"hook={hook} path={path} notified {url} status={code}")
        return "notified"
    if code in (401, 403):
        _log(f"hook={hook} path={path} service refused status={code}: "
             + (token_note() or "the API token the hook read does not match the service's"))
        return f"refused {code}"
    if code not in (0, 404):
        _log(f"hook={hook} path={path} service refused status={code}")
        return f"refused {code}"
    tmpl = settings.get("hook_command")
    cmd = ([a.replace("{path}", path) for a in shlex.split(tmpl)] if tmpl
           else [sys.executable, "-m", "bot.cli", "refresh", path])
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=REFRESH_TIMEOUT, env=clean_git_env(),
                           stdin=subprocess.DEVNULL)
        _log(f"hook={hook} path={path} ran {Path(cmd[0]).name} rc={r.returncode}")
        return f"refreshed rc={r.returncode}"
    except (OSError, subprocess.TimeoutExpired) as e:
        _log(f"hook={hook} path={path} refresh failed ({type(e).__name__})")
        return "failed"


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m bot.hooks")
    sub = ap.add_subparsers(dest="cmd", required=True)
    n = sub.add_parser("notify")
    n.add_argument("--hook", required=True)
    n.add_argument("--path", required=True)
    n.add_argument("--url")
    a = ap.parse_args(argv)
    try:
        notify(a.path, a.hook, a.url)
    except Exception as e:  # a hook's helper never fails loudly
        _log(f"hook={a.hook} path={a.path} error={type(e).__name__}: {e}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
