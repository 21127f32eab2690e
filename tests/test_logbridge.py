"""The logging bridge: log records and shown warnings as events, in place,
without changing what logging or warnings do for anyone else."""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Iterator

import pytest
from plugin_helpers import FAST, make_app, section

import instrument
from instrument import Recorder
from instrument.logbridge import logging_level
from instrument.view.render import describe_fields


@pytest.fixture
def bridge(recorder: Recorder) -> Iterator[Recorder]:
    instrument.record_logging("DEBUG")
    yield recorder
    instrument.stop_logging()


class _Keep(logging.Handler):
    """A handler that keeps what it receives, with its own level filter."""

    def __init__(self, level: int = logging.NOTSET):
        super().__init__(level)
        self.records: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.levelname, record.getMessage()))


@pytest.fixture
def isolated_logger() -> Iterator[logging.Logger]:
    logger = logging.getLogger("ringtrace.test.app")
    logger.setLevel(logging.DEBUG)
    yield logger
    logger.setLevel(logging.NOTSET)
    logger.handlers.clear()


def test_a_log_record_is_an_event_with_level_logger_message_and_exception(
    bridge: Recorder, isolated_logger: logging.Logger
) -> None:
    items = [1, 2]
    isolated_logger.info("cart %s has %d items", items, len(items))
    items.append(3)  # formatted when logged, not when read
    try:
        raise KeyError("sku")
    except KeyError:
        isolated_logger.exception("lookup failed")
    logs = [ev for ev in instrument.snapshot().events if ev.name == "log"]
    assert [ev.fields for ev in logs] == [
        {"level": "INFO", "logger": "ringtrace.test.app", "message": "cart [1, 2] has 2 items"},
        {
            "level": "ERROR",
            "logger": "ringtrace.test.app",
            "message": "lookup failed",
            "exception": "KeyError",
        },
    ]
    assert {ev.thread_name for ev in logs} == {threading.current_thread().name}
    assert (
        describe_fields(logs[1]) == "ERROR ringtrace.test.app: lookup failed  exception='KeyError'"
    )


def test_the_level_filters_and_off_records_nothing(
    recorder: Recorder, isolated_logger: logging.Logger
) -> None:
    instrument.record_logging("WARNING")
    try:
        assert logging_level() == logging.WARNING
        isolated_logger.info("quiet")
        isolated_logger.warning("loud")
        instrument.stop_logging()
        assert logging_level() is None
        isolated_logger.error("after")
    finally:
        instrument.stop_logging()
    messages = [ev.fields["message"] for ev in instrument.snapshot().events if ev.name == "log"]
    assert messages == ["loud"]


def test_bad_levels_are_refused_where_given() -> None:
    with pytest.raises(ValueError, match="level must be one of DEBUG"):
        instrument.record_logging("LOUD")
    with pytest.raises(TypeError):
        instrument.record_logging(True)
    assert logging_level() is None


def test_other_handlers_and_logger_levels_are_untouched(
    bridge: Recorder, isolated_logger: logging.Logger
) -> None:
    root = logging.getLogger()
    picky = _Keep(logging.ERROR)  # filters by its own level
    everything = _Keep()
    root.addHandler(picky)
    isolated_logger.addHandler(everything)
    levels = (root.level, isolated_logger.level)
    try:
        isolated_logger.debug("d")
        isolated_logger.warning("w")
        isolated_logger.error("e")
    finally:
        root.removeHandler(picky)
    assert picky.records == [("ERROR", "e")]
    assert everything.records == [("DEBUG", "d"), ("WARNING", "w"), ("ERROR", "e")]
    assert (root.level, isolated_logger.level) == levels
    assert isolated_logger.propagate is True
    recorded = [ev.fields["message"] for ev in instrument.snapshot().events if ev.name == "log"]
    assert recorded == ["d", "w", "e"]


def test_a_record_that_finds_no_other_handler_still_reaches_last_resort(
    bridge: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = [h for h in saved if isinstance(h, instrument.logbridge.RingtraceLogHandler)]
    try:
        logging.getLogger("ringtrace.lonely").warning("nobody listens")
        logging.getLogger("ringtrace.lonely").info("below last resort")
    finally:
        root.handlers = saved
    assert capsys.readouterr().err == "nobody listens\n"
    recorded = [ev.fields["message"] for ev in instrument.snapshot().events if ev.name == "log"]
    assert recorded == ["nobody listens"]


def test_a_record_whose_message_cannot_be_formatted_is_noted_not_raised(
    bridge: Recorder,
) -> None:
    # Handed to the bridge's handler directly: pytest's own capture handler
    # raises on such a record.
    (handler,) = [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, instrument.logbridge.RingtraceLogHandler)
    ]
    record = logging.LogRecord("app", logging.INFO, __file__, 1, "%d items", ("x",), None)
    assert handler.handle(record) is True
    (log,) = [ev for ev in instrument.snapshot().events if ev.name == "log"]
    assert log.fields["message"].startswith("<message could not be formatted: TypeError")


def test_a_shown_warning_is_an_event_and_still_reaches_catch_warnings(bridge: Recorder) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        line = _warn_here()
    assert [str(w.message) for w in caught] == ["old api"]
    assert caught[0].lineno == line  # attribution unchanged
    (ev,) = [ev for ev in instrument.snapshot().events if ev.name == "warning"]
    assert ev.fields == {
        "category": "DeprecationWarning",
        "message": "old api",
        "where": f"{__file__}:{line}",
    }
    assert describe_fields(ev) == f"DeprecationWarning: old api (at {__file__}:{line})"


def _warn_here() -> int:
    warnings.warn("old api", DeprecationWarning, stacklevel=1)
    return _warn_here.__code__.co_firstlineno + 1


def test_an_ignored_warning_is_not_recorded(bridge: Recorder) -> None:
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("ignore")
        warnings.warn("hidden", UserWarning, stacklevel=1)
    assert not [ev for ev in instrument.snapshot().events if ev.name == "warning"]


def test_stop_logging_puts_the_warnings_hook_back(recorder: Recorder) -> None:
    original = warnings._showwarnmsg  # type: ignore[attr-defined]
    instrument.record_logging()
    assert warnings._showwarnmsg is not original  # type: ignore[attr-defined]
    instrument.stop_logging()
    assert warnings._showwarnmsg is original  # type: ignore[attr-defined]
    assert not any(
        isinstance(h, instrument.logbridge.RingtraceLogHandler)
        for h in logging.getLogger().handlers
    )


def test_log_events_interleave_in_place_with_traced_events_of_several_threads(
    bridge: Recorder, isolated_logger: logging.Logger
) -> None:
    both_inside = threading.Barrier(3)

    @instrument.trace
    def work(n: int) -> None:
        isolated_logger.warning("worker %d inside", n)
        both_inside.wait()  # every worker is inside its call before any logs again
        both_inside.wait()
        isolated_logger.warning("worker %d leaving", n)

    threads = [threading.Thread(target=work, args=(n,), name=f"w{n}") for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = instrument.snapshot().events
    for n in range(3):
        mine = [
            (ev.kind, ev.name.rsplit(".", 1)[-1], ev.fields.get("message"))
            for ev in events
            if ev.thread_name == f"w{n}"
        ]
        assert mine == [
            ("entry", "work", None),
            ("event", "log", f"worker {n} inside"),
            ("event", "log", f"worker {n} leaving"),
            ("exit", "work", None),
        ], mine
    # Across threads, in time order: every "inside" before any "leaving".
    messages = [ev.fields["message"] for ev in events if ev.name == "log"]
    assert sorted(messages[:3]) == [f"worker {n} inside" for n in range(3)]
    assert sorted(messages[3:]) == [f"worker {n} leaving" for n in range(3)]
    stamps = [ev.timestamp for ev in events]
    assert stamps == sorted(stamps)


# -- the pytest plugin -------------------------------------------------------------

_LOGGING_TEST = """
import logging
import warnings

import app

def test_fails():
    log = logging.getLogger("shop")
    app.step(1)
    log.warning("stock low for %s", "lamp")
    warnings.warn("old api", DeprecationWarning)
    app.step(2)
    assert False
"""


def test_plugin_shows_log_records_and_warnings_in_place(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(test_it=_LOGGING_TEST)
    result = pytester.runpytest("--ringtrace", *FAST)
    result.assert_outcomes(failed=1)
    text = section(result.stdout.str(), "ringtrace call")
    # the failure view: one line per call, log and warning events in place
    lines = [line.split(" ms  ", 1)[1].strip() for line in text.splitlines() if " ms  " in line]
    assert [line.split("(")[0].split("  ")[0].strip() for line in lines] == [
        "app.step",
        "* app.tick n=1 note='' password='[redacted]'",
        "* log WARNING shop: stock low for lamp",
        "* warning DeprecationWarning: old api",
        "app.step",
        "* app.tick n=2 note='' password='[redacted]'",
        ">>> FAILURE at test_it.py:12: AssertionError: assert False",
    ]
    flat = pytester.runpytest("--ringtrace", *FAST, "--ringtrace-view=flat").stdout.str()
    names = [line.split()[4] for line in section(flat, "ringtrace call").splitlines()[3:-1]]
    step = "app.step"
    assert names == [step, "app.tick", step, "log", "warning", step, "app.tick", step]
    assert "WARNING shop: stock low for lamp" in text
    assert "DeprecationWarning: old api (at " in text


def test_plugin_log_level_option_and_ini(pytester: pytest.Pytester) -> None:
    make_app(pytester)
    pytester.makepyfile(test_it=_LOGGING_TEST)
    result = pytester.runpytest("--ringtrace", *FAST, "--ringtrace-log-level=off")
    text = section(result.stdout.str(), "ringtrace call")
    assert "* log " not in text and "* warning " not in text
    assert "app.tick" in text
    pytester.makeini("[pytest]\nringtrace_log_level = ERROR\n")
    result = pytester.runpytest("--ringtrace", *FAST)
    text = section(result.stdout.str(), "ringtrace call")
    assert "stock low" not in text and "DeprecationWarning: old api" in text
    result = pytester.runpytest("--ringtrace", *FAST, "--ringtrace-log-level=LOUD")
    result.stderr.fnmatch_lines(
        ["*--ringtrace-log-level: expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL or off*"]
    )
