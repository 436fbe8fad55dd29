"""Keep secrets out of everything that is archived, logged or posted.

A :class:`Scrubber` knows a set of literal secret values and a few shapes of secrets
(private key blocks, auth headers and tokens); :meth:`Scrubber.text` replaces them in a
string with :data:`MARKER` and :meth:`Scrubber.data` in every string of a JSON-like
structure.  Callers scrub **values before they serialise them** (the archive writer
scrubs the strings of a notebook, a record, an event, then writes JSON or YAML): scrubbing
serialised text could eat a quote or a keyword and leave a file that no longer parses.

What a literal secret is replaced in:

* every form it takes once printed, written as JSON (with and without ``ensure_ascii``),
  HTML-escaped, as a Python ``repr``/``ascii`` or URL-quoted (:func:`_variants`);
* its pieces: for a secret of :data:`MIN_WINDOWED` characters or more, any run of
  :data:`WINDOW` consecutive characters of it (pandas truncates long cells, pprint wraps
  long strings), so a truncated or wrapped secret is still replaced.

Every form and every window goes into one Aho-Corasick automaton (pyahocorasick): a text
is scanned once, whatever the number of secrets; overlapping matches are merged and each
covered stretch becomes one :data:`MARKER`.

:func:`collect_secrets` gathers the literal values of a run: parameters declared secret
(every string leaf of a list or dict: :func:`secret_leaves`), every password / token /
application-credential secret in ``clouds.yaml``, every value of the site's secret
files, and the values of environment variables whose names contain PASSWORD, TOKEN or
SECRET (but do not end in ``_DIR``, ``_FILE``, ``_PATH``, ``_ENV`` or ``_VAR``: those name
where a secret is, e.g. ``FEDCLOUD_SECRETS_DIR``).  Those *ambient* values are only scrubbed when they can be secrets at all
(:func:`_ambient_ok`): at least :data:`MIN_AMBIENT_LEN` (6) characters, not a
boolean/null word (``true``, ``off``, ``none``...), not a plain number of fewer than 8
digits (a port, a TTL, a year).  ``PASSWORD_STORE_ENABLE_EXTENSIONS=true`` (set by pass(1)
on many machines) must not turn every ``true`` of an archive into ``***``.
"""
from __future__ import annotations

import html
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import ahocorasick
import yaml

__all__ = ["MARKER", "Scrubber", "collect_secrets", "secret_leaves", "MIN_AMBIENT_LEN",
           "WINDOW", "MIN_WINDOWED"]

MARKER = "***"
# Ambient values (environment, clouds.yaml, secret files) shorter than this are not
# scrubbed: a 2-character or boolean environment value would mangle every archived file.
MIN_AMBIENT_LEN = 6
_NOT_SECRET_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "none", "nil", "~"}
_SHORT_NUMBER = re.compile(r"[+-]?\d{1,7}(\.\d*)?")
# Pieces of long secrets: any WINDOW consecutive characters of a secret of MIN_WINDOWED+.
WINDOW = 12
MIN_WINDOWED = 16
_SECRET_ENV = re.compile(r"PASSWORD|TOKEN|SECRET", re.I)
# ... but not those that name where secrets are, or which variable holds one
_NOT_SECRET_ENV = re.compile(r"(_DIR|_DIRS|_FILE|_FILES|_PATH|_ENV|_VAR)$", re.I)
_SECRET_KEYS = re.compile(r"password|secret|token|passphrase|private_key", re.I)

# PEM / OpenSSH / PGP private key blocks; a block cut short (no END line) is scrubbed to
# the end of the text
_KEY_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY( BLOCK|)-----"
                        r"(?:.*?-----END \1PRIVATE KEY\2-----|.*\Z)", re.S)
_KEY_BLOCK_MARKER = f"-----BEGIN PRIVATE KEY-----{MARKER}-----END PRIVATE KEY-----"
# X-Auth-Token / X-Subject-Token / X-Service-Token headers in any quoting, and
# Authorization: Bearer|Basic|Token credentials
_HEADER = re.compile(r"(?i)(x-(?:auth|subject|service)-token[\"']?\s*[:=]\s*[\"']?"
                     r"|authorization[\"']?\s*[:=]\s*[\"']?(?:bearer|basic|token)\s+)"
                     r"([^\s\"',}]+)")
# keystone fernet tokens, wherever they appear
_FERNET = re.compile(r"gAAAAA[A-Za-z0-9_\-]{40,}={0,2}")


def _variants(secret: str) -> set[str]:
    """The forms a secret takes once printed as JSON, HTML, a Python repr or in a URL."""
    out = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
           html.escape(secret), html.escape(secret, quote=False), repr(secret)[1:-1],
           ascii(secret)[1:-1], quote(secret, safe=""), quote_plus(secret, safe="")}
    return {v for v in out if v}


def _windows(form: str) -> Iterable[str]:
    if len(form) >= MIN_WINDOWED:
        for i in range(len(form) - WINDOW + 1):
            yield form[i:i + WINDOW]


def _ambient_ok(value: str) -> bool:
    """Whether an ambient value (not declared secret) is worth scrubbing everywhere."""
    v = value.strip()
    return (len(v) >= MIN_AMBIENT_LEN and v.lower() not in _NOT_SECRET_WORDS
            and not _SHORT_NUMBER.fullmatch(v))


class Scrubber:
    """Replaces known secret values (all their forms and long pieces) and secret shapes."""

    def __init__(self, secrets: Iterable[str] = (), marker: str = MARKER):
        self.marker = marker
        self.secrets = frozenset(str(s) for s in secrets
                                 if s is not None and str(s) != "" and str(s) != marker)
        self._auto = None
        if self.secrets:
            auto = ahocorasick.Automaton()
            for s in self.secrets:
                for form in _variants(s):
                    auto.add_word(form, len(form))
                    for w in _windows(form):
                        auto.add_word(w, len(w))
            auto.make_automaton()
            self._auto = auto

    def add(self, *secrets: Any) -> "Scrubber":
        """A scrubber that also knows ``secrets``."""
        return Scrubber([*self.secrets, *(str(s) for s in secrets if s is not None)], self.marker)

    def spans(self, s: str) -> list[tuple[int, int]]:
        """The merged [start, end) stretches of ``s`` covered by a known secret."""
        if self._auto is None or not s:
            return []
        found = sorted((end - n + 1, end + 1) for end, n in self._auto.iter(s))
        merged: list[list[int]] = []
        for a, b in found:
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        return [(a, b) for a, b in merged]

    def text(self, s: str) -> str:
        """``s`` with every known secret, piece of one, and secret shape replaced."""
        if not s:
            return s
        spans = self.spans(s)
        if spans:
            parts, pos = [], 0
            for a, b in spans:
                parts += [s[pos:a], self.marker]
                pos = b
            parts.append(s[pos:])
            s = "".join(parts)
        if "PRIVATE KEY" in s:
            s = _KEY_BLOCK.sub(_KEY_BLOCK_MARKER, s)
        s = _HEADER.sub(lambda m: m.group(1) + self.marker, s)
        if "gAAAAA" in s:
            s = _FERNET.sub(self.marker, s)
        return s

    def data(self, obj: Any, keys: bool = True) -> Any:
        """A copy of a JSON-like structure with every string scrubbed (keys too, unless
        ``keys`` is false).  Numbers, booleans and None are values, not text: a secret
        ``true`` never turns ``"approve": true`` into anything else."""
        if isinstance(obj, str):
            return self.text(obj)
        if isinstance(obj, dict):
            return type(obj)(((self.key(k) if keys and isinstance(k, str) else k),
                              self.data(v, keys)) for k, v in obj.items())
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.data(v, keys) for v in obj)
        return obj

    def key(self, k: str) -> str:
        """A mapping key, scrubbed like text only where a secret of at least
        :data:`MIN_AMBIENT_LEN` characters (or a secret shape) is in it; a shorter secret
        replaces a key only when the key is that secret.  Keys are the structure the
        runbook chose (``ok``, ``plan``): a one-letter secret must not rename them."""
        if k in self.secrets:
            return self.marker
        scrubbed = self.text(k)
        if scrubbed == k:
            return k
        if any(b - a >= MIN_AMBIENT_LEN for a, b in self.spans(k)) or not self.spans(k):
            return scrubbed  # a long secret (or a shape such as a key block) is in it
        return k

    def found(self, s: str) -> bool:
        """Whether ``s`` holds anything this scrubber would replace."""
        return self.text(s) != s


def secret_leaves(value: Any) -> list[str]:
    """What to register for a parameter declared secret: a string or number itself, every
    string leaf of a list or dict (a printed element must not leak), and the whole
    ``str()`` of a container as well."""
    if value is None or isinstance(value, bool) or value == "":
        return []
    if isinstance(value, (list, tuple, set, dict)):
        out: list[str] = []
        items = value.values() if isinstance(value, dict) else value
        for v in items:
            if isinstance(v, str) and v:
                out.append(v)
            elif isinstance(v, (list, tuple, set, dict)):
                out += secret_leaves(v)
        if value:
            out.append(str(value))
        return out
    return [str(value)]


def _walk_secret_values(obj: Any, under_secret_key: bool = False) -> Iterable[str]:
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _walk_secret_values(v, under_secret_key or bool(_SECRET_KEYS.search(str(k))))
    elif isinstance(obj, list):
        for v in obj:
            yield from _walk_secret_values(v, under_secret_key)
    elif under_secret_key and obj is not None and not isinstance(obj, bool):
        yield str(obj)


def _clouds_yaml_secrets() -> list[str]:
    """Every password/secret/token value of every clouds.yaml and secure.yaml entry."""
    paths = []
    if os.environ.get("OS_CLIENT_CONFIG_FILE"):
        paths.append(Path(os.environ["OS_CLIENT_CONFIG_FILE"]))
    for d in (Path.cwd(), Path.home() / ".config/openstack", Path("/etc/openstack")):
        paths += [d / "clouds.yaml", d / "secure.yaml"]
    out: list[str] = []
    for p in paths:
        try:
            data = yaml.safe_load(p.read_text())
        except (OSError, ValueError, yaml.YAMLError):
            continue
        out += list(_walk_secret_values(data))
    return out


def _secret_files(directory: Path) -> list[str]:
    out: list[str] = []
    try:
        files = sorted(directory.glob("*.y*ml"))
    except OSError:
        return out
    for p in files:
        try:
            data = yaml.safe_load(p.read_text())
        except (OSError, ValueError, yaml.YAMLError):
            continue
        # every leaf value of a secrets file is a secret
        out += list(_walk_secret_values(data, under_secret_key=True))
    return out


def collect_secrets(declared: Iterable[Any] = (), secrets_dir: Path | None = None,
                    environ: dict | None = None) -> list[str]:
    """Literal secret values for a run (see the module docstring).

    ``declared`` values are kept whatever their length (the runbook said they are secret);
    lists and dicts among them contribute their string leaves.
    """
    env = os.environ if environ is None else environ
    ambient = [v for k, v in env.items() if _SECRET_ENV.search(k) and not _NOT_SECRET_ENV.search(k)]
    ambient += _clouds_yaml_secrets()
    if secrets_dir is not None:
        ambient += _secret_files(secrets_dir)
    out: list[str] = []
    for d in declared:
        out += secret_leaves(d)
    return out + [a for a in ambient if _ambient_ok(a)]
