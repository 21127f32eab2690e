"""Class machinery: inheritance and super(), descriptors, dataclasses, enums,
``__slots__``, classes made by ``type()``, a metaclass, ``__set_name__``."""

import dataclasses
import enum
import functools
import inspect


class Base:
    def area(self):
        return 0

    def describe(self):
        return f"{type(self).__name__} of area {self.area()}"

    def overrides_area(self):
        return type(self).area is not Base.area

    @staticmethod
    def unit():
        return 1

    @classmethod
    def make(cls):
        return cls()


class Square(Base):
    def __init__(self, side=2):
        self.side = side

    def area(self):
        return self.side**2

    def describe(self):
        return "square: " + super().describe()

    @classmethod
    def make(cls):
        return super().make()


class Blank(Base):
    """Overrides nothing."""


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int = 0

    def norm(self):
        return abs(self.x) + abs(self.y)


class Slotted:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a, self.b = a, b

    def total(self):
        return self.a + self.b


def _frozen_setattr(self, name, value):
    raise AttributeError(f"{type(self).__name__} is frozen")


def freeze(cls):
    """A class decorator that checks its own work by identity (as attrs does:
    ``cls.__setattr__ is _frozen_setattrs``)."""
    if cls.__setattr__ is not _frozen_setattr:
        cls.__setattr__ = _frozen_setattr
    return cls.__setattr__ is _frozen_setattr


class Frozen:
    __setattr__ = _frozen_setattr


class Color(enum.Enum):
    RED = 1
    GREEN = 2

    def label(self):
        return self.name.lower()

    @classmethod
    def parse(cls, text):
        return cls[text.upper()]


def _shout(self):
    return self.word.upper()


Dynamic = type("Dynamic", (Base,), {"word": "dyn", "shout": _shout, "area": lambda self: 7})


class Registered(type):
    """Registers its classes and lists the functions each defines."""

    classes = {}

    def __new__(mcls, name, bases, namespace):
        cls = super().__new__(mcls, name, bases, namespace)
        mcls.classes[name] = cls
        cls.methods = sorted(k for k, v in namespace.items() if inspect.isfunction(v))
        return cls

    def __call__(cls, *args, **kwargs):
        obj = super().__call__(*args, **kwargs)
        obj.made_by = type(cls).__name__
        return obj


class Model(metaclass=Registered):
    def save(self):
        return f"saved {type(self).__name__}"


class Field:
    """A descriptor that learns its name from ``__set_name__``."""

    def __set_name__(self, owner, name):
        self.name = f"{owner.__name__}.{name}"

    def __get__(self, obj, objtype=None):
        return self if obj is None else obj.__dict__.get(self.name, "unset")


class Form:
    title = Field()

    def field_name(self):
        return type(self).title.name

    @functools.cached_property
    def size(self):
        return len(self.field_name())
