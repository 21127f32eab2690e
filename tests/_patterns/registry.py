"""Functions kept in a registry at import time, as filter and handler tables are."""

HANDLERS = {}


def register(name):
    def add(func):
        HANDLERS[name] = func
        return func

    return add


@register("upper")
def upper(text):
    return text.upper()


@register("lower")
def lower(text):
    return text.lower()


def handle(name, text):
    return HANDLERS[name](text)
