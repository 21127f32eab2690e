"""Snapshot directories: one per session, the last N kept (like tmp_path),
nothing that is not ours removed, and one directory per pytest-xdist run."""

from __future__ import annotations

import pytest
from plugin_helpers import FAST, make_app

from pytest_ringtrace.artifacts import SessionDirectory, new_session_directory

FAILS = "from app import step\ndef test_x():\n    step(1)\n    assert 0\n"


def test_numbers_sort_in_run_order_and_only_the_last_n_are_kept(tmp_path):
    base = tmp_path / ".ringtrace"
    base.mkdir()
    (base / "notes.txt").write_text("mine")
    (base / "session-old").mkdir()  # not of our form: kept
    (base / "session-12").mkdir()  # too few digits: not ours, kept
    (base / "old-flat--call--attempt1.json").write_text("{}")  # an earlier layout: kept
    made = [new_session_directory(base, keep=3) for _ in range(12)]
    assert [p.name for p in made[:2]] == ["session-000001", "session-000002"]
    assert made == sorted(made, key=lambda p: p.name)  # the names sort in run order
    assert sorted(p.name for p in base.iterdir()) == [
        "notes.txt",
        "old-flat--call--attempt1.json",
        "session-000010",
        "session-000011",
        "session-000012",
        "session-12",
        "session-old",
    ]


def test_a_symlink_named_like_a_session_is_not_followed(tmp_path):
    base = tmp_path / "base"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious").write_text("x")
    base.mkdir()
    (base / "session-000001").symlink_to(outside, target_is_directory=True)
    for _ in range(3):
        new_session_directory(base, keep=1)
    assert (outside / "precious").read_text() == "x"
    assert (base / "session-000001").is_symlink()


def test_an_unused_session_directory_is_removed_and_a_used_one_kept(tmp_path):
    empty = SessionDirectory(tmp_path, keep=3)
    assert empty.created is None
    path = empty.path
    empty.remove_if_empty()
    assert not path.exists() and empty.created is None
    used = SessionDirectory(tmp_path, keep=3)
    (used.path / "a.json").write_text("{}")
    used.remove_if_empty()
    assert (used.path / "a.json").exists()


def test_sessions_keep_the_last_three_by_default(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(FAILS)
    for _ in range(5):
        pytester.runpytest("--ringtrace", *FAST).assert_outcomes(failed=1)
    kept = sorted(p.name for p in (pytester.path / ".ringtrace").iterdir())
    assert kept == ["session-000003", "session-000004", "session-000005"]


def test_retention_count_from_the_ini_file(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makeini("[pytest]\nringtrace_retention_count = 1\n")
    pytester.makepyfile(FAILS)
    for _ in range(3):
        pytester.runpytest("--ringtrace", *FAST).assert_outcomes(failed=1)
    assert [p.name for p in (pytester.path / ".ringtrace").iterdir()] == ["session-000003"]


@pytest.mark.parametrize("value", ["0", "many", "-2"])
def test_retention_count_is_checked(pytester: pytest.Pytester, value: str):
    pytester.makeini(f"[pytest]\nringtrace_retention_count = {value}\n")
    with pytest.raises(pytest.UsageError, match=r"^ini option ringtrace_retention_count: expected"):
        pytester.parseconfigure()


def test_a_passing_session_leaves_no_directory(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile("def test_ok():\n    pass\n")
    pytester.runpytest("--ringtrace", *FAST).assert_outcomes(passed=1)
    assert not (pytester.path / ".ringtrace").exists() or not list(
        (pytester.path / ".ringtrace").iterdir()
    )


def test_xdist_workers_share_one_session_directory(pytester: pytest.Pytester):
    make_app(pytester)
    pytester.makepyfile(
        "import pytest\nfrom app import step\n"
        "@pytest.mark.parametrize('n', range(4))\n"
        "def test_x(n):\n    step(n)\n    assert 0\n"
    )
    result = pytester.runpytest_subprocess("--ringtrace", *FAST, "-n", "2")
    result.assert_outcomes(failed=4)
    sessions = list((pytester.path / ".ringtrace").iterdir())
    assert [p.name for p in sessions] == ["session-000001"]
    files = sorted(p.name for p in sessions[0].iterdir())
    assert len(files) == 4
    assert {name.rsplit("--", 1)[-1] for name in files} == {"gw0.json", "gw1.json"}
    result.stdout.fnmatch_lines(["*- ringtrace: 4 snapshots in .ringtrace/session-000001 -*"])
