"""YAML with line numbers, so every config error can say `file:line: field: what to do`.

`load_yaml` returns the plain data plus a `Locator` mapping each key path (such as
`("hitl_policies", 3, "condition")`) to its line; `raise_validation_error` turns pydantic's
first error into one such line.
"""

from __future__ import annotations

import dataclasses
import pathlib
import types
import typing
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import yaml

from signoff.errors import ConfigError
from signoff.termsafe import shorten

if TYPE_CHECKING:
    from pydantic_core import ValidationError

Path = tuple[str | int, ...]


class Locator:
    """Line numbers (1-based) of the keys and list items in one YAML document."""

    def __init__(self, lines: dict[Path, int] | None = None):
        self.lines = lines or {}

    def line_of(self, path: Sequence[str | int]) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), None)


def load_yaml(
    text: str | pathlib.Path, *, source: str | None = None, error: type[ConfigError] = ConfigError
) -> tuple[Any, Locator]:
    """Parse one YAML document (safe subset) and record where each key and item starts.

    `text` is the document, or a `pathlib.Path` to read it from (`source` then defaults to it).
    A key given twice in one mapping is an error: YAML would silently keep only the last one.
    """
    if isinstance(text, pathlib.Path):
        source = source or str(text)
        try:
            text = text.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise error(f"cannot read the file ({getattr(exc, 'strerror', None) or exc})", path=source) from None
    source = source or "<yaml>"
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, Locator()
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        line = mark.line + 1 if mark is not None else None
        raise error(f"invalid YAML: {problem}; fix the syntax at this line", path=source, line=line) from None
    finally:
        loader.dispose()
    lines: dict[Path, int] = {(): node.start_mark.line + 1}
    duplicate = _walk(loader, node, (), lines)
    if duplicate:
        path, line = duplicate
        raise error(
            f"duplicate key {path[-1]!r} (also on line {lines[path]}); keep one", path=source, line=line, field=field_name(path)
        )
    return data, Locator(lines)


def _walk(loader: yaml.SafeLoader, node: yaml.Node, path: Path, lines: dict[Path, int]) -> tuple[Path, int] | None:
    """Record lines under `node`; return the first duplicated key's path and line, if any."""
    duplicate = None
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node)
            child = (*path, key if isinstance(key, (str, int)) else str(key))
            line = key_node.start_mark.line + 1
            if child in lines and duplicate is None:
                duplicate = (child, line)
                continue
            lines[child] = line
            duplicate = _walk(loader, value_node, child, lines) or duplicate
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*path, index)] = item.start_mark.line + 1
            duplicate = _walk(loader, item, (*path, index), lines) or duplicate
    return duplicate


def field_name(loc: Sequence[str | int]) -> str:
    """`("hitl_policies", 3, "condition")` → `hitl_policies[3].condition`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def raise_validation_error(
    exc: ValidationError, locator: Locator, source: str, error: type[ConfigError], model: type | None = None
) -> NoReturn:
    """Raise `error` for the first problem pydantic found, located in the YAML file.

    `model` (a pydantic model or a dataclass: the policy's types are dataclasses, so that loading a
    policy never imports pydantic) names the keys allowed where an unknown key was found.
    """
    first = exc.errors(include_url=False)[0]
    loc = tuple(p for p in first["loc"] if isinstance(p, (str, int)))
    kind = first["type"]
    message = str(first["msg"])
    message = message.removeprefix("Value error, ")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(model, loc[:-1]) if model is not None else []
        hint = f"; allowed here: {', '.join(allowed)}" if allowed else "; check the spelling"
        message = f"unknown key {loc[-1]!r}{hint}"
    elif kind == "missing":
        message = "this key is required; add it"
    elif kind in ("literal_error", "enum"):
        message = f"{message} (got {first.get('input')!r})"
    elif kind in _TYPE_HINTS:
        message = f"{message} (got {_short(first.get('input'))}); {_TYPE_HINTS[kind]}"
    raise error(message, path=source, line=locator.line_of(loc), field=field_name(loc) or None)


_TYPE_HINTS = {
    "list_type": "write a YAML list, e.g. [a, b]",
    "dict_type": "write a mapping of key: value lines",
    "model_type": "write a mapping of key: value lines",
    "string_type": "write text (quote it if YAML reads it as something else)",
    "bool_type": "write true or false",
    "bool_parsing": "write true or false",
    "int_type": "write a whole number",
    "int_parsing": "write a whole number",
    "float_type": "write a number",
    "float_parsing": "write a number",
}


def _short(value: Any) -> str:
    return shorten(repr(value), 60)


def _allowed_keys(model: type, loc: Sequence[str | int]) -> list[str]:
    """The keys a model accepts at `loc` (by alias), to suggest on an unknown key."""
    current: Any = model
    for part in loc:
        current = _unwrap(current, part)
        if current is None:
            return []
    return [names[0] for names, _ in _fields(current)] if _is_model(current) else []


def _is_model(annotation: Any) -> bool:
    """A pydantic model (told by its `model_fields`, without importing pydantic) or a dataclass."""
    return isinstance(annotation, type) and (hasattr(annotation, "model_fields") or dataclasses.is_dataclass(annotation))


def _fields(model: type) -> list[tuple[tuple[str, ...], Any]]:
    """Each field of a model: its key (the alias first, then the name) and its type."""
    if dataclasses.is_dataclass(model):
        hints = typing.get_type_hints(model)
        return [((f.name,), hints[f.name]) for f in dataclasses.fields(model)]
    fields = model.model_fields.items()  # type: ignore[attr-defined]
    return [((info.alias or name, name), info.annotation) for name, info in fields]


def _unwrap(annotation: Any, part: str | int) -> Any:
    """Step from a type into the type of its `part` (field, list item or dict value)."""
    if _is_model(annotation):
        for names, inner in _fields(annotation):
            if part in names:
                return _plain(inner)
        return None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (list, tuple) and isinstance(part, int) and args:
        return _plain(args[0])
    if origin is dict and args:
        return _plain(args[1])
    return None


def _plain(annotation: Any) -> Any:
    """Strip Optional/Annotated/unions down to the model, list or dict inside."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _plain(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                plain = _plain(arg)
                if _is_model(plain) or typing.get_origin(plain) in (list, dict):
                    return plain
        return None
    return annotation
