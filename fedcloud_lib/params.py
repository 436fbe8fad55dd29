"""Runbook parameters: read the declarations of a ``parameters`` cell, validate values.

A declaration is one line of the parameters cell (see ``runbooks/README.md``)::

    name: type = default  # help text [required; choices=a|b; pattern=REGEX; min=0; max=9; secret]

Values come from YAML files (merged in order, papermill's ``-f`` format) and then
``-p NAME VALUE`` overrides.  :func:`validate` checks every value against its declaration
and raises one :class:`~fedcloud_lib.errors.ParameterError` listing every problem, each
naming the parameter, the value given (a short prefix and its length at most) and what is
allowed.

Parameter files are hostile input.  They are read with a YAML loader that refuses aliases
(an alias bomb expands to gigabytes), files over :data:`MAX_FILE_BYTES`, text that is not
UTF-8, and keeps the text of every plain scalar that YAML 1.1 would turn into a number, a
boolean or a date: a ``str`` parameter gets what was written (``ticket: 0123`` is
``"0123"``, not the octal ``83``); an ``int``/``float`` parameter written in a form only
YAML 1.1 reads as a number (leading-zero octal, ``12:30`` sexagesimal, ``1_000``) is
refused rather than silently reinterpreted (:func:`as_declared`).
"""
from __future__ import annotations

import ast
import io
import math
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ParameterError, RunbookError
from .scrub import MARKER

__all__ = ["ParamSpec", "parse_parameters_cell", "validate_values", "load_value_files",
           "parse_override", "as_declared", "SECRET_MARKER", "MAX_FILE_BYTES"]

SECRET_MARKER = MARKER  # what a secret value is shown as, everywhere
MAX_FILE_BYTES = 1 << 20  # a parameter file larger than 1 MiB is refused
_MAX_NUMBER_TEXT = 100    # a plain scalar read as a number longer than this is refused
_MAX_INT = 2 ** 63        # ints are 64-bit (the kernel, SQLite, every API they reach)
_BASE_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}
# a trailing [word; word=value; ...] group; "[the docs]" (words with spaces) stays help text
_CONSTRAINT_RE = re.compile(r"\[\s*([A-Za-z_]+\s*(?:=.*|;.*)?)\]\s*$")


@dataclass(frozen=True)
class TypeSpec:
    """A parsed annotation: base type, optional element types, and whether None is allowed."""

    base: str
    args: tuple["TypeSpec", ...] = ()
    optional: bool = False

    def __str__(self) -> str:
        s = self.base + (f"[{', '.join(map(str, self.args))}]" if self.args else "")
        return s + (" | None" if self.optional else "")


@dataclass(frozen=True)
class ParamSpec:
    """One declared runbook parameter."""

    name: str
    type: TypeSpec
    default: Any
    help: str = ""
    required: bool = False
    secret: bool = False
    choices: tuple[Any, ...] | None = None
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def allowed(self) -> str:
        """What is allowed, in words (used in error messages and `fedcloud describe`)."""
        parts = [str(self.type)]
        if self.choices is not None:
            parts.append("one of " + ", ".join(map(repr, self.choices)))
        if self.pattern is not None:
            parts.append(f"matching /{self.pattern}/")
        if self.min is not None or self.max is not None:
            what = "length" if self.type.base in ("str", "list") else "value"
            lo = "" if self.min is None else _num(self.min)
            hi = "" if self.max is None else _num(self.max)
            parts.append(f"{what} {lo}..{hi}")
        return ", ".join(parts)

    def to_dict(self) -> dict:
        return {"name": self.name, "type": str(self.type),
                "default": SECRET_MARKER if self.secret and self.default else self.default,
                "help": self.help, "required": self.required, "secret": self.secret,
                "choices": list(self.choices) if self.choices is not None else None,
                "pattern": self.pattern, "min": self.min, "max": self.max}


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# ----------------------------------------------------------------- parsing the cell
def _parse_type(node: ast.expr | None, where: str) -> TypeSpec:
    if node is None:
        raise RunbookError(f"{where}: every parameter needs a type annotation (e.g. `name: str = ''`)")
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = node.left, node.right
        if isinstance(right, ast.Constant) and right.value is None:
            return _replace_optional(_parse_type(left, where))
        if isinstance(left, ast.Constant) and left.value is None:
            return _replace_optional(_parse_type(right, where))
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        if node.value.id == "Optional":
            return _replace_optional(_parse_type(node.slice, where))
        base = node.value.id
        if base not in ("list", "dict"):
            raise RunbookError(f"{where}: unsupported annotation {ast.unparse(node)!r}")
        elts = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        return TypeSpec(base, tuple(_parse_type(e, where) for e in elts))
    if isinstance(node, ast.Name) and node.id in _BASE_TYPES:
        return TypeSpec(node.id)
    raise RunbookError(f"{where}: unsupported annotation {ast.unparse(node)!r}; "
                       f"use str, int, float, bool, list, dict (optionally list[...], X | None)")


def _replace_optional(t: TypeSpec) -> TypeSpec:
    return TypeSpec(t.base, t.args, optional=True)


def _comments_by_line(source: str) -> dict[int, str]:
    out: dict[int, str] = {}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = tok.string[1:].strip()
    except tokenize.TokenError:
        pass
    return out


def _parse_constraints(text: str, name: str, where: str) -> tuple[str, dict]:
    m = _CONSTRAINT_RE.search(text)
    if not m:
        return text.strip(), {}
    help_text = text[: m.start()].strip()
    cons: dict[str, Any] = {}
    for item in (i.strip() for i in m.group(1).split(";")):
        if not item:
            continue
        key, _, val = item.partition("=")
        key, val = key.strip(), val.strip()
        if key in ("required", "secret") and not _:
            cons[key] = True
        elif key == "choices" and _:
            cons["choices"] = tuple(v.strip() for v in val.split("|"))
        elif key == "pattern" and _:
            try:
                re.compile(val)
            except re.error as e:
                raise RunbookError(f"{where}: parameter {name!r} has an invalid pattern {val!r}: {e}") from e
            cons["pattern"] = val
        elif key in ("min", "max") and _:
            try:
                cons[key] = float(val)
            except ValueError as e:
                raise RunbookError(f"{where}: parameter {name!r}: {key}={val!r} is not a number") from e
        else:
            raise RunbookError(
                f"{where}: parameter {name!r}: unknown constraint {item!r}; allowed: required, "
                f"secret, choices=a|b, pattern=REGEX, min=N, max=N")
    return help_text, cons


def parse_parameters_cell(source: str, where: str = "parameters cell") -> list[ParamSpec]:
    """Read every declaration of a parameters cell, in order."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        raise RunbookError(f"{where}: not valid Python: {e}") from e
    comments = _comments_by_line(source)
    specs: list[ParamSpec] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            name, ann, value = stmt.target.id, stmt.annotation, stmt.value
        elif isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            name, ann, value = stmt.targets[0].id, None, stmt.value
        else:
            raise RunbookError(f"{where}, line {stmt.lineno}: only `name: type = value` "
                               f"declarations belong in the parameters cell")
        here = f"{where}, line {stmt.lineno}"
        typ = _parse_type(ann, f"{here} ({name})")
        if value is None:
            raise RunbookError(f"{here}: parameter {name!r} needs a default value")
        try:
            default = ast.literal_eval(value)
        except ValueError as e:
            raise RunbookError(f"{here}: the default of {name!r} must be a literal "
                               f"(got {ast.unparse(value)!r})") from e
        help_text, cons = _parse_constraints(comments.get(stmt.end_lineno or stmt.lineno, ""), name, here)
        if "choices" in cons:
            cons["choices"] = tuple(_coerce_choice(c, typ) for c in cons["choices"])
        spec = ParamSpec(name=name, type=typ, default=default, help=help_text, **cons)
        specs.append(spec)
        if not spec.required:
            problem = _check(spec, default)
            if problem:
                raise RunbookError(f"{here}: the default of {name!r} is not allowed by its own "
                                   f"declaration: {problem}")
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RunbookError(f"{where}: parameter(s) declared twice: {', '.join(dupes)}")
    return specs


def _coerce_choice(text: str, typ: TypeSpec) -> Any:
    base = typ.args[0].base if typ.base == "list" and typ.args else typ.base
    if base in ("int", "float", "bool"):
        v = yaml.safe_load(text)
        return v
    return text


# ----------------------------------------------------------------- values
class _Written:
    """A plain YAML scalar that YAML 1.1 reads as a number, boolean or date, with its text."""

    __slots__ = ("value", "text", "problem")

    def __init__(self, value: Any, text: str, problem: str | None = None):
        self.value, self.text, self.problem = value, text, problem

    def __repr__(self) -> str:
        return repr(self.text)


class _ParamLoader(yaml.SafeLoader):
    """SafeLoader without aliases, keeping the text of implicitly typed scalars."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, f"found an alias (*{event.anchor}); aliases are not allowed in "
                f"parameter files: write the value out", event.start_mark)
        return super().compose_node(parent, index)


def _keeping_text(construct):
    def constructor(loader, node):
        text = node.value
        if len(text) > _MAX_NUMBER_TEXT and construct is not yaml.SafeLoader.construct_yaml_bool:
            return _Written(None, text, f"a number written with {len(text)} characters is too "
                                        f"long")
        try:
            value = construct(loader, node)
        except (ValueError, OverflowError) as e:
            return _Written(None, text, f"not a usable number ({type(e).__name__})")
        return _Written(value, text) if node.style is None else value
    return constructor


for _tag, _construct in (("int", yaml.SafeLoader.construct_yaml_int),
                         ("float", yaml.SafeLoader.construct_yaml_float),
                         ("bool", yaml.SafeLoader.construct_yaml_bool),
                         ("timestamp", yaml.SafeLoader.construct_yaml_timestamp)):
    _ParamLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _keeping_text(_construct))


def _load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_ParamLoader)  # noqa: S506 - a SafeLoader subclass


def _yaml_problem(e: Exception) -> str:
    """What is wrong with a YAML text, without quoting its lines (they may hold secrets)."""
    if isinstance(e, RecursionError):
        return "nested too deeply"
    if isinstance(e, yaml.MarkedYAMLError):
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        what = "; ".join(x for x in (e.context, e.problem) if x)
        return where + (what or type(e).__name__)
    return type(e).__name__


def _plain(v: Any) -> Any:
    """The value YAML 1.1 gave (for parameters that are not declared)."""
    if isinstance(v, _Written):
        return v.value if v.problem is None else v.text
    if isinstance(v, list):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {_plain(k): _plain(x) for k, x in v.items()}
    return v


_DECIMAL_INT = re.compile(r"[-+]?(0|[1-9][0-9]*)|0x[0-9a-fA-F]+")
_DECIMAL_FLOAT = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+)?"
                            r"|[-+]?\.(inf|Inf|INF)|\.(nan|NaN|NAN)")


def _why_not_decimal(text: str) -> str:
    if ":" in text:
        return "sexagesimal (base 60)"
    if re.fullmatch(r"[-+]?0[0-7_]+", text):
        return "octal"
    return "not plain decimal"


def _as_type(t: TypeSpec, v: Any, problems: list[str], where: str) -> Any:
    if isinstance(v, _Written):
        if t.base == "str":
            return v.text
        if v.problem is not None:
            problems.append(f"{where}: {v.problem} (allowed: {t})")
            return None
        if t.base == "int" and isinstance(v.value, int) and not isinstance(v.value, bool) \
                and not _DECIMAL_INT.fullmatch(v.text):
            problems.append(f"{where}: written {v.text}, which YAML 1.1 reads as {v.value} "
                            f"({_why_not_decimal(v.text)}); write the number in decimal")
            return None
        if t.base == "float" and isinstance(v.value, (int, float)) \
                and not isinstance(v.value, bool) and not _DECIMAL_FLOAT.fullmatch(v.text) \
                and not _DECIMAL_INT.fullmatch(v.text):
            problems.append(f"{where}: written {v.text}, which YAML 1.1 reads as {v.value} "
                            f"({_why_not_decimal(v.text)}); write the number in decimal")
            return None
        return v.value
    if t.base == "list" and isinstance(v, list):
        return [_as_type(t.args[0], x, problems, where) if t.args else _plain(x) for x in v]
    if t.base == "dict" and isinstance(v, dict):
        if len(t.args) == 2:
            return {_as_type(t.args[0], k, problems, where): _as_type(t.args[1], x, problems, where)
                    for k, x in v.items()}
        return _plain(v)
    return _plain(v)


def as_declared(specs: list[ParamSpec], values: dict) -> dict:
    """Values read from parameter files or ``-p``, interpreted by their declared types.

    A ``str`` parameter gets the text as written; a number written in a YAML-1.1-only form
    is refused.  Raises ParameterError listing every such problem.
    """
    by_name = {s.name: s for s in specs}
    problems: list[str] = []
    out = {}
    for name, v in values.items():
        spec = by_name.get(name)
        out[name] = _plain(v) if spec is None else _as_type(spec.type, v, problems, name)
    if problems:
        raise ParameterError(f"{len(problems)} parameter problem(s):\n  " + "\n  ".join(problems),
                             problems=problems)
    return out


def load_value_files(paths: list[str | Path], specs: list[ParamSpec] | None = None) -> dict:
    """Merge YAML parameter files in order (later files win), papermill's ``-f`` format.

    With the runbook's ``specs``, values are read by their declared types
    (:func:`as_declared`); without, as YAML 1.1 reads them.
    """
    merged: dict = {}
    for p in paths:
        p = Path(p)
        try:
            with p.open("rb") as f:
                raw = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError as e:
            raise ParameterError(f"parameter file {p} does not exist", path=str(p)) from e
        except OSError as e:
            raise ParameterError(f"parameter file {p}: cannot read it ({e.strerror or e})",
                                 path=str(p)) from e
        if len(raw) > MAX_FILE_BYTES:
            raise ParameterError(f"parameter file {p} is too large (over {MAX_FILE_BYTES} "
                                 f"bytes); parameters are small", path=str(p))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise ParameterError(f"parameter file {p} is not UTF-8 text (byte "
                                 f"0x{raw[e.start]:02x} at offset {e.start})", path=str(p)) from e
        try:
            data = _load_yaml(text)
        except (yaml.YAMLError, RecursionError, ValueError) as e:
            raise ParameterError(f"parameter file {p} is not valid YAML: {_yaml_problem(e)}",
                                 path=str(p)) from e
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ParameterError(f"parameter file {p} must be a mapping of name: value, "
                                 f"got {type(_plain(data)).__name__}", path=str(p))
        merged.update({_plain(k): v for k, v in data.items()})
    if specs is None:
        return {k: _plain(v) for k, v in merged.items()}
    return as_declared(specs, merged)


def parse_override(spec: ParamSpec | None, raw: str) -> Any:
    """Turn the text of ``-p NAME VALUE`` into a value of the declared type.

    A ``str`` parameter takes the text as it is; others read it as YAML (``3``, ``true``,
    ``[a, b]``), so that validation can then say precisely what is wrong.
    """
    if spec is not None and spec.type.base == "str":
        return None if (spec.type.optional and raw in ("None", "null", "~")) else raw
    if len(raw) > MAX_FILE_BYTES:
        return raw
    try:
        value = _load_yaml(raw)
    except (yaml.YAMLError, RecursionError, ValueError):
        return raw
    if spec is None:
        return _plain(value)
    problems: list[str] = []
    value = _as_type(spec.type, value, problems, spec.name)
    if problems:
        raise ParameterError(problems[0], problems=problems, parameter=spec.name)
    return value


def _type_ok(t: TypeSpec, v: Any) -> tuple[bool, Any]:
    """(is the value of type t, the value coerced losslessly)."""
    if v is None:
        return t.optional, None
    if t.base == "bool":
        return isinstance(v, bool), v
    if t.base == "int":
        return isinstance(v, int) and not isinstance(v, bool), v
    if t.base == "float":
        ok = isinstance(v, (int, float)) and not isinstance(v, bool)
        try:
            return ok, float(v) if ok else v
        except OverflowError:
            return False, v
    if t.base == "str":
        if isinstance(v, str):
            return True, v
        # YAML reads `ticket: 1234` as an int: accept numbers for str, losslessly
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) < _MAX_INT:
            return True, str(v)
        if isinstance(v, float) and math.isfinite(v):
            return True, str(v)
        return False, v
    if t.base == "list":
        if not isinstance(v, list):
            return False, v
        if not t.args:
            return True, v
        out = []
        for x in v:
            ok, cx = _type_ok(t.args[0], x)
            if not ok:
                return False, v
            out.append(cx)
        return True, out
    if t.base == "dict":
        if not isinstance(v, dict):
            return False, v
        if len(t.args) == 2:
            out = {}
            for k, x in v.items():
                ok_k, ck = _type_ok(t.args[0], k)
                ok_v, cx = _type_ok(t.args[1], x)
                if not (ok_k and ok_v):
                    return False, v
                out[ck] = cx
            return True, out
        return True, v
    return False, v


def _check(spec: ParamSpec, v: Any) -> str | None:
    """None if v is allowed, else what is wrong (without the parameter name)."""
    ok, v = _type_ok(spec.type, v)
    if not ok:
        return f"expected {spec.type}, got {type(v).__name__}"
    if v is None:
        return None
    if isinstance(v, float) and math.isnan(v):
        return "not a number (NaN)"
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= _MAX_INT:
        return f"a number of {v.bit_length()} bits is too large (at most 63)"
    if spec.choices is not None:
        items = v if isinstance(v, list) else [v]
        bad = [x for x in items if x not in spec.choices]
        if bad:
            return "not one of " + ", ".join(map(repr, spec.choices))
    if spec.pattern is not None and isinstance(v, str) and not re.fullmatch(spec.pattern, v):
        return f"does not match /{spec.pattern}/"
    if spec.min is not None or spec.max is not None:
        size = len(v) if isinstance(v, (str, list)) else v
        if isinstance(size, (int, float)):
            what = "length" if isinstance(v, (str, list)) else "value"
            if spec.min is not None and size < spec.min:
                return f"{what} {size} is below the minimum {_num(spec.min)}"
            if spec.max is not None and size > spec.max:
                return f"{what} {size} is above the maximum {_num(spec.max)}"
    return None


def _short(v: Any, n: int = 60) -> str:
    """A value for a message: its repr, or a prefix of it and its length (inputs are hostile)."""
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 200:
        return f"<a {v.bit_length()}-bit number>"
    try:
        r = repr(v)
    except Exception:  # noqa: BLE001 - anything unprintable is named by its type
        return f"<{type(v).__name__}>"
    if len(r) <= n:
        return r
    return f"{r[:n]}... ({len(v) if isinstance(v, str) else len(r)} characters)"


def _shown(spec: ParamSpec | None, v: Any) -> str:
    if spec is not None and spec.secret:
        return "(secret value hidden)"
    return _short(v)


def validate_values(specs: list[ParamSpec], values: dict, runbook: str = "runbook") -> dict:
    """Check values against the declarations; return the full parameter set (defaults filled).

    Raises ParameterError listing every problem; each names the parameter, the value given
    and what is allowed.
    """
    values = as_declared(specs, values)
    by_name = {s.name: s for s in specs}
    problems: list[str] = []
    for name in values:
        if name not in by_name:
            known = ", ".join(by_name) or "(none)"
            problems.append(f"{name}: unknown parameter for {runbook} (given "
                            f"{_short(values[name], 16)}); "
                            f"known parameters: {known}")
    result: dict = {}
    for spec in specs:
        if spec.name in values:
            v = values[spec.name]
            if spec.required and (v is None or v == "" or v == [] or v == {}):
                problems.append(f"{spec.name}: a value is required (given {_shown(spec, v)}; "
                                f"allowed: {spec.allowed})")
                continue
            problem = _check(spec, v)
            if problem:
                problems.append(f"{spec.name}: {_shown(spec, v)} is not allowed: {problem} "
                                f"(allowed: {spec.allowed})")
                continue
            result[spec.name] = _type_ok(spec.type, v)[1]
        elif spec.required:
            problems.append(f"{spec.name}: a value is required and none was given "
                            f"(allowed: {spec.allowed}; {spec.help or 'no help'})")
        else:
            result[spec.name] = spec.default
    if problems:
        head = f"{runbook}: {len(problems)} parameter problem(s)"
        raise ParameterError(head + ":\n  " + "\n  ".join(problems), problems=problems,
                             runbook=runbook)
    return result
