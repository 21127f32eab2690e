"""Program values as records keep them: captured when recorded, plain, bounded, redacted.

Every value that becomes record data (event and span fields, traced
arguments, return values, exceptions, context values) goes through
:func:`capture` or :func:`capture_fields` when the event is recorded, so that
no record refers to a program object: recording never keeps an object alive,
never delays its ``__del__``, weakref callbacks or ``ResourceWarning``, and a
mutable object shows its state *at the event*, not at snapshot time.

What a record keeps:

* ``None``, ``bool``, ``float`` and ``int`` of up to 64 bits, as they are;
* ``str`` up to ``max_field_chars`` characters, cut at record time with the
  cut marked (``…[+N chars]``); ``bytes`` and ``bytearray`` as their
  ``b'…'`` text, bounded the same way;
* anything else, a bounded text representation built at once. The mode
  (``start(values=...)``, ``--ringtrace-values``) says how:

  - ``safe`` (the default) runs no code of the program: the type name; the
    length of builtin containers and a shallow rendering of what they hold;
    an exception's type and ``args``; an enum member's name; the fields of
    dataclasses and namedtuples, read from the instance's storage (never
    through properties or ``__getattr__``);
  - ``repr`` calls the object's own ``__repr__``, bounded (its text is cut,
    a Python-level loop is stopped after a budget of executed lines), guarded
    (whatever it raises, ``SystemExit`` and ``KeyboardInterrupt`` included,
    becomes text) and without re-entering the recorder: events recorded from
    inside it are dropped and counted in the stream's ``dropped``;
  - ``none`` records no values at all (fields are left out; exits keep the
    duration and the exception's type).

Redaction happens at capture too, nested: a field, dict key, argument or
HTTP-header-like pair whose name contains one of the redacted fragments
(credential-like names by default) keeps ``[redacted]`` instead of its value,
at any depth, as do URL user-info (``https://user:pw@host``) and query or
form values of credential-like names inside strings.

Memory: a stream of ``capacity`` events holds at most
``capacity * (RECORD_OVERHEAD + fields * field_bytes(max_field_chars))``
bytes of records (see :func:`field_bytes`), whatever the program passes.
"""

from __future__ import annotations

import builtins
import dataclasses
import re
import reprlib
import sys
import threading
import types
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from itertools import chain, islice
from typing import Any, Literal

DEFAULT_MAX_FIELD_CHARS = 512

#: Field-name fragments redacted by default (case-insensitive substring match,
#: ``-`` read as ``_``). They cover the HTTP headers that carry credentials:
#: ``Authorization``, ``Proxy-Authorization``, ``Cookie``, ``Set-Cookie``,
#: ``X-Api-Key``.
DEFAULT_REDACT = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "session",
    "private_key",
    "credential",
)
REDACTED = "[redacted]"

Mode = Literal["safe", "repr", "none"]
MODES: tuple[str, ...] = ("safe", "repr", "none")
DEFAULT_MODE: Mode = "safe"

#: Bytes of one record besides its field values: the tuple, its position and
#: timestamp ints, the fields dict with up to 8 names, and the kind and
#: context slots (names are shared with the program, see :func:`field_bytes`).
RECORD_OVERHEAD = 640
#: Bytes one field adds besides its value: a dict slot, and its name (field
#: names are kept up to MAX_NAME_CHARS characters).
FIELD_OVERHEAD = 48 + 80 + 4 * 64
MAX_NAME_CHARS = 64

#: Integers kept as they are: what fits in 64 bits, signed or not.
_INT_BOUND = 1 << 64
_MARK_CHARS = 24  # the longest cut mark: "…[+NNNNNNNNNNNNNNNNNN chars]"

_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_PLAIN = (bool, int, float, type(None))
_NUMBERS = frozenset((bool, float, type(None)))
#: Depth to which containers, dataclasses and namedtuples are rendered.
MAX_DEPTH = 3
#: Lines a ``__repr__`` may execute in repr mode before it is stopped.
REPR_LINE_BUDGET = 100_000


def field_bytes(limit: int = DEFAULT_MAX_FIELD_CHARS) -> int:
    """The most memory one captured field can hold, in bytes, for ``limit``
    characters: a ``str`` of ``limit`` characters plus its cut mark, 4 bytes
    a character (non-Latin-1 text) plus the ``str`` header, and the field's
    name and dict slot."""
    return 80 + 4 * (limit + _MARK_CHARS) + FIELD_OVERHEAD


def stream_bytes(capacity: int, fields: int, limit: int = DEFAULT_MAX_FIELD_CHARS) -> int:
    """The bound on the bytes a full stream of ``capacity`` events holds,
    each event having ``fields`` fields."""
    return capacity * (RECORD_OVERHEAD + fields * field_bytes(limit))


# -- plain text ---------------------------------------------------------------


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with what was lost."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}…[+{len(text) - limit} chars]"


class _BoundedRepr(reprlib.Repr):
    def __init__(self, limit: int):
        super().__init__()
        self.maxstring = self.maxother = self.maxlong = max(limit, 8)
        self.maxlevel = 4

    def repr_instance(self, x: object, level: int) -> str:
        # reprlib's own version hides a raising __repr__ behind "<X instance
        # at 0x...>" and cuts long ones in the middle, unmarked: report the
        # error, and cut at the end with the count of what was lost.
        try:
            text = builtins.repr(x)
        except Exception as exc:
            return _repr_error(x, exc)
        return text if level >= self.maxlevel else truncate(text, self.maxother)


def _repr_error(value: object, exc: BaseException) -> str:
    message = _exception_message(exc, 80)
    return f"<{type_name(type(value))} repr raised {type_name(type(exc))}: {message}>"


def safe_repr(value: object, limit: int = DEFAULT_MAX_FIELD_CHARS) -> str:
    """A ``repr`` of plain data that never raises, never runs away, and hides
    addresses: for the formats, which render snapshot data (already plain)."""
    try:
        text = _BoundedRepr(limit).repr(value)
    except Exception as exc:
        return _repr_error(value, exc)
    return truncate(_ADDRESS.sub(" at 0x…", text), limit)


def plain_value(value: object, limit: int = DEFAULT_MAX_FIELD_CHARS) -> Any:
    """``value`` as plain data, captured in safe mode without redaction."""
    return Capturer(limit, "safe", Redactor(())).value(value)


# -- reading objects without running their code --------------------------------

_type_mro: Callable[[type], tuple[type, ...]] = type.__dict__["__mro__"].__get__
_type_dict: Callable[[type], Mapping[str, Any]] = type.__dict__["__dict__"].__get__
_type_qualname: Callable[[type], str] = type.__dict__["__qualname__"].__get__
_exc_args: Callable[[BaseException], tuple[Any, ...]] = BaseException.__dict__["args"].__get__
_MISSING = object()


def type_name(cls: type) -> str:
    """The qualified name of ``cls``, read without running its metaclass's code."""
    try:
        name = _type_qualname(cls)
    except Exception:
        return "?"
    return name if type(name) is str else "?"


def _class_attr(cls: type, name: str) -> Any:
    """``name`` as found in the class dicts of ``cls``'s MRO, without a lookup
    that could run code (no metaclass ``__getattribute__``, no descriptor)."""
    for klass in _type_mro(cls):
        found = _type_dict(klass).get(name, _MISSING)
        if found is not _MISSING:
            return found
    return _MISSING


def _instance_dict(obj: object) -> dict[str, Any] | None:
    """The ``__dict__`` of ``obj`` if its class keeps one the usual way."""
    descriptor = _class_attr(type(obj), "__dict__")
    if type(descriptor) is not types.GetSetDescriptorType:
        return None
    try:
        found = descriptor.__get__(obj, type(obj))
    except Exception:
        return None
    return found if type(found) is dict else None


def _stored(obj: object, name: str, storage: dict[str, Any] | None) -> Any:
    """Attribute ``name`` of ``obj`` from its instance dict or slot, else _MISSING."""
    if storage is not None:
        found = storage.get(name, _MISSING)
        if found is not _MISSING:
            return found
    descriptor = _class_attr(type(obj), name)
    if type(descriptor) is types.MemberDescriptorType:
        try:
            return descriptor.__get__(obj, type(obj))
        except Exception:
            return _MISSING
    return _MISSING


def _exception_message(exc: BaseException, limit: int) -> str:
    """The message of ``exc``, never from a ``__str__`` of the program: the
    builtin ``__str__`` when the class keeps it and every argument is plain
    (``str(KeyError('k'))`` is ``"'k'"``), else rendered from ``args``."""
    try:
        args = _exc_args(exc)
    except Exception:
        return ""
    if type(args) is not tuple:
        return ""
    if type(_class_attr(type(exc), "__str__")) is types.WrapperDescriptorType and all(
        type(a) in _PLAIN or type(a) is str for a in args
    ):
        is_os = OSError in _type_mro(type(exc))
        extras = [_stored(exc, name, None) for name in _OSERROR_NAMES if is_os]
        if all(type(x) in _PLAIN or type(x) is str for x in extras):
            try:
                return truncate(builtins.str(exc), limit)
            except Exception:  # a builtin __str__ on arguments it rejects
                pass
    if len(args) == 1 and type(args[0]) is str:
        return truncate(args[0], limit)
    return truncate(", ".join(_Render(limit, "safe", Redactor(())).item(a, 1) for a in args), limit)


_OSERROR_NAMES = ("filename", "filename2")


# -- redaction ------------------------------------------------------------------

#: ``scheme://user:password@host``: the user-info part.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<info>[^/\s@?#]+)@")
#: ``name=value`` in a query string, a form body or a cookie string.
_ASSIGNMENT = re.compile(r"(?P<name>[A-Za-z0-9_.\-\[\]]+)=(?P<value>[^&;\s#,'\"]*)")


class Redactor:
    """Decides, once per name, whether its value is hidden, and hides
    credentials inside text (URL user-info, ``name=value`` pairs)."""

    def __init__(self, patterns: Iterable[str] | None = DEFAULT_REDACT):
        self.patterns = tuple(p.lower().replace("-", "_") for p in patterns or ())
        self._decided: dict[str, bool] = {}

    @property
    def active(self) -> bool:
        """Whether anything is redacted."""
        return bool(self.patterns)

    def hides(self, name: str) -> bool:
        decided = self._decided.get(name)
        if decided is None:
            key = name.lower().replace("-", "_")
            decided = any(p in key for p in self.patterns)
            if len(self._decided) < 4096:
                self._decided[name] = decided
        return decided

    def text(self, text: str) -> str:
        """``text`` with URL user-info and credential-like ``name=value``
        values replaced by ``[redacted]``."""
        if not self.patterns:
            return text
        if "@" in text:
            text = _USERINFO.sub(rf"\g<scheme>{REDACTED}@", text)
        if "=" in text:
            hides = self.hides

            def pair(match: re.Match[str]) -> str:
                name = match["name"]
                return f"{name}={REDACTED}" if hides(name) else match[0]

            text = _ASSIGNMENT.sub(pair, text)
        return text

    def plain_fields(self, fields: Mapping[str, object], limit: int) -> dict[str, Any]:
        """``fields`` redacted and captured in safe mode."""
        return Capturer(limit, "safe", self).fields(fields)


def might_hide(text: str) -> bool:
    """Whether :meth:`Redactor.text` could change ``text`` (a cheap test)."""
    return "@" in text or "=" in text


# -- rendering --------------------------------------------------------------------

_guard = threading.local()  # per thread: inside a __repr__ called by capture


class _ReprBudgetExceeded(BaseException):
    """Raised inside a ``__repr__`` that ran past its line budget."""


def _budget_tracer(budget: int) -> Callable[..., Any]:
    left = budget

    def local(frame: Any, event: str, arg: Any) -> Any:
        nonlocal left
        if event == "line":
            left -= 1
            if left < 0:
                raise _ReprBudgetExceeded(f"stopped after {budget} lines")
        return local

    def call(frame: Any, event: str, arg: Any) -> Any:
        return local

    return call


def _user_repr(value: object, limit: int, call: Callable[[Any], str] = builtins.repr) -> str:
    """``repr(value)`` (or ``call(value)``), bounded and guarded (repr mode)."""
    from . import hotpath  # late: hotpath imports this module

    local = hotpath._local
    saved = local.__dict__.get("routes", _MISSING)
    # Events recorded from inside the __repr__ find no cached route, and the
    # slow path drops and counts them (see hotpath._route).
    local.routes = {}
    local.in_repr = True
    _guard.busy = True
    tracer = sys.gettrace()
    try:
        sys.settrace(_budget_tracer(REPR_LINE_BUDGET))
        try:
            text = call(value)
        finally:
            sys.settrace(tracer)
        if type(text) is not str:  # str() of a subclass's __str__ returning a str subclass
            text = str.__str__(text)
    except BaseException as exc:  # even SystemExit or KeyboardInterrupt: it is data now
        what = "repr" if call is builtins.repr else f"{getattr(call, '__name__', 'call')}()"
        message = _exception_message(exc, 80)
        return f"<{type_name(type(value))} {what} raised {type_name(type(exc))}: {message}>"
    finally:
        _guard.busy = False
        local.in_repr = False
        if saved is _MISSING:
            local.__dict__.pop("routes", None)
        else:
            local.routes = saved
    return truncate(_ADDRESS.sub(" at 0x…", text), limit)


def _safe_stdlib_type(cls: type) -> bool:
    """Whether ``cls`` is a stdlib type whose own ``repr`` runs no program code."""
    global _stdlib_modules_seen
    if cls in _SAFE_STDLIB:
        return True
    if len(sys.modules) == _stdlib_modules_seen:
        return False
    _stdlib_modules_seen = len(sys.modules)
    for module, names in (
        ("datetime", ("date", "timedelta", "timezone")),
        ("decimal", ("Decimal",)),
        ("fractions", ("Fraction",)),
        ("uuid", ("UUID",)),
        ("pathlib", ("PurePosixPath", "PureWindowsPath", "PosixPath", "WindowsPath")),
        ("ipaddress", ("IPv4Address", "IPv6Address", "IPv4Network", "IPv6Network")),
    ):
        mod = sys.modules.get(module)
        for name in names:
            found = getattr(mod, name, None)
            if isinstance(found, type):
                _SAFE_STDLIB[found] = None
    return cls in _SAFE_STDLIB


def _plain_container(value: Any, cls: type, limit: int, redactor: Redactor) -> str | None:
    """The text of an exact list, tuple, set or dict holding only plain
    numbers, ``None`` and short strings with nothing to redact: their C
    ``repr`` runs no program code. ``None`` for anything else."""
    if len(value) > _FAST_ITEMS:
        return None
    if cls is dict:
        if not _plain_items(value.values(), limit, redactor):
            return None
        if not _plain_items(value.keys(), limit, redactor):
            return None
    elif not _plain_items(value, limit, redactor):
        return None
    try:
        return builtins.repr(value)
    except ValueError:  # an int too long for str(): the slow path says so
        return None


def _plain_items(items: Iterable[Any], limit: int, redactor: Redactor) -> bool:
    """Whether ``items`` are all plain values a C ``repr`` shows as they
    are: numbers of up to 64 bits, ``None``, and strings short enough,
    with nothing to redact and no credential-like name (a header pair)."""
    longest = limit // 4
    redacting = bool(redactor.patterns)
    for item in items:  # a loop of type checks: containers here hold up to 16 items
        kind = type(item)
        if kind is int:
            if not -_INT_BOUND < item < _INT_BOUND:
                return False
        elif kind is str:
            if len(item) > longest:
                return False
            if redacting and (might_hide(item) or redactor.hides(item)):
                return False
        elif kind not in _NUMBERS:
            return False
    return True


#: Item types whose text inside a container is their C ``repr`` (a ``str``
#: only when short, with nothing to redact: see :func:`_shown_as_repr`).
_REPR_PLAIN = frozenset((int, float, bool, type(None), str))
#: The longest ``repr`` of a complex number: two float reprs of 24 characters.
_COMPLEX_CHARS = 64


def _shown_as_repr(items: list[Any], limit: int, redacting: bool, depth: int) -> bool:
    """Whether ``_Render.item`` shows each of ``items`` at ``depth`` as its
    own ``repr``, checked on whole columns at C speed: numbers of up to 64
    bits, ``None``, strings of up to ``limit`` characters with nothing to
    redact, and complex numbers above the depth where only type names are
    shown, when ``limit`` cannot cut them."""
    kinds = set(map(type, items))
    one_kind = len(kinds) == 1
    if complex in kinds and depth < MAX_DEPTH and limit >= _COMPLEX_CHARS:
        kinds.discard(complex)
    if not kinds <= _REPR_PLAIN:
        return False
    if int in kinds:
        ints = items if one_kind else [v for v in items if type(v) is int]
        if min(ints) <= -_INT_BOUND or max(ints) >= _INT_BOUND:
            return False
    if str in kinds:
        strs = items if one_kind else [v for v in items if type(v) is str]
        if max(map(len, strs)) > limit:
            return False
        if redacting:
            joined = "\x00".join(strs)
            if "@" in joined or "=" in joined:
                return False
    return True


class _Render:
    """Builds the bounded text of one value (see the module docstring)."""

    __slots__ = ("limit", "mode", "redactor", "seen")

    def __init__(self, limit: int, mode: str, redactor: Redactor):
        self.limit = limit
        self.mode = mode
        self.redactor = redactor
        self.seen: set[int] = set()

    def text(self, value: str) -> str:
        if self.redactor.patterns and might_hide(value):
            # redact before cutting, so that a cut never splits a secret out
            value = self.redactor.text(value[: self.limit * 2])
        return truncate(value, self.limit)

    def top(self, value: object) -> str:
        text = self.item(value, 0)
        # parts are bounded already; what is longer still is cut here, once
        return text if len(text) <= self.limit + _MARK_CHARS else truncate(text, self.limit)

    def item(self, value: object, depth: int) -> str:
        """The text of ``value`` at nesting ``depth`` (0: the field itself)."""
        cls = type(value)
        if cls is str:
            return builtins.repr(self.text(value)) if depth else self.text(value)  # type: ignore[arg-type]
        if cls in _PLAIN:
            if cls is int and not -_INT_BOUND < value < _INT_BOUND:  # type: ignore[operator]
                return _big_int(value)  # type: ignore[arg-type]
            return builtins.repr(value)
        if cls is bytes or cls is bytearray:
            return _bytes_text(value, self.limit)  # type: ignore[arg-type]
        if cls in _FAST_CONTAINERS:
            text = _plain_container(value, cls, self.limit, self.redactor)
            if text is not None:
                return text
            if (
                (cls is tuple or cls is list)
                and len(value) == 2  # type: ignore[arg-type]
                and type(value[0]) is str  # type: ignore[index]
                and self.redactor.hides(value[0])  # type: ignore[index]
            ):  # a (name, value) pair: an HTTP header, say
                return builtins.repr(_RedactedPair(value[0], cls))  # type: ignore[index]
        if self.mode == "repr" and not getattr(_guard, "busy", False):
            return _user_repr(value, self.limit)
        return self.safe(value, cls, depth)

    def safe(self, value: Any, cls: type, depth: int) -> str:
        try:
            mro = _type_mro(cls)
        except Exception:
            return "<?>"
        name = type_name(cls)
        if id(value) in self.seen:
            return f"<{name} …recursive>"
        if depth >= MAX_DEPTH:
            for base in _SIZED:
                if base in mro:
                    return f"<{name} of {base.__len__(value)}>"
            return f"<{name}>"
        self.seen.add(id(value))
        try:
            return self._safe(value, cls, mro, name, depth)
        finally:
            self.seen.discard(id(value))

    def _safe(self, value: Any, cls: type, mro: tuple[type, ...], name: str, depth: int) -> str:
        enum = sys.modules.get("enum")
        if enum is not None and enum.Enum in mro:
            storage = _instance_dict(value)
            member = None if storage is None else storage.get("_name_")
            if type(member) is str:
                return f"{name}.{member}"
            raw = None if storage is None else storage.get("_value_")
            return f"{name}({self.item(raw, depth + 1)})"
        if BaseException in mro:
            return f"{name}({_exception_message(value, self.limit)!r})"
        if str in mro:  # a str subclass: its characters, without its methods
            return builtins.repr(self.text(str.__str__(value)))
        if bytes in mro or bytearray in mro:
            return f"{name}({_bytes_text(bytes(memoryview(value)[: self.limit]), self.limit)})"
        if tuple in mro:
            fields = _class_attr(cls, "_fields")
            if (
                type(fields) is tuple
                and all(type(f) is str for f in fields)
                and tuple.__len__(value) == len(fields)
            ):
                pairs = [(f, tuple.__getitem__(value, i)) for i, f in enumerate(fields)]
                return self._call(name, pairs, depth)
            return self._sequence(value, cls, tuple, "(", ")", depth)
        if list in mro:
            return self._sequence(value, cls, list, "[", "]", depth)
        if dict in mro:
            return self._dict(value, cls, depth)
        for base, left, right in ((set, "{", "}"), (frozenset, "frozenset({", "})")):
            if base in mro:
                if not base.__len__(value):
                    return f"{name}()"
                return self._sequence(value, cls, base, left, right, depth)
        if deque in mro:
            return self._sequence(value, cls, deque, "deque([", "])", depth)
        if cls is memoryview:
            return f"<memoryview of {value.nbytes} bytes>"
        if _safe_stdlib_type(cls):
            text = builtins.repr(value)  # an exact stdlib type: its own repr
            return truncate(_ADDRESS.sub(" at 0x…", text), self.limit)
        fields = _class_attr(cls, "__dataclass_fields__")
        if type(fields) is dict:
            return self._dataclass(value, name, fields, depth)
        if cls in (types.FunctionType, types.BuiltinFunctionType, types.MethodType):
            qual = getattr(value, "__qualname__", None)
            return f"<{name} {qual}>" if type(qual) is str else f"<{name}>"
        if type in mro:
            return f"<class {type_name(value)}>"
        if cls is types.ModuleType:
            storage = _instance_dict(value)
            mod = None if storage is None else storage.get("__name__")
            return f"<module {mod}>" if type(mod) is str else "<module>"
        return _opaque(cls, name)

    def _sequence(self, value: Any, cls: type, base: Any, left: str, right: str, depth: int) -> str:
        # the base type's own C methods: a subclass's __iter__ is never called
        items, length = base.__iter__(value), base.__len__(value)
        # At most the items that can fit in the room (each part takes 3
        # characters at least), and one: when all are shown as their own
        # repr, no renderer is needed for them.
        head = list(islice(items, (self._room() + 2) // 3 + 1))
        if _shown_as_repr(head, self.limit, bool(self.redactor.patterns), depth + 1):
            parts, _ = self._bounded(map(builtins.repr, head))
        else:
            parts, _ = self._bounded(self.item(v, depth + 1) for v in chain(head, items))
        body = ", ".join(parts)
        if base is tuple and length == 1:
            body += ","
        if len(parts) < length:
            body += f", … +{length - len(parts)}" if parts else f"… {length}"
        text = f"{left}{body}{right}"
        return text if cls is base else f"{type_name(cls)}({text})"

    def _dict(self, value: Any, cls: type, depth: int) -> str:
        hides = self.redactor.hides
        length = dict.__len__(value)

        def pairs() -> Iterable[str]:
            for key, item in dict.items(value):
                if type(key) is str:
                    shown = builtins.repr(truncate(key, MAX_NAME_CHARS))
                    if hides(key):
                        yield f"{shown}: {REDACTED!r}"
                        continue
                else:
                    shown = self.item(key, depth + 1)
                yield f"{shown}: {self.item(item, depth + 1)}"

        parts, _ = self._bounded(pairs())
        body = ", ".join(parts)
        if len(parts) < length:
            body += f", … +{length - len(parts)}" if parts else f"… {length}"
        text = f"{{{body}}}"
        return text if cls is dict else f"{type_name(cls)}({text})"

    def _call(self, name: str, pairs: Iterable[tuple[str, Any]], depth: int) -> str:
        hides = self.redactor.hides

        def parts() -> Iterable[str]:
            for field, item in pairs:
                shown = REDACTED if hides(field) else self.item(item, depth + 1)
                yield f"{field}={shown}"

        listed, cut = self._bounded(parts())
        return f"{name}({', '.join(listed)}{', …' if cut else ''})"

    def _dataclass(self, value: Any, name: str, fields: dict[str, Any], depth: int) -> str:
        storage = _instance_dict(value)
        marker = getattr(dataclasses, "_FIELD", None)

        def pairs() -> Iterable[tuple[str, Any]]:
            for field_name, field in fields.items():
                if type(field) is not dataclasses.Field or type(field_name) is not str:
                    continue
                if getattr(field, "_field_type", marker) is not marker or not field.repr:
                    continue
                found = _stored(value, field_name, storage)
                yield field_name, _Unreadable() if found is _MISSING else found

        return self._call(name, pairs(), depth)

    def _room(self) -> int:
        """The characters the parts of one container may take: leaves room
        for the count of those left out."""
        return max(self.limit - 16, self.limit // 2)

    def _bounded(self, parts: Iterable[str]) -> tuple[list[str], bool]:
        """As many of ``parts`` as fit in the limit (at least one), and
        whether some were left out."""
        out: list[str] = []
        used = 0
        room = self._room()
        for part in parts:
            if used + len(part) > room and out:
                return out, True
            out.append(part)
            used += len(part) + 2
        return out, False


class _Unreadable:
    """A dataclass field not stored on the instance (a property, say)."""

    def __repr__(self) -> str:
        return "<?>"


class _RedactedPair:
    __slots__ = ("brackets", "name")

    def __init__(self, name: str, cls: type):
        self.name = name
        self.brackets = "()" if cls is tuple else "[]"

    def __repr__(self) -> str:
        left, right = self.brackets[0], self.brackets[1]
        return f"{left}{truncate(self.name, MAX_NAME_CHARS)!r}, {REDACTED!r}{right}"


#: Our own helper types and stdlib types whose ``repr`` runs no program
#: code; more stdlib types are added once their module is imported.
_SAFE_STDLIB: dict[type, None] = dict.fromkeys((complex, range, _Unreadable, _RedactedPair))
_stdlib_modules_seen = 0
#: Exact containers rendered by their own C repr when they hold plain values.
_FAST_CONTAINERS = frozenset((list, tuple, set, frozenset, dict))
_FAST_ITEMS = 16
#: Builtin containers whose length is shown, read with their own C ``__len__``.
_SIZED: tuple[Any, ...] = (dict, list, tuple, set, frozenset, deque)


#: The safe text of instances of classes shown by name alone (no fields,
#: no length): id of the class -> (weak reference to it, ``<name>``). Most
#: arguments a whole-package trace records are such objects; the cache
#: spares the class walk for each. Weak: it keeps no class alive, and an id
#: reused by a later class does not match the dead one's reference.
_OPAQUE: dict[int, tuple[weakref.ref[type], str]] = {}
_OPAQUE_MAX = 4096


def _opaque(cls: type, name: str) -> str:
    """``<name>``, remembered for ``cls`` (see :data:`_OPAQUE`)."""
    text = f"<{name}>"
    try:
        ref = weakref.ref(cls)
    except TypeError:
        return text
    if len(_OPAQUE) >= _OPAQUE_MAX:
        _OPAQUE.clear()
    _OPAQUE[id(cls)] = (ref, text)
    return text


def _big_int(value: int) -> str:
    bits = value.bit_length()
    if bits > 4000:  # str() of a huge int is slow, and limited by the interpreter
        return f"<int of {bits} bits>"
    return str(value)


def _bytes_text(value: bytes | bytearray, limit: int) -> str:
    head = builtins.repr(bytes(value[:limit]))
    cut = len(value) - limit
    if cut > 0:
        head = f"{head}…[+{cut} bytes]"
    if type(value) is bytearray:
        head = f"bytearray({head})"
    return truncate(head, limit)


# -- capture ------------------------------------------------------------------------


class Capturer:
    """How a recorder turns program values into record data: the field
    limit, the mode and the redaction, fixed for the recorder's life."""

    __slots__ = ("limit", "mode", "redactor", "safe_names")

    def __init__(
        self,
        limit: int = DEFAULT_MAX_FIELD_CHARS,
        mode: str = DEFAULT_MODE,
        redactor: Redactor | None = None,
    ):
        self.limit = limit
        self.mode = check_mode(mode)
        self.redactor = Redactor() if redactor is None else redactor
        #: Field names already checked: not redacted, short. The hot path
        #: tests a record's names against it with one C call.
        self.safe_names: set[str] = set()

    def value(self, value: object) -> Any:
        """``value`` as a record keeps it (``None`` in ``none`` mode)."""
        cls = type(value)
        if cls is int:
            if -_INT_BOUND < value < _INT_BOUND:  # type: ignore[operator]
                return value if self.mode != "none" else None
        elif cls is str:
            if len(value) <= self.limit and not might_hide(value):  # type: ignore[arg-type]
                return value if self.mode != "none" else None
        elif cls in _NUMBERS:
            return value if self.mode != "none" else None
        if self.mode == "none":
            return None
        if cls in _FAST_CONTAINERS:  # the common non-scalar: no renderer needed
            text = _plain_container(value, cls, self.limit, self.redactor)
            if text is not None:
                return text
        elif self.mode == "safe":
            known = _OPAQUE.get(id(cls))
            if known is not None and known[0]() is cls:
                return known[1]
            if cls in _SAFE_STDLIB:  # what _Render.safe gives, without its walk
                return truncate(_ADDRESS.sub(" at 0x…", builtins.repr(value)), self.limit)
        if cls is int:
            return _big_int(value)  # type: ignore[arg-type]
        if cls is str:
            return _Render(self.limit, self.mode, self.redactor).text(value)  # type: ignore[arg-type]
        if cls is bytes or cls is bytearray:  # as _Render.item shows them, in every mode
            return _bytes_text(value, self.limit)  # type: ignore[arg-type]
        return _Render(self.limit, self.mode, self.redactor).top(value)

    def fields(self, fields: Mapping[str, object]) -> dict[str, Any]:
        """``fields`` redacted by name and captured; ``{}`` in ``none`` mode."""
        if self.mode == "none":
            return {}
        out: dict[str, Any] = {}
        safe_names = self.safe_names
        value = self.value
        for name, item in fields.items():
            if name in safe_names:  # a str seen before: short, not redacted
                out[name] = value(item)
                continue
            if type(name) is not str:
                name = _Render(MAX_NAME_CHARS, "safe", self.redactor).top(name)
            elif len(name) > MAX_NAME_CHARS:
                name = truncate(name, MAX_NAME_CHARS)
            if self.redactor.hides(name):
                out[name] = REDACTED
                continue
            if len(safe_names) < 4096 and type(name) is str:
                safe_names.add(name)
            out[name] = value(item)
        return out

    def message(self, exc: BaseException) -> str | None:
        """The message of an exception as an exit records it."""
        if self.mode == "none":
            return None
        if self.mode == "repr" and not getattr(_guard, "busy", False):
            text = _user_repr(exc, self.limit * 2, builtins.str)
        else:
            text = _exception_message(exc, self.limit * 2)
        return self.value(text)  # type: ignore[no-any-return]


def check_mode(mode: object) -> Mode:
    """``mode`` if it is one of :data:`MODES`, else a ``ValueError``."""
    if mode not in MODES:
        raise ValueError(f"values must be one of {', '.join(MODES)}; got {mode!r}")
    return mode  # type: ignore[return-value]


_DEFAULT = Capturer()


def _active() -> Capturer:
    recorder = sys.modules["instrument.hotpath"]._recorder  # imports this module: set by then
    return _DEFAULT if recorder is None else recorder.capturer


def capture(value: object) -> Any:
    """``value`` as the active recorder keeps it in a record.

    The one entry point every recording path (fields, traced arguments,
    return values, context values) goes through to turn a program object
    into plain data, so that what is recorded never refers to the program's
    objects.
    """
    return _active().value(value)


def capture_fields(fields: Mapping[str, object]) -> dict[str, Any]:
    """``fields`` redacted by name and captured with :func:`capture`."""
    return _active().fields(fields)


def exception_message(exc: BaseException) -> str | None:
    """The message of ``exc`` as the active recorder keeps it: from its
    ``args`` in safe mode, ``str(exc)`` guarded in repr mode, ``None`` in
    none mode."""
    return _active().message(exc)
