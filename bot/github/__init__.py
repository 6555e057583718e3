"""GitHub: a webhook (sans-I/O verification in `verify`, routing in `router`, one module per behaviour:
`labeler` labels issues, `learn` turns people's labels and merged fixes into training examples, `refresh`
queues a refresh on push), a PyGithub client factory (`client`) and the Starlette route (`routes`)."""


def routes(state, **kwargs) -> list:
    """Starlette routes the HTTP service mounts: POST /github/webhook (see `bot.github.webhook`)."""
    from .webhook import github_routes

    return github_routes(state, **kwargs)
