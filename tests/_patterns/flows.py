"""Generators, coroutines and async generators driven every way, and the
lifetimes of the objects they are given.

A tracer sees their starts, suspensions, resumptions and ends; it may not
change when their ``finally`` blocks run, what ``athrow``/``aclose`` return,
or when an argument they let go of is freed. The async-generator shapes are
those of a template engine's async loops: ``auto_aiter`` over a sync or
async iterable, a loop context that looks one item ahead, and
``auto_aclose``, which closes the iterator when the block ends.
"""

import sys
import weakref


class Resource:
    """An object whose end is observed through a weak reference."""


# -- arguments let go of -------------------------------------------------------


def release(resource):
    """Drops its argument: is it freed at once?"""
    ref = weakref.ref(resource)
    del resource
    return ref() is None


def release_later(resource, log):
    """A generator that lets go of its argument before it first yields."""
    ref = weakref.ref(resource)
    resource = None
    log.append(("freed before the first yield", ref() is None))
    yield 1
    log.append(("resumed", ref() is None))


async def release_async(resource):
    ref = weakref.ref(resource)
    del resource
    return ref() is None


# -- generators ----------------------------------------------------------------


def countdown(n, log):
    try:
        while n:
            received = yield n
            log.append(("received", received))
            n -= 1
    except ValueError as exc:
        log.append(("caught", str(exc)))
        yield "recovered"
    finally:
        log.append(("finally", n))


def caller_module_or_none():
    """Works where ``sys._getframe`` does not exist (as attrs' ``make_class``)."""
    try:
        return sys._getframe(1).f_globals["__name__"]
    except AttributeError:
        return None


# -- async generators, as a template engine's async loop uses them --------------


async def auto_aiter(iterable):
    """Iterate a sync or an async iterable asynchronously."""
    if hasattr(iterable, "__aiter__"):
        async for item in iterable:
            yield item
    else:
        for item in iterable:
            yield item


async def numbers(n, log):
    try:
        for i in range(n):
            try:
                received = yield i
            except KeyError as exc:
                log.append(("caught", exc.args[0]))
                received = yield "recovered"
            if received is not None:
                log.append(("received", received))
    finally:
        log.append(("finally", "numbers"))


class auto_aclose:  # named as the pattern it copies
    """``async with auto_aclose(gen) as gen``: the generator is closed when
    the block ends, whether it was exhausted or not."""

    def __init__(self, gen):
        self.gen = gen

    async def __aenter__(self):
        return self.gen

    async def __aexit__(self, *exc_info):
        await self.gen.aclose()


class LoopContext:
    """A loop's ``loop`` variable: knows whether the item is the last by
    looking one ahead, and its length by reading the rest."""

    _missing = object()

    def __init__(self, iterable):
        self._iterator = auto_aiter(iterable)
        self._after = self._missing
        self._buffer = None
        self._length = None
        self.index0 = -1

    async def length(self):
        if self._length is None:
            rest = [item async for item in self._iterator]
            self._buffer = rest
            self._length = self.index0 + 1 + len(rest) + (self._after is not self._missing)
        return self._length

    async def _peek(self):
        if self._after is not self._missing:
            return self._after
        try:
            if self._buffer is not None:
                self._after = self._buffer.pop(0) if self._buffer else self._missing
            else:
                self._after = await self._iterator.__anext__()
        except StopAsyncIteration:
            self._after = self._missing
        return self._after

    async def last(self):
        return await self._peek() is self._missing

    def __aiter__(self):
        return self

    async def __anext__(self):
        item = await self._peek()
        if item is self._missing:
            raise StopAsyncIteration
        self._after = self._missing
        self.index0 += 1
        return item, self


async def render_loop(items, log, stop_at=None):
    """``{% for item in items %}{{ loop.index }}{{ loop.last }}{% endfor %}``,
    leaving the loop early at ``stop_at``."""
    out = []
    async with auto_aclose(auto_aiter(items)) as iterator:
        async for item, loop in LoopContext(iterator):
            if item == stop_at:
                log.append(("break", item))
                break
            out.append((item, loop.index0 + 1, await loop.last()))
    return out


async def render_length(items):
    out = []
    async for item, loop in LoopContext(items):
        out.append((item, await loop.length()))
    return out


async def undefined_in_loop(items):
    """A loop whose filter reads an undefined name: the error escapes the
    loop, the iterator is left suspended for the event loop to finalize."""
    async for item in auto_aiter(items):
        if item > 0:
            raise NameError("'loop' is undefined")
    return "done"


# -- locals read by the program itself -----------------------------------------


def own_locals(a, b=2):
    """``locals()`` and the frame's ``f_locals``, as debuggers and template
    engines read them."""
    first = sorted(locals())
    c = a + b
    return first, sorted(sys._getframe().f_locals.items()), c


def counter_with_locals(start):
    step = 1
    yield sorted(locals().items())
    start += step
    yield sorted(locals().items())
