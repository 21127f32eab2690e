"""The comparison machinery of ``benchmarks/realworld.py``, on a tiny local
package: the benchmark itself (third-party suites from PyPI) is too slow for
CI, but what it concludes rests on this."""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

REALWORLD = Path(__file__).resolve().parent.parent / "benchmarks" / "realworld.py"


@pytest.fixture(scope="module")
def realworld() -> ModuleType:
    spec = importlib.util.spec_from_file_location("realworld", REALWORLD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["realworld"] = module  # dataclasses look their module up
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules["realworld"]
    return module


def write_project(root: Path, tests: str) -> Path:
    """A project tree as an sdist unpacks: ``src/tinypkg`` and ``tests/``."""
    (root / "src" / "tinypkg").mkdir(parents=True)
    (root / "src" / "tinypkg" / "__init__.py").write_text(
        textwrap.dedent(
            """
            import sys

            from .core import double


            def caller():
                return sys._getframe(1).f_code.co_name
            """
        )
    )
    (root / "src" / "tinypkg" / "core.py").write_text("def double(x):\n    return 2 * x\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_tiny.py").write_text(textwrap.dedent(tests))
    return root


TESTS = """
    import sys

    import pytest

    import tinypkg


    def test_double():
        assert tinypkg.double(2) == 4


    def test_fails_alike():
        assert tinypkg.double(2) == 5


    @pytest.mark.skip(reason="skipped alike")
    def test_skipped():
        pass


    def test_caller():
        assert tinypkg.caller() == "test_caller"
    """


def test_the_same_outcomes_are_found_equal_and_counted(
    realworld: ModuleType, tmp_path: Path
) -> None:
    tree = write_project(tmp_path / "tiny-1.0", TESTS)
    suite = realworld.Suite("tiny", "1.0", "tinypkg", "a test", source="src")
    scratch = tmp_path / "runs"
    scratch.mkdir()
    result = realworld.compare(tree, suite, sys.executable, 1, scratch)
    assert result.counts == {"passed": 2, "failure": 1, "error": 0, "skipped": 1}
    assert result.plain == result.traced and result.differing == []
    assert result.plain["tests.test_tiny::test_fails_alike"] == "failure"
    assert len(result.plain_cpu) == len(result.traced_cpu) == 1
    assert result.plain_cpu[0] > 0 and result.traced_cpu[0] > 0
    # the traced run really traced the package, and said so
    if hasattr(sys, "monitoring"):  # the sysmon engine adds no frame: frame readers traced too
        assert result.instrumented == "ringtrace: instrument tinypkg: 2 functions traced"
    else:
        assert result.instrumented.startswith("ringtrace: instrument tinypkg: 1 functions traced")
        assert "1 left untraced because they read frames (tinypkg.caller)" in result.instrumented
    text = "\n".join(result.report())
    assert "outcomes that differ traced vs plain: 0" in text
    assert "4 tests" in text


def test_an_outcome_that_changes_when_traced_is_reported(
    realworld: ModuleType, tmp_path: Path
) -> None:
    tree = write_project(
        tmp_path / "tiny-1.0",
        TESTS
        + """

    def test_plain_only():
        assert "--ringtrace" not in " ".join(sys.argv)
    """,
    )
    suite = realworld.Suite("tiny", "1.0", "tinypkg", "a test", source="src")
    scratch = tmp_path / "runs"
    scratch.mkdir()
    result = realworld.compare(tree, suite, sys.executable, 1, scratch)
    assert result.differing == ["tests.test_tiny::test_plain_only"]
    assert "test_plain_only (passed -> failure)" in "\n".join(result.report())


def test_outcomes_read_every_report_of_a_test(realworld: ModuleType, tmp_path: Path) -> None:
    junit = tmp_path / "r.xml"
    junit.write_text(
        '<testsuites><testsuite name="s">'
        '<testcase classname="t" name="a"/>'
        '<testcase classname="t" name="b"><failure message="x"/></testcase>'
        '<testcase classname="t" name="b"><error message="y"/></testcase>'
        '<testcase classname="t" name="c"><skipped message="z"/></testcase>'
        "</testsuite></testsuites>"
    )
    assert realworld.outcomes(junit) == {
        "t::a": "passed",
        "t::b": "failure+error",
        "t::c": "skipped",
    }
