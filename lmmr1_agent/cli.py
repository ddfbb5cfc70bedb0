"""What every lmmr1 command line checks before it loads a model: env specs, model folders, output folders; and
the one way a config dataclass becomes command-line options (:func:`option`, :func:`add_config_options`).

A bad input is a :class:`ConfigError` whose message names the user's thing (``--env LMMR1/TextMath-v0:
unknown argument 'nope'``); :class:`ArgumentParser` prints it, or argparse's own complaint, as one line on
stderr and exits with status 2. Nothing here imports torch, so ``evaluate`` starts in a fraction of a second.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import math
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import gymnasium as gym

#: A Hugging Face hub id: ``org/name``.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_GYM_SUFFIX = " was raised from the environment creator for "


class ConfigError(ValueError):
    """A config key, option or value that cannot be used; the message names it."""


class ModelFolderError(ValueError):
    """A model named by a path that does not exist, or that is not a saved model folder."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose errors are one line on stderr (``prog: error: ...``, exit status 2), without the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def option(default: Any, doc: str, **extra: Any) -> Any:
    """A config dataclass field: its default and a one-line doc (the ``--help`` text). ``extra`` shapes its option:
    ``alias="--lr"`` adds a second flag; ``type=int`` types a field whose default is None (not given);
    ``choices=`` and ``metavar=`` go to argparse; ``repeat=True`` makes a list a flag given once per item. Lists and
    dicts get a fresh copy per instance."""
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: json.loads(json.dumps(default)),
                                 metadata={"doc": doc, **extra})
    return dataclasses.field(default=default, metadata={"doc": doc, **extra})


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None


_json.__name__ = "JSON"  # argparse's complaint reads "invalid JSON value: '...'"


def add_config_options(parser: argparse.ArgumentParser, config_class: type, *, skip: tuple[str, ...] = (),
                       layered: bool = False) -> None:
    """One ``--option`` per field of ``config_class`` (declared with :func:`option`), help from its doc: booleans
    as ``--x/--no-x``, lists and dicts as JSON, a ``repeat`` list as one flag per item. ``layered``: an option not
    given parses as None, so a YAML value underneath it survives; otherwise it parses as the field's default (a
    ``repeat`` list as None: :func:`config_from_args` gives it its default)."""
    for f in dataclasses.fields(config_class):
        if f.name in skip:
            continue
        meta = f.metadata
        flags = [f"--{f.name.replace('_', '-')}"] + ([meta["alias"]] if "alias" in meta else [])
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        kind = meta.get("type", type(default))
        doc = meta["doc"]
        if default is not None and "(default:" not in doc:  # a doc may say its default in its own words
            doc += f" (default: {json.dumps(default) if isinstance(default, (list, dict)) else default})"
        given = {"dest": f.name, "default": None if layered else default, "help": doc,
                 **{k: meta[k] for k in ("choices", "metavar") if k in meta}}
        if meta.get("repeat"):
            parser.add_argument(*flags, action="append", **{**given, "default": None})
        elif kind is bool:
            parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **given)
        elif kind in (list, dict):
            parser.add_argument(*flags, type=_json, **{"metavar": "JSON", **given})
        else:
            parser.add_argument(*flags, type=kind, **given)


def config_from_args(config_class: type, args: argparse.Namespace) -> Any:
    """``config_class`` from options added by :func:`add_config_options`; one that parsed as None keeps its
    field's default."""
    names = {f.name for f in dataclasses.fields(config_class)}
    return config_class(**{k: v for k, v in vars(args).items() if k in names and v is not None})


def run_main(main: Callable[[], int | None]) -> NoReturn:
    """``sys.exit(main())`` where a ``SystemExit("message")`` (which Python would print with status 1) is printed
    as one line on stderr with status 2, the status every lmmr1 command line gives a bad input."""
    try:
        code = main()
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code.strip(), file=sys.stderr)
            sys.exit(2)
        raise
    sys.exit(code)


def parse_env_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """``"ID"``, Gymnasium's ``"module:ID"``, either with ``':{"json": "kwargs"}'`` after it → (id, kwargs).

    The kwargs start at the first ``:`` followed by ``{`` or ``[``; without one, a last ``:`` part that reads as
    an env id (``tests.toy_env:Toy/Digits-v0``) belongs to the id, and any other is taken as (bad) JSON.
    """
    opening = _KWARGS_START.search(spec)
    if opening is not None:
        env_id, raw = spec[:opening.start()], spec[opening.start() + 1:]
    else:
        head, _, tail = spec.rpartition(":")
        env_id, raw = (spec, "") if not head or _ENV_ID.fullmatch(tail.strip()) else (head, tail)
    kwargs: Any = {}
    if raw:
        try:
            kwargs = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--env {spec!r}: the kwargs after ':' are not valid JSON ({exc.msg} at column "
                              f"{exc.colno + len(env_id) + 1})") from None
        except RecursionError:
            raise ConfigError(f"--env {env_id}: the kwargs after ':' are nested too deeply") from None
        if not isinstance(kwargs, dict):
            raise ConfigError(f"--env {spec!r}: the kwargs after ':' must be a JSON object, "
                              f"got {type(kwargs).__name__}")
    return env_id.strip(), kwargs


#: Where an env spec's JSON kwargs start, and what a Gymnasium id (the part after ``module:``) looks like.
_KWARGS_START = re.compile(r":\s*[\[{]")
_ENV_ID = re.compile(r"[A-Za-z_][\w.\-/]*")


def check_env(env_id: str, kwargs: dict[str, Any], label: str) -> None:
    """Build ``env_id`` with ``kwargs`` once and close it; a ConfigError ``"{label}: <what is wrong>"`` if it fails.

    ``label`` is how the user named the env: ``"--env LMMR1/TextMath-v0"`` or ``"envs[1] (LMMR1/Sokoban-v0)"``.
    """
    import lmmr1_env

    # Gymnasium's "module:Id" form imports the module that registers Id (e.g. "tests.toy_env:Toy/Digits-v0").
    module, _, bare_id = env_id.rpartition(":")
    if module:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise ConfigError(f"{label.split(' ')[0]} {env_id!r}: cannot import {module!r} ({exc})") from None
    if bare_id not in gym.registry:
        raise ConfigError(f"{label.split(' ')[0]} {env_id!r} is not a registered environment; lmmr1 provides: "
                          f"{', '.join(lmmr1_env.registered_ids())}")
    if not isinstance(kwargs, dict):
        raise ConfigError(f"{label}: kwargs must be a mapping, got {type(kwargs).__name__}")
    try:
        gym.make(env_id, **kwargs).close()
    except TypeError as exc:
        message = str(exc).split(_GYM_SUFFIX)[0]
        unknown = re.search(r"unexpected keyword argument '(\w+)'", message)
        if unknown:
            message = f"unknown argument {unknown.group(1)!r}" + _accepted_arguments(env_id)
        raise ConfigError(f"{label}: {message}") from None
    except (ValueError, gym.error.Error) as exc:  # DatasetError and LevelError are ValueErrors
        raise ConfigError(f"{label}: {str(exc).split(_GYM_SUFFIX)[0]}") from None


def _accepted_arguments(env_id: str) -> str:
    """``"; LMMR1/TextMath-v0 takes split, dataset, ..."`` from the env class's signature ("" if unknown)."""
    spec = gym.spec(env_id)
    creator = spec.entry_point
    if isinstance(creator, str):
        creator = gym.envs.registration.load_env_creator(creator)
    try:
        names = [p.name for p in inspect.signature(creator).parameters.values()
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    except (TypeError, ValueError):  # a builtin or C creator without a signature
        return ""
    return f"; {env_id} takes {', '.join(names)}" if names else ""


def check_model(spec: str) -> None:
    """Raise ValueError unless ``spec`` is an embedded model name, a saved model folder or a hub id (org/name);
    :class:`ModelFolderError` when ``spec`` is a path (it exists, or reads like one) but not a model folder."""
    from lmmr1_agent.models.embedded import EMBEDDED

    if spec in EMBEDDED:
        return
    path = Path(spec).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelFolderError(f"model folder {spec!r} is a file, not a folder")
        if not (path / "config.json").is_file():
            raise ModelFolderError(f"model folder {spec!r} has no config.json (not a saved Hugging Face model)")
        return
    if _HUB_ID.fullmatch(spec):
        return
    if "/" in spec or "\\" in spec or spec.startswith((".", "~")):
        raise ModelFolderError(f"model folder {spec!r} does not exist")
    raise ValueError(f"{spec!r} is not an embedded model ({', '.join(sorted(EMBEDDED))}), a model folder or a "
                     "hub id (org/name)")


def check_output_dir(path: str | Path, option: str) -> Path:
    """Create folder ``path`` and write a probe file in it, so an unwritable output fails before any work."""
    path = Path(path).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(f"{option} {path}: cannot write there ({exc.strerror or exc})") from None
    return path


def check_number(option: str, value: float | None, *, low: float = 0.0, low_ok: bool = False) -> None:
    """ConfigError unless ``value`` (None: not given) is finite and above ``low`` (or equal, with ``low_ok``)."""
    if value is None:
        return
    if not math.isfinite(value) or value < low or (value == low and not low_ok):
        bound = f"at least {low:g}" if low_ok else f"above {low:g}"
        raise ConfigError(f"{option} must be a finite number {bound}, got {value!r}")


def check_count(option: str, value: int | None, minimum: int = 1) -> None:
    """ConfigError unless ``value`` (None: not given) is at least ``minimum``."""
    if value is not None and value < minimum:
        raise ConfigError(f"{option} must be at least {minimum}, got {value}")
