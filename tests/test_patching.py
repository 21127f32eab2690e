"""``patch``/``unpatch``/``patch_module``: wrapt patches on code nobody
decorated, restored exactly, including import hooks not fired yet."""

from __future__ import annotations

import importlib
import inspect
import itertools
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from wrapt import importer

import instrument
from instrument import Recorder
from instrument.engines import unwrap_descriptor
from instrument.engines.wrapt_engine import TracedFunction

_counter = itertools.count()

MODULE = '''
"""A module to patch."""

def greet(name, punctuation="!"):
    return f"hello {name}{punctuation}"

def shout(text):
    return text.upper()

class Base:
    def describe(self):
        return f"base {self.kind()}"

    def kind(self):
        return "base"

class Child(Base):
    factor = 3

    def __init__(self, value=1):
        self.value = value

    def scaled(self, n):
        return n * self.value

    @classmethod
    def make(cls, value):
        return cls(value)

    @staticmethod
    def double(n):
        return n * 2

    def kind(self):
        return "child"

NOT_CALLABLE = 42
'''


class Modules:
    """Writes importable modules under a temporary directory on ``sys.path``
    and forgets them (``sys.modules``, wrapt hooks) afterwards."""

    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch):
        self.root = root
        self.names: list[str] = []
        monkeypatch.syspath_prepend(str(root))

    def unique(self, stem: str) -> str:
        name = f"rt_{stem}_{next(_counter)}"
        self.names.append(name)
        return name

    def write(self, name: str, source: str = MODULE) -> str:
        """Write module (or ``pkg.mod`` inside an existing package) ``name``."""
        path = self.root.joinpath(*name.split(".")).with_suffix(".py")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        return name

    def package(self, name: str, files: dict[str, str]) -> str:
        """Write package ``name`` with ``files`` (relative path -> source)."""
        for rel, source in files.items():
            path = self.root / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        return name

    def cleanup(self) -> None:
        for name in self.names:
            for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
                del sys.modules[mod]
            for hooked in [m for m in importer._post_import_hooks if m.startswith(name)]:
                del importer._post_import_hooks[hooked]


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Modules]:
    mods = Modules(tmp_path, monkeypatch)
    yield mods
    mods.cleanup()


@pytest.fixture(autouse=True)
def _no_patch_left_behind() -> Iterator[None]:
    yield
    left = instrument.patched()
    for target in left:
        instrument.unpatch(target)
    assert left == [], "the test left patches applied"


def imported(name: str) -> ModuleType:
    return importlib.import_module(name)


def calls() -> list[tuple[str, str, dict[str, Any]]]:
    return [(ev.kind, ev.name, ev.fields) for ev in instrument.snapshot().events]


def hooks_for(name: str) -> list[Any]:
    return list(importer._post_import_hooks.get(name) or [])


# -- functions and methods ----------------------------------------------------


def test_function_patch_round_trip_restores_the_exact_object(
    modules: Modules, recorder: Recorder
) -> None:
    mod = imported(modules.write(modules.unique("func")))
    original = mod.greet
    handle = instrument.patch(f"{mod.__name__}:greet", fields=["name"], retval=True)
    assert handle.applied and repr(handle).endswith("applied>")
    assert isinstance(mod.greet, TracedFunction) and mod.greet.__wrapped__ is original
    assert inspect.signature(mod.greet) == inspect.signature(original)
    assert mod.greet("ann") == "hello ann!"
    assert instrument.patched() == [f"{mod.__name__}:greet"]
    instrument.unpatch(f"{mod.__name__}:greet")
    assert mod.greet is original
    assert instrument.patched() == []
    assert mod.greet("bob") == "hello bob!"
    entry, exit_ = calls()
    assert entry == ("entry", f"{mod.__name__}.greet", {"name": "ann"})
    assert exit_[2]["retval"] == "hello ann!"


def test_methods_classmethods_staticmethods_round_trip(
    modules: Modules, recorder: Recorder
) -> None:
    mod = imported(modules.write(modules.unique("meth")))
    originals = {name: vars(mod.Child)[name] for name in ("scaled", "make", "double")}
    handles = [instrument.patch(f"{mod.__name__}:Child.{name}", fields="*") for name in originals]
    child = mod.Child.make(4)
    assert isinstance(child, mod.Child) and child.value == 4
    assert child.scaled(2) == 8 and mod.Child.scaled(child, 3) == 12
    assert mod.Child.double(5) == 10 and child.double(6) == 12
    entries = [
        (name.rsplit(".", 1)[-1], fields) for kind, name, fields in calls() if kind == "entry"
    ]
    assert entries == [
        ("make", {"value": 4}),
        ("scaled", {"n": 2}),
        ("scaled", {"n": 3}),
        ("double", {"n": 5}),
        ("double", {"n": 6}),
    ]
    for handle in handles:
        handle.unpatch()
    for name, original in originals.items():
        assert vars(mod.Child)[name] is original
    assert type(vars(mod.Child)["make"]) is classmethod
    assert type(vars(mod.Child)["double"]) is staticmethod


def test_an_inherited_method_is_removed_again_on_unpatch(
    modules: Modules, recorder: Recorder
) -> None:
    mod = imported(modules.write(modules.unique("inherit")))
    assert "describe" not in vars(mod.Child)
    with instrument.patch(f"{mod.__name__}:Child.describe"):
        assert "describe" in vars(mod.Child)
        assert mod.Child().describe() == "base child"
        assert mod.Base().describe() == "base base"  # the base class is untouched
    assert "describe" not in vars(mod.Child)
    assert mod.Child.describe is mod.Base.describe
    assert [name for kind, name, _ in calls() if kind == "entry"] == [
        f"{mod.__name__}.Base.describe"
    ]


def test_patching_twice_never_wraps_twice(modules: Modules, recorder: Recorder) -> None:
    mod = imported(modules.write(modules.unique("twice")))
    original = mod.shout
    first = instrument.patch(f"{mod.__name__}:shout")
    wrapper = mod.shout
    assert instrument.patch(f"{mod.__name__}:shout") is first
    assert instrument.patch(f"{mod.__name__}:shout", name="other") is first
    assert mod.shout is wrapper and mod.shout.__wrapped__ is original
    assert mod.shout("a") == "A"
    assert len(calls()) == 2
    instrument.unpatch(first)
    assert mod.shout is original


def test_a_function_already_traced_is_not_wrapped_again(
    modules: Modules, recorder: Recorder
) -> None:
    name = modules.write(
        modules.unique("traced"),
        """
        import instrument

        @instrument.trace
        def work():
            return 1

        class K:
            @instrument.trace
            @classmethod
            def build(cls):
                return cls
        """,
    )
    mod = imported(name)
    work, build = mod.work, vars(mod.K)["build"]
    handles = [instrument.patch(f"{name}:work"), instrument.patch(f"{name}:K.build")]
    assert mod.work is work and vars(mod.K)["build"] is build
    assert mod.work() == 1 and mod.K.build() is mod.K
    assert [kind for kind, _, _ in calls()] == ["entry", "exit", "entry", "exit"]
    for handle in handles:
        handle.unpatch()
    assert mod.work is work and vars(mod.K)["build"] is build


def test_scoped_patch_is_undone_even_when_the_block_raises(
    modules: Modules, recorder: Recorder
) -> None:
    mod = imported(modules.write(modules.unique("scoped")))
    original = mod.greet
    with pytest.raises(RuntimeError), instrument.patch(f"{mod.__name__}:greet") as handle:
        assert isinstance(mod.greet, TracedFunction)
        raise RuntimeError("inside")
    assert mod.greet is original
    assert not handle.applied and instrument.patched() == []


# -- modules not imported yet -------------------------------------------------


def test_a_target_in_a_module_not_imported_yet_is_patched_on_import(
    modules: Modules, recorder: Recorder
) -> None:
    name = modules.write(modules.unique("later"))
    assert name not in sys.modules
    handle = instrument.patch(f"{name}:Child.scaled", fields=["n"])
    assert not handle.applied and repr(handle).endswith("pending>")
    assert name not in sys.modules  # patching never imports
    assert instrument.patched() == [f"{name}:Child.scaled"]
    mod = imported(name)
    assert handle.applied
    assert isinstance(vars(mod.Child)["scaled"], TracedFunction)
    assert mod.Child(2).scaled(5) == 10
    assert calls()[0] == ("entry", f"{name}.Child.scaled", {"n": 5})
    original = vars(mod.Child)["scaled"].__wrapped__
    handle.unpatch()
    assert vars(mod.Child)["scaled"] is original
    assert hooks_for(name) == []


def test_unpatch_before_import_cancels_the_hook(modules: Modules) -> None:
    name = modules.write(modules.unique("cancel"))
    handle = instrument.patch(f"{name}:greet")
    assert len(hooks_for(name)) == 1
    instrument.unpatch(f"{name}:greet")
    assert hooks_for(name) == []
    assert instrument.patched() == []
    mod = imported(name)
    assert not isinstance(mod.greet, TracedFunction)
    assert inspect.isfunction(mod.greet) and mod.greet.__module__ == name
    assert not handle.applied and repr(handle).endswith("cancelled>")


def test_a_pending_target_missing_at_import_warns_and_the_import_succeeds(
    modules: Modules,
) -> None:
    name = modules.write(modules.unique("missing"))
    instrument.patch(f"{name}:no_such_function")
    with pytest.warns(RuntimeWarning, match="no_such_function"):
        mod = imported(name)
    assert mod.greet("x") == "hello x!"
    assert instrument.patched() == []  # neither applied nor waiting
    with pytest.raises(AttributeError, match="no_such_function"):
        instrument.patch(f"{name}:no_such_function")  # now a clear error


# -- patch_module -------------------------------------------------------------

PACKAGE = {
    "__init__.py": """
        from .alpha import public
        """,
    "alpha.py": """
        def public():
            return "public"

        def skip_me():
            return "skipped"

        def _private():
            return "private"

        class Service:
            def __init__(self):
                self.ready = True

            def run(self):
                return self._step()

            def _step(self):
                return "ran"

            @classmethod
            def create(cls):
                return cls()

            @staticmethod
            def version():
                return 2
        """,
    "beta.py": """
        def other():
            return "other"
        """,
    "sub/__init__.py": "",
    "sub/gamma.py": """
        from ..alpha import public as borrowed

        def late():
            return "late"
        """,
}


def traced_attrs(module: ModuleType) -> set[str]:
    found = set()
    for attr, value in vars(module).items():
        if isinstance(unwrap_descriptor(value), TracedFunction):
            found.add(attr)
        elif inspect.isclass(value) and value.__module__ == module.__name__:
            found.update(
                f"{attr}.{meth}"
                for meth, member in vars(value).items()
                if isinstance(unwrap_descriptor(member), TracedFunction)
            )
    return found


def test_patch_module_with_include_and_exclude(modules: Modules, recorder: Recorder) -> None:
    pkg = modules.package(modules.unique("pkg"), PACKAGE)
    imported(pkg)
    alpha, beta = imported(f"{pkg}.alpha"), imported(f"{pkg}.beta")
    before = {
        "public": alpha.public,
        "skip_me": alpha.skip_me,
        "run": vars(alpha.Service)["run"],
        "create": vars(alpha.Service)["create"],
        "other": beta.other,
    }
    group = instrument.patch_module(
        pkg, include=[f"{pkg}.alpha.*", f"{pkg}.sub.*"], exclude=["*.skip_*"]
    )
    # an explicit exclude replaces the default one: private names are traced
    assert traced_attrs(alpha) == {
        "public",
        "_private",
        "Service.__init__",
        "Service.run",
        "Service._step",
        "Service.create",
        "Service.version",
    }
    assert traced_attrs(beta) == set()
    assert traced_attrs(sys.modules[pkg]) == set()  # not included
    # a submodule imported later is patched when it is imported
    gamma = imported(f"{pkg}.sub.gamma")
    assert traced_attrs(gamma) == {"late", "borrowed"}  # functions wherever exposed
    assert gamma.late() == "late"
    service = alpha.Service.create()
    assert service.run() == "ran" and alpha.Service.version() == 2
    names = [name.removeprefix(pkg + ".") for kind, name, _ in calls() if kind == "entry"]
    assert names == [
        "sub.gamma.late",
        "alpha.Service.create",
        "alpha.Service.__init__",
        "alpha.Service.run",
        "alpha.Service._step",
        "alpha.Service.version",
    ]
    group.unpatch()
    assert traced_attrs(alpha) == traced_attrs(gamma) == set()
    assert alpha.public is before["public"] and alpha.skip_me is before["skip_me"]
    assert vars(alpha.Service)["run"] is before["run"]
    assert vars(alpha.Service)["create"] is before["create"]
    assert beta.other is before["other"]
    assert instrument.patched() == []
    assert [m for m in importer._post_import_hooks if m.startswith(pkg)] == []


def test_patch_module_defaults_skip_private_names_but_trace_dunder_init(
    modules: Modules, recorder: Recorder
) -> None:
    pkg = modules.package(modules.unique("defaults"), PACKAGE)
    alpha = imported(f"{pkg}.alpha")
    with instrument.patch_module(pkg):
        assert traced_attrs(alpha) == {
            "public",
            "skip_me",
            "Service.__init__",
            "Service.run",
            "Service.create",
            "Service.version",
        }
        assert "public" in traced_attrs(sys.modules[pkg])  # re-exported by the package
    assert traced_attrs(alpha) == set()


def test_patch_module_before_the_package_is_imported(modules: Modules, recorder: Recorder) -> None:
    pkg = modules.package(modules.unique("lazy"), PACKAGE)
    group = instrument.patch_module(pkg, include=[f"{pkg}.beta.*"])
    assert pkg not in sys.modules
    beta = imported(f"{pkg}.beta")
    assert traced_attrs(beta) == {"other"}
    group.unpatch()
    assert traced_attrs(beta) == set()


def test_a_copy_imported_while_patched_is_restored_too(
    modules: Modules, recorder: Recorder
) -> None:
    pkg = modules.package(modules.unique("copies"), PACKAGE)
    alpha = imported(f"{pkg}.alpha")
    original = alpha.public
    group = instrument.patch_module(pkg)
    # gamma runs ``from ..alpha import public as borrowed`` while alpha is
    # patched: it copies alpha's wrapper, which is never wrapped again
    gamma = imported(f"{pkg}.sub.gamma")
    assert gamma.borrowed is alpha.public and alpha.public.__wrapped__ is original
    assert gamma.borrowed() == "public"
    assert len(calls()) == 2
    group.unpatch()
    assert alpha.public is original and gamma.borrowed is original
    assert instrument.patched() == []


def test_patch_module_undone_before_import_patches_nothing(modules: Modules) -> None:
    pkg = modules.package(modules.unique("undone"), PACKAGE)
    instrument.patch_module(pkg).unpatch()
    alpha = imported(f"{pkg}.alpha")
    assert traced_attrs(alpha) == set()
    assert instrument.patched() == []


def test_patching_a_function_the_recorder_itself_uses_does_not_recurse(
    recorder: Recorder,
) -> None:
    original = threading.current_thread
    with instrument.patch("threading:current_thread"):
        worker = threading.Thread(target=lambda: instrument.event("from.worker"))
        worker.start()
        worker.join()
        assert threading.current_thread() is original()
    assert threading.current_thread is original
    names = [ev.name for ev in instrument.snapshot().events]
    assert "from.worker" in names
    assert "threading.current_thread" in names  # the call above was traced


# -- the wrapt engine: one wrapper per function, frame readers left alone ------

REEXPORTS = {
    "__init__.py": """
        from .core import first, Thing
        from . import core as _core

        alias = _core.first
        """,
    "core.py": """
        def first(items):
            return items[0]

        class Thing:
            def name(self):
                return "thing"
        """,
    "later.py": """
        from .core import first as also_first
        """,
}


@pytest.mark.parametrize("order", ["patched before import", "patched after import"])
def test_every_name_of_a_function_gets_the_same_wrapper(
    modules: Modules, recorder: Recorder, order: str
) -> None:
    pkg = modules.package(modules.unique("reexports"), REEXPORTS)
    if order == "patched after import":
        imported(pkg)
    group = instrument.patch_module(pkg)
    root, core = imported(pkg), imported(f"{pkg}.core")
    later = imported(f"{pkg}.later")
    assert isinstance(core.first, TracedFunction)
    assert root.first is core.first is root.alias is later.also_first
    assert root.first([4, 5]) == 4 and later.also_first([6]) == 6
    assert [name for kind, name, _ in calls() if kind == "entry"] == [f"{pkg}.core.first"] * 2
    original = core.first.__wrapped__
    group.unpatch()
    assert root.first is core.first is root.alias is later.also_first is original
    assert instrument.engines._get("wrapt")._shared == {}


def test_targets_sharing_a_wrapper_unpatch_independently(
    modules: Modules, recorder: Recorder
) -> None:
    pkg = modules.package(modules.unique("shared"), REEXPORTS)
    root, core = imported(pkg), imported(f"{pkg}.core")
    original = core.first
    on_core = instrument.patch(f"{pkg}.core:first")
    on_root = instrument.patch(f"{pkg}:first")
    assert root.first is core.first is not original
    on_core.unpatch()
    assert core.first is original and isinstance(root.first, TracedFunction)
    assert root.first([1]) == 1 and len(calls()) == 2
    on_root.unpatch()
    assert root.first is original and instrument.engines._get("wrapt")._shared == {}
    # other options make a wrapper of their own
    with instrument.patch(f"{pkg}:first", fields=["items"]), instrument.patch(f"{pkg}.core:first"):
        assert root.first is not core.first
        assert root.first.__wrapped__ is core.first.__wrapped__ is original


FRAME_READERS = {
    "__init__.py": "",
    "readers.py": """
        import inspect
        import logging
        import sys
        import traceback
        import warnings
        from inspect import stack as callers

        def getframe():
            return sys._getframe(1).f_globals["__name__"]

        def current():
            return inspect.currentframe().f_back.f_code.co_name

        def whole_stack():
            return inspect.stack()[1].function

        def renamed_stack():
            return callers()[1].function

        def walks():
            return len(traceback.extract_stack())

        def deprecated():
            warnings.warn("old", DeprecationWarning, stacklevel=2)

        def logs():
            logging.getLogger("x").info("hi", stacklevel=2)

        def nested():
            def inner():
                return sys._getframe(2)
            return inner()

        def in_a_lambda():
            return (lambda: sys._getframe(1))()

        class Factory:
            def make(self):
                return sys._getframe(1).f_globals["__name__"]

            @classmethod
            def build(cls):
                return sys._getframe(1).f_globals["__name__"]

            def plain(self):
                return self.stack

        def plain(stack):
            return stack.pop()

        def passes_the_level(level):
            return level + 1
        """,
}


def test_patch_module_leaves_the_functions_that_read_frames_untraced(
    modules: Modules, recorder: Recorder
) -> None:
    pkg = modules.package(modules.unique("frames"), FRAME_READERS)
    group = instrument.patch_module(pkg)
    readers = imported(f"{pkg}.readers")
    assert traced_attrs(readers) == {"plain", "passes_the_level", "Factory.plain"}
    prefix = f"{pkg}.readers."
    assert {name.removeprefix(prefix) for name in group.frame_readers} == {
        "getframe",
        "current",
        "whole_stack",
        "renamed_stack",
        "walks",
        "deprecated",
        "logs",
        "nested",
        "in_a_lambda",
        "Factory.make",
        "Factory.build",
    }
    assert group.traced() == 3
    assert readers.getframe() == __name__  # the caller is really the caller
    assert readers.Factory().make() == readers.Factory.build() == __name__
    group.unpatch()
