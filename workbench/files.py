"""Reading the files an experiment names: strict UTF-8, strict YAML, paths kept inside;
and adding a saved prompt variant to them in the layout a person would write.

PyYAML lets a repeated key silently replace the first one (a second ``models:`` block once
ran another model than the one reviewed), and a bad byte deep in a file surfaces as a
traceback far from the file. Both become an error naming the file and the place here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError


def read_text(path: Path, *, error: type[Exception] | None = None) -> str:
    """The file as UTF-8 text; a bad byte is an error naming the file and its byte offset."""
    return decode(path.read_bytes(), path, error=error)


def decode(data: bytes, path: Path, *, error: type[Exception] | None = None) -> str:
    """UTF-8 (a leading byte-order mark, as Excel writes, is dropped) or a clear error."""
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problem = (f"not UTF-8 text: byte {exc.start} (line {line}) is "
                   f"0x{data[exc.start]:02x}")
        fix = "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        if error is None:
            raise SpecError(path, "", problem, fix) from exc
        raise error(f"{path}: {problem}\n  fix: {fix}") from exc


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        try:
            first = seen.setdefault(key, line)
        except TypeError:  # an unhashable key: let PyYAML report it
            continue
        if first != line:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (first on line {first}): the second "
                "would silently replace the first", key_node.start_mark)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def load_yaml(path: Path) -> Any:
    """Parse a YAML file strictly (UTF-8, no repeated keys); errors name file and line."""
    text = read_text(path)
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        if "appears twice" in str(problem):
            raise SpecError(path, where, str(problem),
                            "keep one of them (merge the two blocks into one)") from exc
        raise SpecError(path, where, f"not valid YAML: {exc}") from exc


def inside(directory: Path, relative: str) -> Path | None:
    """``directory / relative`` if it stays inside ``directory`` (symlinks resolved)."""
    base = directory.resolve()
    target = (base / relative).resolve()
    return target if target == base or base in target.parents else None


class BlockDumper(yaml.SafeDumper):
    """Multi-line prompt text as a YAML block (``|``), as a person would write it."""


def _block_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


BlockDumper.add_representer(str, _block_str)


def add_prompt_entry(path: Path, name: str, value: str) -> None:
    """Add ``name: value`` under ``prompts:``, keeping the file's comments and layout;
    falls back to rewriting the whole mapping when the block is not in the usual style."""
    text = path.read_text(encoding="utf-8")
    before = yaml.safe_load(text)
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines)
                  if re.match(r"^prompts:\s*(#.*)?$", line)), None)
    if start is not None:
        end, indent = start + 1, "  "
        for i in range(start + 1, len(lines)):
            if lines[i].strip() and not lines[i].startswith((" ", "\t")):
                break
            if lines[i].strip() and not lines[i].lstrip().startswith("#"):
                end = i + 1
                indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
        if not lines[end - 1].endswith("\n"):
            lines[end - 1] += "\n"
        lines.insert(end, f"{indent}{name}: {value}\n")
        edited = "".join(lines)
        after = yaml.safe_load(edited)
        if after.get("prompts") == {**before["prompts"], name: value}:
            path.write_text(edited, encoding="utf-8")
            return
    before["prompts"][name] = value
    path.write_text(yaml.safe_dump(before, sort_keys=False, allow_unicode=True),
                    encoding="utf-8")
