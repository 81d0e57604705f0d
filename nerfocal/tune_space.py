"""The search space of ``nerfocal tune``: its default, checking a user's, sampling a trial from it, and
the point of it that is the base configuration's own recipe (the study's first trial).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# option -> search space; "log" = float sampled on a log scale
DEFAULT_SPACE: dict[str, dict[str, Any]] = {
    "learning_rate": {"type": "log", "low": 2e-5, "high": 3e-4},
    "gamma": {"type": "float", "low": 0.5, "high": 3.0},
    "prior_init": {"type": "categorical", "choices": [True, False]},
    "ce_warmup_epochs": {"type": "categorical", "choices": [0.0, 0.1, 0.5]},
    "alpha": {"type": "categorical", "choices": [None, 0.75, "auto"]},
    # searched only in trials whose alpha is not none (see suggest)
    "alpha_normalization": {"type": "categorical", "choices": ["none", "prior"]},
    "loss": {"type": "categorical", "choices": ["focal", "focal_adaptive", "ce"]},
}
SPACE_TYPES = ("float", "log", "int", "categorical")


def check_space(space: Any, known: set[str], where: str = "search space") -> dict[str, dict[str, Any]]:
    """Validate a search space mapping ``option -> {type, low, high | choices}``.

    Raises:
        ValueError: naming the option and what it expects.
    """
    if not isinstance(space, dict) or not space:
        raise ValueError(
            f"{where}: expected a mapping of option: {{type, low, high | choices}}, got {space!r}"
        )
    for name, spec in space.items():
        if name not in known:
            raise ValueError(f"{where}: {name!r} is not a training option")
        if not isinstance(spec, dict) or spec.get("type") not in SPACE_TYPES:
            raise ValueError(f"{where}: {name}: expected type one of {', '.join(SPACE_TYPES)}, got {spec!r}")
        if spec["type"] == "categorical":
            if not isinstance(spec.get("choices"), list) or not spec["choices"]:
                raise ValueError(f"{where}: {name}: expected a non-empty list of choices")
            continue
        low, high = spec.get("low"), spec.get("high")
        if not (_is_number(low) and _is_number(high)):
            raise ValueError(f"{where}: {name}: expected numbers low and high, got {low!r}, {high!r}")
        assert isinstance(low, (int, float)) and isinstance(high, (int, float))  # for mypy
        if not low < high or (spec["type"] == "log" and low <= 0):
            raise ValueError(f"{where}: {name}: expected 0 < low < high for log, low < high otherwise")
    return space


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def load_space(path: str | None, known: set[str]) -> dict[str, dict[str, Any]]:
    """The default space, or the YAML file ``path`` (checked)."""
    if path is None:
        return DEFAULT_SPACE
    import yaml

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{file}: search space file not found")
    try:
        space = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{file}: invalid YAML: {err}") from None
    return check_space(space, known, str(file))


def suggest(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One trial's settings from the space (optuna's ``suggest_*``)."""
    values: dict[str, Any] = {}
    for name, spec in space.items():
        if name == "alpha_normalization" and values.get("alpha", spec) is None:
            continue  # rescales an alpha: meaningless (and an error) without one, so not searched then
        if spec["type"] == "categorical":
            # optuna stores categorical choices as they are; None and mixed types are allowed
            values[name] = trial.suggest_categorical(name, spec["choices"])
        elif spec["type"] == "int":
            values[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]))
        else:
            values[name] = trial.suggest_float(name, spec["low"], spec["high"], log=spec["type"] == "log")
    return values


def baseline_point(
    configs: tuple[Any, ...], space: dict[str, dict[str, Any]]
) -> tuple[dict[str, Any] | None, str]:
    """The base configuration's own settings as a point of ``space``, or ``(None, why not)``.

    ``configs``: what :func:`nerfocal.config.parse_config` returns for the base ``CONFIG [--flags]``.
    Enqueued as the study's first trial, this point is the recipe ``nerfocal train`` would run anyway, so
    the study says how much the search gains over it on dev (and never returns a recipe that did worse
    on dev). A setting outside the space (a rate above ``high``, a per-class alpha list) has no point.
    """
    values: dict[str, Any] = {}
    for name, spec in space.items():
        if name == "alpha_normalization" and values.get("alpha", spec) is None:
            continue  # as in suggest: not searched without an alpha
        owners = [c for c in configs if hasattr(c, name)]
        if not owners:
            return None, f"{name} is not a setting of the base configuration"
        value = getattr(owners[0], name)
        if name == "prior_init":  # unset: what training does with it
            from nerfocal.losses import resolve_prior_init

            value = resolve_prior_init(value, next(c.loss for c in configs if hasattr(c, "loss")))
        point = _in_space(value, spec)
        if point is _OUTSIDE:
            return None, f"its {name} {value!r} is outside the search space"
        values[name] = point
    return values, ""


_OUTSIDE = object()


def _in_space(value: Any, spec: dict[str, Any]) -> Any:
    """``value`` as the space holds it (for a categorical: the matching choice), or ``_OUTSIDE``."""
    if spec["type"] == "categorical":
        for choice in spec["choices"]:  # True is not 1 here, nor "0.75" 0.75
            if isinstance(choice, bool) == isinstance(value, bool) and _same(choice, value):
                return choice
        return _OUTSIDE
    if not _is_number(value) or not spec["low"] <= value <= spec["high"]:
        return _OUTSIDE
    if spec["type"] == "int" and value != int(value):
        return _OUTSIDE
    return int(value) if spec["type"] == "int" else float(value)


def _same(choice: Any, value: Any) -> bool:
    if _is_number(choice) and _is_number(value):
        return bool(float(choice) == float(value))
    return type(choice) is type(value) and bool(choice == value)
