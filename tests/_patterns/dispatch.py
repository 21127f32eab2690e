"""``functools.singledispatch``: implementations registered by type."""

import functools


@functools.singledispatch
def describe(value):
    return "thing"


@describe.register
def describe_int(value: int):
    return f"int {value}"


@describe.register(str)
def describe_str(value):
    return f"str {value!r}"


class Formatter:
    @functools.singledispatchmethod
    def format(self, value):
        return "?"

    @format.register
    def _(self, value: int):
        return f"#{value}"
