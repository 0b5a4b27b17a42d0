"""Reading the YAML config files (scoring.yaml, rules.yaml, routing.yaml, segment.yaml): from
KIZASHI_CONFIG_DIR when the file is there, else the packaged default, with errors that name
the file, the key and the problem."""

from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)


class ConfigFileError(ValueError):
    """A config file that cannot be used; the message says where and why."""


def read_config_text(
    file_name: str,
    config_dir: Path | None,
    package: str,
    *,
    error: type[ConfigFileError] = ConfigFileError,
) -> tuple[str, str]:
    """(text, source): `<config_dir>/<file_name>` when it exists, else the package's default
    (the source is then the bare file name)."""
    if config_dir is not None:
        path = Path(config_dir) / file_name
        if path.is_file():
            try:
                return path.read_text(encoding="utf-8"), str(path)
            except (OSError, UnicodeDecodeError) as problem:
                raise error(f"{path}: cannot be read: {problem}") from problem
    packaged = resources.files(package).joinpath("defaults", file_name)
    return packaged.read_text(encoding="utf-8"), file_name


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error: plain YAML
    keeps the last value, so a second `min_points:` further down would silently win."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            # Merge keys (`<<: *defaults`) may be overridden; only written keys count.
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_yaml(text: str) -> Any:
    """Every config file's YAML reader: safe_load that refuses a key given twice."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def parse_yaml_mapping(
    text: str, source: str, *, error: type[ConfigFileError] = ConfigFileError
) -> dict[str, Any]:
    try:
        data = load_yaml(text)
    except yaml.YAMLError as problem:
        raise error(f"{source}: not valid YAML: {problem}") from problem
    if not isinstance(data, dict):
        raise error(f"{source}: must be a mapping at the top level")
    return data


def problem(error: dict[str, Any]) -> str:
    """One pydantic error in words: "must be a number, got 'x'", "unknown key"."""
    kind, ctx = error["type"], error.get("ctx") or {}
    for bound, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
        if kind.startswith(("greater_than", "less_than")) and bound in ctx:
            return f"must be {sign} {ctx[bound]:g}"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind in ("float_type", "float_parsing", "int_type", "int_parsing", "finite_number"):
        return f"must be a number, got {error['input']!r}"
    if kind == "string_type":
        return f"must be a string, got {error['input']!r}"
    if kind in ("dict_type", "model_type"):
        return "must be a mapping"
    if kind == "list_type":
        return "must be a list"
    if kind in ("too_short", "too_long"):
        side, bound = (
            ("at least", ctx["min_length"])
            if kind == "too_short"
            else ("at most", ctx["max_length"])
        )
        return f"must hold {side} {bound} item" + ("" if bound == 1 else "s")
    if kind == "bool_type" or kind == "bool_parsing":
        return f"must be true or false, got {error['input']!r}"
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}, got {error['input']!r}"
    return str(error["msg"]).removeprefix("Value error, ")


def describe(error: ValidationError, source: str, *, name_of=None) -> str:
    """Every problem as `<source>: <key path>: <problem>`, joined by "; ". `name_of` may turn a
    location into words (e.g. "route #2 ('vip')") for files made of lists."""
    lines = []
    for item in error.errors():
        loc = tuple(item.get("loc", ()))
        where = name_of(loc) if name_of else ".".join(str(part) for part in loc)
        lines.append(f"{source}: {where or '(top)'}: {problem(item)}")
    return "; ".join(lines)


def validate(
    model: type[M],
    data: dict[str, Any],
    source: str,
    *,
    error: type[ConfigFileError] = ConfigFileError,
) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as problem:
        raise error(describe(problem, source)) from None
