"""Who may use a shared server: bearer tokens, each with a name (the owner of what it makes) and, for some,
the admin right to see everything; and the ``synthtext serve`` options that set a team server up.

Tokens come from ``--tokens FILE`` or the environment variable ``SYNTHTEXT_TOKENS``; both hold entries
``NAME:TOKEN`` or ``NAME:TOKEN:admin``, one a line in the file (``#`` starts a comment), separated by
commas, spaces or new lines in the variable. A token has at least 16 characters (``python -c "import
secrets; print(secrets.token_urlsafe())"`` makes one). Listening on an address other than this machine's
(``--host 0.0.0.0``) without tokens is refused unless ``--insecure-no-auth`` says so on purpose; on
127.0.0.1 (the default) tokens are optional.

This module imports only the standard library, so the command line can offer these options without
loading the server.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from synthtext.ops.errors import SynthTextError

TOKENS_ENV = "SYNTHTEXT_TOKENS"
MIN_TOKEN_CHARS = 16
NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MAX_QUEUED_PER_TOKEN = 4


@dataclass(frozen=True)
class Access:
    """Who sent a request: ``name`` owns what it makes (None: a server without tokens, where all is shared);
    an ``admin`` sees, fetches and deletes every owner's photos and videos."""

    name: str | None
    admin: bool = False

    def sees(self, owner: str | None) -> bool:
        return self.name is None or self.admin or owner == self.name


OPEN = Access(None, admin=True)


class Tokens:
    """The tokens a server accepts, each with its ``Access``."""

    def __init__(self, entries: dict[str, Access]):
        if not entries:
            raise SynthTextError("no tokens given: write entries NAME:TOKEN (or NAME:TOKEN:admin)")
        self._entries = dict(entries)

    def __len__(self) -> int:
        return len(self._entries)

    def find(self, token: str) -> Access | None:
        """The access of ``token``, or None; every token is compared in constant time."""
        found = None
        for known, access in self._entries.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                found = access
        return found

    @classmethod
    def parse(cls, text: str, where: str) -> Tokens:
        """Entries ``NAME:TOKEN[:admin]`` from ``text`` (named ``where`` in messages)."""
        entries: dict[str, Access] = {}
        for number, line in enumerate(text.splitlines(), 1):
            for entry in re.split(r"[,\s]+", line.split("#", 1)[0].strip()):
                if not entry:
                    continue
                name, _, rest = entry.partition(":")
                token, _, role = rest.partition(":")
                if not NAME.match(name) or not rest or role not in ("", "admin"):
                    raise SynthTextError(f"{where} line {number}: write NAME:TOKEN or NAME:TOKEN:admin (a name of "
                                         "letters, digits, _.@-)")
                if len(token) < MIN_TOKEN_CHARS:
                    raise SynthTextError(f"{where} line {number}: the token of {name} has {len(token)} characters; "
                                         f"use at least {MIN_TOKEN_CHARS} (python -c \"import secrets; "
                                         "print(secrets.token_urlsafe())\")")
                if token in entries:
                    raise SynthTextError(f"{where} line {number}: the token of {name} is also "
                                         f"{entries[token].name}'s: give each name its own token")
                entries[token] = Access(name, admin=role == "admin")
        return cls(entries)


def load_tokens(path: str | None, environ: dict[str, str] | None = None) -> Tokens | None:
    """The tokens of ``--tokens FILE``, else of ``SYNTHTEXT_TOKENS``, else None."""
    environ = os.environ if environ is None else environ
    if path:
        file = Path(path)
        if not file.is_file():
            raise SynthTextError(f"--tokens {path}: no such file")
        return Tokens.parse(file.read_text(), str(path))
    if environ.get(TOKENS_ENV, "").strip():
        return Tokens.parse(environ[TOKENS_ENV], TOKENS_ENV)
    return None


def is_local(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (a loopback address or ``localhost``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def add_serve_options(parser: argparse.ArgumentParser) -> None:
    """The team-server options of ``synthtext serve``: tokens, retention and the per-token queue cap."""
    parser.add_argument("--tokens", metavar="FILE", help=f"bearer tokens, one NAME:TOKEN[:admin] a line (or set "
                        f"{TOKENS_ENV}); each name sees only its own photos and videos, admins see all")
    parser.add_argument("--insecure-no-auth", action="store_true",
                        help="listen on a non-local --host without tokens: anyone who reaches the port sees "
                             "and deletes everything")
    parser.add_argument("--keep-days", type=float, help="delete finished videos (and photos no video uses) older "
                        "than this many days")
    parser.add_argument("--max-disk-gb", type=float, help="when the out-dir holds more, delete the oldest "
                        "finished videos until it fits (queued and running jobs are never deleted)")
    parser.add_argument("--max-queued", type=int, default=MAX_QUEUED_PER_TOKEN,
                        help=f"videos one token may have waiting or running; more are answered 429 (default "
                             f"{MAX_QUEUED_PER_TOKEN})")


def serve_settings(args: argparse.Namespace, environ: dict[str, str] | None = None) -> dict:
    """The team-server keyword arguments of ``server.create_app`` from the options, checked: a non-local
    host needs tokens or ``--insecure-no-auth``."""
    tokens = load_tokens(args.tokens, environ)
    if tokens and args.insecure_no_auth:
        raise SynthTextError("--insecure-no-auth and tokens contradict each other: give one")
    if tokens is None and not is_local(args.host) and not args.insecure_no_auth:
        raise SynthTextError(f"--host {args.host} opens the server to the network, and no tokens are set: give "
                             f"--tokens FILE (or {TOKENS_ENV}), or --insecure-no-auth to share everything with "
                             "anyone who reaches the port")
    for option, value in (("--keep-days", args.keep_days), ("--max-disk-gb", args.max_disk_gb)):
        if value is not None and not value > 0:
            raise SynthTextError(f"{option} must be more than 0")
    if args.max_queued < 1:
        raise SynthTextError("--max-queued must be at least 1")
    return {"tokens": tokens, "keep_days": args.keep_days, "max_disk_gb": args.max_disk_gb,
            "max_queued": args.max_queued}
