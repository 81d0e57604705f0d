"""Reading, checking and writing option values: YAML files, YAML values typed like their flags, field types.

The option definitions themselves (the dataclasses) are in :mod:`nerfocal.config`, which re-exports
these helpers.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import difflib
import json
import typing
from pathlib import Path
from typing import Any

import yaml

from nerfocal.io import atomic_open

__all__ = [
    "actions_by_key",
    "check_field_types",
    "coerce_value",
    "config_to_dict",
    "load_yaml",
    "parse_alpha",
    "save_config",
]

_DESCRIBE = {str: "a string", int: "an integer", float: "a number", bool: "true or false", type(None): "null"}


def check_field_types(config: Any, skip: tuple[str, ...] = ()) -> None:
    """Check each field of a nerfocal config dataclass against its annotation (``int``, ``float | None``...).

    An ``int`` is accepted for a ``float`` field (and converted); ``bool`` is never a number.

    Raises:
        ValueError: naming the field and the accepted type.
    """
    hints = typing.get_type_hints(type(config))
    for f in dataclasses.fields(config):
        if f.name in skip:
            continue
        kinds = typing.get_args(hints[f.name]) or (hints[f.name],)
        value = getattr(config, f.name)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            setattr(config, f.name, float(value))
            continue
        if not any(
            isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
            for kind in kinds
        ):
            accepted = " or ".join(_DESCRIBE.get(k, str(k)) for k in kinds)
            raise ValueError(f"{f.name}: expected {accepted}, got {value!r}")


def coerce_value(
    key: str, value: Any, action: Any, where: str = "", str_fields: frozenset[str] = frozenset()
) -> Any:
    """Check and convert a YAML value with the type of the option's command-line flag.

    YAML gives ints, floats, bools, strings, lists and mappings, and argparse does not convert
    defaults, so ``gamma: abc`` or ``max_length: 1.5`` would otherwise reach the dataclasses (or
    transformers) unchecked. Integers accept integral numbers, numbers accept numeric strings (YAML reads
    ``1e-5`` as a string), booleans accept true/false/yes/no; ``null`` only where the option's default
    is None. Values of other options (mappings such as ``lr_scheduler_kwargs``) pass unchanged.
    ``str_fields``: string options checked as strings (nerfocal's own; transformers' pass unchanged).

    Raises:
        ValueError: ``{where}{key}: expected ..., got ...``.
    """
    from transformers.hf_argparser import string_to_bool

    kind = action.type
    checked = kind in (int, float, string_to_bool) or bool(action.choices) or key in str_fields
    if value is None:
        if action.default is None or not checked:
            return None
        raise ValueError(f"{where}{key}: expected {_kind_name(action)}, got null")
    if action.nargs in ("+", "*") and isinstance(value, list):
        element = copy.copy(action)
        element.nargs = None
        return [coerce_value(key, v, element, where, str_fields) for v in value]
    problem = ""
    if kind in (int, float) and not isinstance(value, bool):
        try:
            number = kind(value.strip()) if isinstance(value, str) else value
        except ValueError:
            number = None
        if isinstance(number, (int, float)) and (kind is float or float(number).is_integer()):
            return kind(number)
    elif kind is string_to_bool:
        if isinstance(value, (bool, str)):
            with contextlib.suppress(argparse.ArgumentTypeError):
                return string_to_bool(value.strip() if isinstance(value, str) else value)
    elif action.choices:
        if str(value) in [str(c) for c in action.choices] and not isinstance(value, bool):
            return kind(str(value)) if callable(kind) else value
        if isinstance(value, bool):
            problem = " (YAML reads unquoted yes/no/on/off as booleans: quote the value)"
    elif kind is str and key in str_fields:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    else:
        return value
    raise ValueError(f"{where}{key}: expected {_kind_name(action)}, got {value!r}{problem}")


def _kind_name(action: Any) -> str:
    from transformers.hf_argparser import string_to_bool

    if action.choices:
        return "one of " + ", ".join(str(c) for c in action.choices)
    names = {int: "an integer", float: "a number", string_to_bool: "true or false", str: "a string"}
    return names.get(action.type, "a value")


class _DuplicateKey(ValueError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key written twice in one mapping (plain YAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue  # ``<<: *base`` merges may override keys, as intended
            key = self.construct_object(key_node)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise _DuplicateKey(f"{seen[key]} and {line}: duplicate key {key!r} (a key may appear once)")
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


def load_yaml(path: str | Path, known: set[str]) -> dict[str, Any]:
    """Read a YAML config; unknown or duplicate keys and non-mapping files are errors naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: config file not found")
    try:
        # a SafeLoader subclass: yaml.load with it is as safe as yaml.safe_load
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
    except _DuplicateKey as err:
        raise ValueError(f"{path}:{err}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: invalid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of option: value, got {type(data).__name__}")
    for key in data:
        if key not in known:
            hint = difflib.get_close_matches(str(key), sorted(known), n=1)
            suffix = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ValueError(f"{path}: unknown key {key!r}{suffix}")
    return data


def config_to_dict(*configs: Any) -> dict[str, Any]:
    """All options of a run as one flat mapping (what ``save_config`` writes)."""
    out: dict[str, Any] = {}
    for cfg in configs:
        if (hasattr(cfg, "to_dict") and not dataclasses.is_dataclass(cfg)) or hasattr(
            cfg, "to_sanitized_dict"
        ):
            out.update(json.loads(json.dumps(cfg.to_dict(), default=str)))
        else:
            out.update(dataclasses.asdict(cfg))
    return out


def save_config(path: str | Path, *configs: Any) -> None:
    """Write the resolved configuration as YAML (it can be passed back to the training script).

    Written to a temporary file and renamed, so a crash never leaves half a config.
    """
    with atomic_open(path) as handle:
        handle.write(yaml.safe_dump(config_to_dict(*configs), sort_keys=False))


def parse_alpha(value: Any) -> Any:
    """Turn a CLI/YAML alpha into None, a float, 'auto', a list of floats or a dict of floats."""
    if value is None or (isinstance(value, (float, int)) and not isinstance(value, bool)):
        return None if value is None else float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("", "none", "null"):
            return None
        if text.lower() == "auto":
            return "auto"
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError(
                f"alpha: expected none, a number, 'auto', a JSON list or a JSON object, got {text!r}"
            ) from None
        return parse_alpha(value)
    if isinstance(value, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value
    ):
        return [float(v) for v in value]
    if isinstance(value, dict) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value.values()
    ):
        return {str(k): float(v) for k, v in value.items()}
    raise ValueError(f"alpha: expected none, a number, 'auto', a list or a mapping of numbers, got {value!r}")


def number_list(name: str, value: Any) -> list[float]:
    """A list option of numbers: a list, a single number, or (as before 0.2) a comma-separated string."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        items = [items]
    try:
        if any(isinstance(v, bool) for v in items):
            raise ValueError
        return [float(v) for v in items]
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a list of numbers, got {value!r}") from None


def tokens_seen(value: str) -> str | bool:
    from transformers.hf_argparser import string_to_bool

    return value if value in ("all", "non_padding", "no") else string_to_bool(value)


def argument_error(message: str) -> Any:
    # argparse would print the usage and exit; its message already names the flag
    raise ValueError(f"{message} (see nerfocal train --help)")


def actions_by_key(parser: Any) -> dict[str, Any]:
    """The argparse action of each option (``--name``, not its ``--no_name`` complement)."""
    return {a.dest: a for a in parser._actions if f"--{a.dest}" in a.option_strings}
