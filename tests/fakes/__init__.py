"""Local stand-ins for Slack's Web API and GitHub's REST API: real HTTP servers on 127.0.0.1, driven by
the real clients (slack_sdk WebClient, PyGithub), recording every call."""
