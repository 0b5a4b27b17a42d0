"""Reading the YAML config files (scoring.yaml, rules.yaml, routing.yaml, segment.yaml): from
KIZASHI_CONFIG_DIR when the file is there, else the packaged default, with errors that name
the file, the key and the problem.

Each file declares itself once as a `ConfigFile` (its name, package, model and any wording of
its own) and loads through `ConfigFile.load`; every pydantic error goes through `describe`,
so the four files speak one vocabulary ("unknown key", "must be ≥ 0", "required key is
missing").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

# The words for a problem; a file may replace some with its own (ConfigFile.phrases) where
# its tests pin an older wording. {detail}, {bound}, {expected} and {input} are filled in.
PHRASES: Mapping[str, str] = {
    "unreadable": "cannot be read: {detail}",
    "not_yaml": "not valid YAML: {detail}",
    "not_mapping": "must be a mapping at the top level",
    "ge": "must be ≥ {bound:g}",
    "gt": "must be > {bound:g}",
    "le": "must be ≤ {bound:g}",
    "lt": "must be < {bound:g}",
    "literal": "must be one of {expected}, got {input!r}",
}
# Parts pydantic adds to an error's location for union members and validator wrappers
# ("float", "literal['segment']", "function-after[...]", "list[str]"): not keys in the file.
_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "none"})

Keys = tuple[str | int, ...]
# (key path, the pydantic error) -> a message of the file's own, or None for the shared one.
Reword = Callable[[Keys, dict[str, Any]], str | None]
# (key path, the file's data) -> the location in words, e.g. "route #2 ('vip'): match.rule".
NameOf = Callable[[Keys, Any], str]


class ConfigFileError(ValueError):
    """A config file that cannot be used; the message says where and why."""


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
    text: str,
    source: str,
    *,
    error: type[ConfigFileError] = ConfigFileError,
    phrases: Mapping[str, str] = PHRASES,
    empty_ok: bool = False,
) -> dict[str, Any]:
    """The file's top-level mapping; `empty_ok` lets an empty file stand for {}."""
    try:
        data = load_yaml(text)
    except yaml.YAMLError as detail:
        raise error(f"{source}: {_say(phrases, 'not_yaml', detail=detail)}") from detail
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        raise error(f"{source}: {_say(phrases, 'not_mapping')}")
    return data


def overlay(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """`top` laid over `base` key by key, mappings merged at every depth."""
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = overlay(merged[key], value)
        else:
            merged[key] = value
    return merged


def problem(error: dict[str, Any], phrases: Mapping[str, str] = PHRASES) -> str:
    """One pydantic error in words: "must be a number, got 'x'", "unknown key"."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind.startswith(("greater_than", "less_than")):
        for bound in ("ge", "gt", "le", "lt"):
            if bound in ctx:
                return _say(phrases, bound, bound=ctx[bound])
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    if kind in ("float_type", "float_parsing", "int_type", "int_parsing", "finite_number"):
        return f"must be a number, got {error['input']!r}"
    if kind == "int_from_float":
        return f"must be a whole number, got {error['input']!r}"
    if kind == "string_type":
        return f"must be a string, got {error['input']!r}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
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
    if kind in ("bool_type", "bool_parsing"):
        return f"must be true or false, got {error['input']!r}"
    if kind == "literal_error":
        return _say(phrases, "literal", expected=ctx["expected"], input=error["input"])
    return str(error["msg"]).removeprefix("Value error, ")


def key_path(loc: tuple[Any, ...], union_tags: frozenset[str] = frozenset()) -> Keys:
    """The error's location as keys of the file: union and validator tags dropped."""
    return tuple(part for part in loc if not _is_tag(part, union_tags))


def _is_tag(part: Any, union_tags: frozenset[str]) -> bool:
    if not isinstance(part, str):
        return False
    return "[" in part or part.startswith("function-") or part in _TYPE_TAGS | union_tags


def describe(
    error: ValidationError,
    source: str,
    *,
    data: Any = None,
    name_of: NameOf | None = None,
    reword: Reword | None = None,
    phrases: Mapping[str, str] = PHRASES,
    union_tags: frozenset[str] = frozenset(),
) -> str:
    """Every problem as `<source>: <key path>: <problem>`, joined by "; ". The problems a
    union gives for one key (one per member) are said once, joined by "or"."""
    found: dict[str, list[str]] = {}
    for item in error.errors():
        keys = key_path(tuple(item.get("loc", ())), union_tags)
        where = name_of(keys, data) if name_of else ".".join(str(part) for part in keys)
        reason = (reword(keys, dict(item)) if reword else None) or problem(dict(item), phrases)
        reasons = found.setdefault(where or "(top level)", [])
        if reason not in reasons:
            reasons.append(reason)
    return "; ".join(f"{source}: {where}: {' or '.join(r)}" for where, r in found.items())


@dataclass(frozen=True)
class ConfigFile(Generic[M]):
    """One config file: where its packaged default lives, what validates it, and the few
    ways its messages differ from the shared ones."""

    name: str  # "rules.yaml"
    package: str  # whose defaults/ holds the packaged file: "kizashi.triggers"
    model: type[M]
    error: type[ConfigFileError] = ConfigFileError
    # The operator's file is laid over the packaged default key by key (only changes are
    # written), instead of replacing it.
    overlay: bool = False
    phrases: Mapping[str, str] = field(default_factory=dict)
    union_tags: frozenset[str] = frozenset()
    reword: Reword | None = None
    name_of: NameOf | None = None

    def load(self, config_dir: Path | None) -> M:
        """`<config_dir>/<name>` when it exists (laid over the default when `overlay`), else
        the packaged default, whose errors name the bare file name."""
        custom = self.path_in(config_dir)
        if self.overlay:
            data = self.read_mapping(self.default_path(), f"{self.name} (packaged default)")
            if custom is None:
                return self.validate(data, self.name)
            return self.validate(overlay(data, self.read_mapping(custom, str(custom))), str(custom))
        if custom is None:
            return self.validate(self.read_mapping(self.default_path(), self.name), self.name)
        return self.validate(self.read_mapping(custom, str(custom)), str(custom))

    def path_in(self, config_dir: Path | None) -> Path | None:
        """The operator's file, if there is one."""
        if config_dir is None:
            return None
        path = Path(config_dir) / self.name
        return path if path.is_file() else None

    def default_path(self) -> Path:
        return Path(str(resources.files(self.package).joinpath("defaults", self.name)))

    def read_mapping(self, path: Path, source: str) -> dict[str, Any]:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as detail:
            raise self.error(f"{source}: {self._say('unreadable', detail=detail)}") from detail
        return self.parse_mapping(text, source)

    def parse_mapping(self, text: str, source: str) -> dict[str, Any]:
        return parse_yaml_mapping(
            text, source, error=self.error, phrases=self._phrases, empty_ok=self.overlay
        )

    def parse(self, text: str, source: str | None = None) -> M:
        """The text of a file, validated; `source` (default: the file name) prefixes errors."""
        source = source or self.name
        return self.validate(self.parse_mapping(text, source), source)

    def validate(self, data: Any, source: str) -> M:
        try:
            return self.model.model_validate(data)
        except ValidationError as problems:
            message = describe(
                problems,
                source,
                data=data,
                name_of=self.name_of,
                reword=self.reword,
                phrases=self._phrases,
                union_tags=self.union_tags,
            )
            raise self.error(message) from None

    @property
    def _phrases(self) -> Mapping[str, str]:
        return {**PHRASES, **self.phrases} if self.phrases else PHRASES

    def _say(self, key: str, **values: Any) -> str:
        return _say(self._phrases, key, **values)


def _say(phrases: Mapping[str, str], key: str, **values: Any) -> str:
    return phrases[key].format(**values)
