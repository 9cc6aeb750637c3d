"""A faster `__init__` for the frozen, slotted dataclasses made once per record.

A frozen dataclass's own `__init__` fills each field through `object.__setattr__`, the
way round its own refusal to be changed. That costs about three times as much as setting
the slot through its descriptor: a 15-field value took 5.6 us to make instead of 1.9 us
(Python 3.11). The server makes several such values for every record it ingests, so
`quick_init` gives the hottest classes an `__init__` that sets the slots directly. It
takes the same arguments, applies the same defaults and calls `__post_init__` the same
way; the class stays frozen, since only `__init__` is replaced.
"""

from __future__ import annotations

import dataclasses
import inspect
from types import FunctionType
from typing import TypeVar, cast

T = TypeVar("T")


def quick_init(cls: type[T]) -> type[T]:
    """Give `cls`, a frozen dataclass with slots, an `__init__` that sets its slots directly.

    The new `__init__` must take exactly the parameters of the one it replaces (the fields
    farebox's values use: positional or keyword, with or without plain defaults); a class
    with anything else (keyword-only fields, default factories, init-only variables) is a
    TypeError when it is defined.
    """
    params = getattr(cls, "__dataclass_params__", None)
    if params is None or not params.frozen or "__slots__" not in cls.__dict__:
        raise TypeError(f"{cls.__name__} is not a frozen dataclass with slots")
    scope: dict[str, object] = {}
    arguments: list[str] = []
    lines: list[str] = []
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]  # checked above
        if not field.init:
            continue
        scope[f"_set_{field.name}"] = getattr(cls, field.name).__set__
        if field.default is dataclasses.MISSING:
            arguments.append(field.name)
        else:
            scope[f"_default_{field.name}"] = field.default
            arguments.append(f"{field.name}=_default_{field.name}")
        lines.append(f"    _set_{field.name}(self, {field.name})")
    if hasattr(cls, "__post_init__"):
        lines.append("    self.__post_init__()")
    source = f"def __init__(self, {', '.join(arguments)}):\n" + "\n".join(lines or ["    pass"])
    exec(source, scope)  # noqa: S102 - the source is built above from field names
    init = cast("FunctionType", scope["__init__"])
    if _parameters(init) != _parameters(cls.__init__):
        raise TypeError(f"{cls.__name__}: its __init__ takes what quick_init cannot make")
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__module__ = cls.__module__
    init.__annotations__ = dict(cls.__init__.__annotations__)
    cls.__init__ = init  # type: ignore[method-assign]
    return cls


def _parameters(init: object) -> list[tuple[str, object, object]]:
    signature = inspect.signature(init)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in signature.parameters.values()]
