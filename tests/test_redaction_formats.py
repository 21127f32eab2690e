"""Secrets stay out of snapshot files, in every format, and the files are private.

Values under credential-like names are replaced by ``[redacted]`` when they
are captured, at record time, nested too (dict keys at any depth, HTTP
headers in dicts and lists of pairs, URL user-info and query values,
traced arguments, return values, exception messages; see
``tests/_secrets_app.py``), so no format can leak them. Each registered
format is written and its bytes (decompressed, every file of a directory
format) searched for the secret values. With redaction turned off the same
search finds every one of them: that proves the search looks where the
values would be. The terminal section is checked the same way in
``test_capture.py``.

Snapshot files are created readable by their owner only (0600, directories
0700), whatever the umask.
"""

from __future__ import annotations

import gzip
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _secrets_app as app
import pytest

import instrument
from instrument import Channel, Recorder, Snapshot
from instrument.formats import format_names, formats, write_snapshot

BUILT_IN = ["json", "json.gz", "perfetto", "html", "ctf"]
FORMATS = format_names()
CREDENTIAL_NAMES = [
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "authorization",
    "cookie",
    "session",
    "private_key",
    # the same fragments inside longer names, any case, dashes for underscores
    "user_password",
    "Authorization",
    "X-Api-Key",
    "refresh_token",
    "session_id",
]


def secret_of(name: str) -> str:
    """A value that appears nowhere else and survives any escaping as it is."""
    return "Sekr1t" + "".join(c for c in name if c.isalnum()) + "Zq9"


@instrument.trace(name="auth.login", fields="*")
def login(user: str, password: str, api_key: str) -> str:
    return user


@pytest.fixture
def session_context() -> Iterator[None]:
    """A dynamic context whose name looks like a credential."""
    instrument.register_context("session_token", lambda: secret_of("session_token"))
    yield
    instrument.unregister_context("session_token")


def record_secrets() -> None:
    fields = {name: secret_of(name) for name in CREDENTIAL_NAMES}
    instrument.event("http.request", method="GET", **fields)
    login("alice", secret_of("login-password"), api_key=secret_of("login-api_key"))
    with instrument.span("auth.refresh", token=secret_of("span-token"), user="alice"):
        pass
    app.record_nested_secrets()


ALL_SECRETS = [
    *(secret_of(n) for n in CREDENTIAL_NAMES),
    secret_of("login-password"),
    secret_of("login-api_key"),
    secret_of("span-token"),
    secret_of("session_token"),
    *app.SECRETS,
]


def snapshot_with(start_recording: Callable[..., Recorder], redact: Any) -> Snapshot:
    start_recording(
        Channel("c", subbuf_size=64, num_subbuf=4, contexts=("thread", "pid", "session_token")),
        redact=redact,
    )
    record_secrets()
    snap = instrument.snapshot()
    instrument.stop()
    return snap


def written_bytes(path: Path) -> bytes:
    """Everything a written snapshot holds, decompressed, all files of a directory."""
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    data = b""
    for file in files:
        raw = file.read_bytes()
        data += gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    return data


def test_the_built_in_formats_are_registered() -> None:
    assert set(BUILT_IN) <= set(FORMATS)


@pytest.mark.parametrize("fmt", FORMATS)
def test_credential_like_fields_are_redacted_in_every_format(
    fmt: str,
    start_recording: Callable[..., Recorder],
    session_context: None,
    tmp_path: Path,
) -> None:
    snap = snapshot_with(start_recording, redact=True)
    data = written_bytes(write_snapshot(snap, tmp_path / "snap", fmt))
    leaked = [s for s in ALL_SECRETS if s.encode() in data]
    assert leaked == []
    assert b"[redacted]" in data  # the fields are there, their values are not
    assert b"alice" in data  # and fields with other names are kept as they are


@pytest.mark.parametrize("fmt", FORMATS)
def test_with_redaction_turned_off_every_value_is_written(
    fmt: str,
    start_recording: Callable[..., Recorder],
    session_context: None,
    tmp_path: Path,
) -> None:
    """The control for the test above: the search finds the values when they are there."""
    snap = snapshot_with(start_recording, redact=False)
    data = written_bytes(write_snapshot(snap, tmp_path / "snap", fmt))
    missing = [s for s in ALL_SECRETS if s.encode() not in data]
    assert missing == []
    assert b"[redacted]" not in data


@pytest.mark.parametrize("fmt", FORMATS)
def test_the_redacted_names_are_configurable(
    fmt: str, start_recording: Callable[..., Recorder], tmp_path: Path
) -> None:
    start_recording(Channel("c", subbuf_size=64, num_subbuf=4), redact=["customer"])
    instrument.event("order", customer_ref="Cust0mer1d42", password="Pl4inAsAsked")
    snap = instrument.snapshot()
    instrument.stop()
    data = written_bytes(write_snapshot(snap, tmp_path / "snap", fmt))
    assert b"Cust0mer1d42" not in data and b"[redacted]" in data
    assert b"Pl4inAsAsked" in data  # the list given replaces the default one


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0: whatever the files get, they get from the writer itself."""
    before = os.umask(0)
    yield
    os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("fmt", FORMATS)
def test_snapshot_files_are_readable_by_their_owner_only(
    fmt: str, start_recording: Callable[..., Recorder], open_umask: None, tmp_path: Path
) -> None:
    start_recording(Channel("c", subbuf_size=64, num_subbuf=4))
    instrument.event("something", n=1)
    snap = instrument.snapshot()
    instrument.stop()
    out = tmp_path / "out"
    out.mkdir()
    path = write_snapshot(snap, out / "snap", fmt)
    if formats()[fmt].directory:
        assert path.is_dir() and mode(path) == 0o700
        inside = [p for p in path.rglob("*")]
        assert inside and all(mode(p) == (0o700 if p.is_dir() else 0o600) for p in inside)
    else:
        assert path.is_file() and mode(path) == 0o600
    assert [p.name for p in out.iterdir()] == [path.name]  # no temporary file left behind


@pytest.mark.parametrize("fmt", [f for f in FORMATS if not formats()[f].directory])
def test_rewriting_a_snapshot_file_makes_it_private_again(
    fmt: str, start_recording: Callable[..., Recorder], open_umask: None, tmp_path: Path
) -> None:
    start_recording(Channel("c", subbuf_size=64, num_subbuf=4))
    instrument.event("something", n=1)
    snap: Snapshot = instrument.snapshot()
    instrument.stop()
    first = write_snapshot(snap, tmp_path / "snap", fmt)
    first.chmod(0o644)  # someone opened it up
    again = write_snapshot(snap, tmp_path / "snap", fmt)
    assert again == first and mode(again) == 0o600
