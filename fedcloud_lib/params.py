"""Runbook parameters: read the declarations of a ``parameters`` cell, validate values.

A declaration is one line of the parameters cell (see ``runbooks/README.md``)::

    name: type = default  # help text [required; choices=a|b; pattern=REGEX; min=0; max=9; secret]

Values come from YAML files (merged in order, papermill's ``-f`` format) and then
``-p NAME VALUE`` overrides.  :func:`validate` checks every value against its declaration
and raises one :class:`~fedcloud_lib.errors.ParameterError` listing every problem, each
naming the parameter, the value given and what is allowed.
"""
from __future__ import annotations

import ast
import io
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ParameterError, RunbookError
from .scrub import MARKER

__all__ = ["ParamSpec", "parse_parameters_cell", "validate_values", "load_value_files",
           "parse_override", "SECRET_MARKER"]

SECRET_MARKER = MARKER  # what a secret value is shown as, everywhere
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
def load_value_files(paths: list[str | Path]) -> dict:
    """Merge YAML parameter files in order (later files win), papermill's ``-f`` format."""
    merged: dict = {}
    for p in paths:
        p = Path(p)
        try:
            data = yaml.safe_load(p.read_text())
        except FileNotFoundError as e:
            raise ParameterError(f"parameter file {p} does not exist", path=str(p)) from e
        except yaml.YAMLError as e:
            raise ParameterError(f"parameter file {p} is not valid YAML: {e}", path=str(p)) from e
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ParameterError(f"parameter file {p} must be a mapping of name: value, "
                                 f"got {type(data).__name__}", path=str(p))
        merged.update(data)
    return merged


def parse_override(spec: ParamSpec | None, raw: str) -> Any:
    """Turn the text of ``-p NAME VALUE`` into a value of the declared type.

    A ``str`` parameter takes the text as it is; others read it as YAML (``3``, ``true``,
    ``[a, b]``), so that validation can then say precisely what is wrong.
    """
    if spec is not None and spec.type.base == "str":
        return None if (spec.type.optional and raw in ("None", "null", "~")) else raw
    try:
        return yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw


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
        return ok, float(v) if ok else v
    if t.base == "str":
        if isinstance(v, str):
            return True, v
        # YAML reads `ticket: 1234` as an int: accept numbers for str, losslessly
        if isinstance(v, (int, float)) and not isinstance(v, bool):
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


def _shown(spec: ParamSpec | None, v: Any) -> str:
    if spec is not None and spec.secret:
        return "(secret value hidden)"
    return repr(v)


def validate_values(specs: list[ParamSpec], values: dict, runbook: str = "runbook") -> dict:
    """Check values against the declarations; return the full parameter set (defaults filled).

    Raises ParameterError listing every problem; each names the parameter, the value given
    and what is allowed.
    """
    by_name = {s.name: s for s in specs}
    problems: list[str] = []
    for name in values:
        if name not in by_name:
            known = ", ".join(by_name) or "(none)"
            problems.append(f"{name}: unknown parameter for {runbook} (given {values[name]!r}); "
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
