"""Multi-document YAML with the line of every field, so errors can say ``file:line``.

PyYAML's composed node tree knows where each key and item starts; we keep a map from field
path to line next to the plain data, and translate PyYAML's own errors into one-line
``ConfigError``s. Reading the file is the only I/O, in ``read_yaml_file``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from federation.errors import ConfigError

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class YamlDocument:
    """One document of a YAML stream and where each of its fields came from."""

    source: str
    index: int
    data: Any
    start_line: int
    lines: Mapping[Loc, int] = field(default_factory=dict, repr=False)

    def line_of(self, loc: Sequence[str | int]) -> int:
        """The line of the deepest part of ``loc`` that the document has (its start otherwise)."""
        path = tuple(loc)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.start_line

    def where(self, loc: Sequence[str | int] = ()) -> str:
        return f"{self.source}:{self.line_of(loc)}"


def _walk(node: yaml.Node, path: Loc, *, lines: dict[Loc, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node.start_mark)
            lines[(*path, key)] = key_node.start_mark.line + 1
            _walk(value_node, (*path, key), lines=lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[(*path, i)] = item.start_mark.line + 1
            _walk(item, (*path, i), lines=lines)


def parse_yaml(text: str, *, source: str) -> list[YamlDocument]:
    """Every non-empty document of ``text``; malformed YAML raises ConfigError with file and line."""
    docs: list[YamlDocument] = []
    loader = yaml.SafeLoader(text)
    try:
        index = 0
        while loader.check_node():
            node = loader.get_node()
            if node is None:  # pragma: no cover - check_node said there is one
                break
            data = loader.construct_document(node)
            lines: dict[Loc, int] = {}
            _walk(node, (), lines=lines)
            if data is not None:
                docs.append(
                    YamlDocument(
                        source=source,
                        index=index,
                        data=data,
                        start_line=node.start_mark.line + 1,
                        lines=lines,
                    )
                )
            index += 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = exc.problem or exc.context or "malformed YAML"
        raise ConfigError(f"{source}{line}: malformed YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: malformed YAML: {exc}") from None
    finally:
        loader.dispose()
    return docs


def read_yaml_file(path: Path) -> list[YamlDocument]:
    """Read and parse a YAML file (``-`` is not special here); missing files are a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse_yaml(text, source=str(path))
