"""Secrets in every place a recorded value can carry one.

The redaction tests record these, write every format and the terminal
section, and search the output for the secret values (each appears nowhere
else and survives any escaping as it is). An inner pytest session of the
plugin tests imports this same file.
"""

from __future__ import annotations

import contextlib
from typing import Any

import instrument


def secret(tag: str) -> str:
    return "Sekr1t" + "".join(c for c in tag if c.isalnum()) + "Zq9"


@instrument.trace(name="auth.login", fields="*", retval=True)
def login(user: str, password: str, api_key: str, config: Any = None) -> dict[str, str]:
    return {"user": user, "access_token": secret("retval-token")}


#: (case, secret) for every place a secret is recorded below.
PLACES = [
    ("dict key, nested", "deep-password"),
    ("dict key, deeper", "deeper-apikey"),
    ("header Authorization", "hdr-authorization"),
    ("header Cookie", "hdr-cookie"),
    ("header X-Api-Key", "hdr-x-api-key"),
    ("header Set-Cookie", "hdr-set-cookie"),
    ("header Proxy-Authorization", "hdr-proxy-authorization"),
    ("pair Authorization", "pair-authorization"),
    ("pair Cookie", "pair-cookie"),
    ("URL user-info", "userinfo"),
    ("URL query value", "query-token"),
    ("form value", "form-password"),
    ("traced argument", "arg-password"),
    ("traced argument api_key", "arg-apikey"),
    ("traced argument, nested", "arg-nested"),
    ("return value, nested", "retval-token"),
    ("span field, nested header", "span-auth"),
    ("exception message URL", "exc-userinfo"),
]
SECRETS = [secret(tag) for _case, tag in PLACES]


@instrument.trace(name="auth.fail")
def fail_with_url() -> None:
    raise ConnectionError(f"cannot reach https://bot:{secret('exc-userinfo')}@example.com/")


def record_nested_secrets() -> None:
    """Record one of each (alice is the non-secret control value)."""
    instrument.event(
        "nested.dict",
        data={
            "user": "alice",
            "auth": {
                "password": secret("deep-password"),
                "level": {"api_key": secret("deeper-apikey")},
            },
        },
    )
    for names in (
        ("Authorization", "Cookie"),
        ("X-Api-Key", "Set-Cookie"),
        ("Proxy-Authorization",),
    ):
        headers = {name: secret("hdr-" + name.lower()) for name in names}
        instrument.event("http.headers", headers={**headers, "X-User": "alice"})
    instrument.event(
        "http.pairs",
        headers=[
            ("Authorization", secret("pair-authorization")),
            ("Cookie", secret("pair-cookie")),
            ("X-User", "alice"),
        ],
    )
    instrument.event("http.url", url=f"https://alice:{secret('userinfo')}@example.com/path")
    instrument.event(
        "http.query",
        url=f"https://example.com/api?page=2&access_token={secret('query-token')}&user=alice",
        body=f"user=alice&password={secret('form-password')}",
    )
    login(
        "alice",
        secret("arg-password"),
        api_key=secret("arg-apikey"),
        config={"client_secret": secret("arg-nested"), "user": "alice"},
    )
    with instrument.span(
        "auth.refresh", request={"headers": {"Authorization": secret("span-auth")}}
    ):
        pass
    with contextlib.suppress(ConnectionError):
        fail_with_url()
