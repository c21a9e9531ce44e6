"""Encrypted secrets beside a flow: ``flowengine secrets`` writes them, ``${secret:NAME}`` reads them.

One file per folder, ``flowengine.secrets`` beside the flow (as ``.env`` is): JSON whose names
are readable (``list`` and ``rm`` need no key) and whose values are Fernet tokens, each binding
its name, so values cannot be swapped between names. The key is ``FLOWENGINE_SECRETS_KEY`` (a
key from ``flowengine secrets init``, or a passphrase of 16+ characters stretched with scrypt
and the file's salt), else the OS keyring when ``keyring`` is installed and has a backend. A
``check`` token tells a wrong key from a damaged file, so a moved flow with the wrong key gets
a sentence saying what to do, never a traceback (node-red#1611 is the anti-example).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from flowengine.envsubst import EnvError
from flowengine.extras import LibraryMissing, installed, require
from flowengine.logs import add_secrets
from flowengine.masking import distinctive

STORE_NAME = "flowengine.secrets"
KEY_ENV = "FLOWENGINE_SECRETS_KEY"
KEYRING_SERVICE, KEYRING_USER = "flowengine", "secrets-key"
FORMAT = "flowengine-secrets/1"
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MIN_PASSPHRASE = 16
_CHECK = b"flowengine-secrets"
_derived: dict[tuple[str, bytes], bytes] = {}


class SecretsError(EnvError):
    """A secret that cannot be read or written; the message says what to do."""


class MissingSecret(SecretsError):
    """A ``${secret:NAME}`` whose name is not in the flow's secrets file."""


class NoKey(SecretsError):
    """No key in ``FLOWENGINE_SECRETS_KEY`` nor in the OS keyring."""


class WrongKey(SecretsError):
    """The key found is not the one the file was encrypted with."""


class DamagedStore(SecretsError):
    """The file is not a secrets file, or a value does not decrypt with the right key."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(
            f"the secrets file {path} is damaged ({why}): restore it from a backup, or delete "
            "it and re-create its secrets with `flowengine secrets set`"
        )


@dataclass(slots=True)
class Store:
    """A secrets file as read (no key needed): its salt, key check and encrypted values."""

    path: Path
    salt: bytes = field(default_factory=lambda: os.urandom(16))
    check: str | None = None
    tokens: dict[str, str] = field(default_factory=dict)


def store_path(flow: Path) -> Path:
    """The secrets file a flow reads: ``flowengine.secrets`` in the flow's folder."""
    return flow.parent / STORE_NAME


def read_store(path: Path) -> Store | None:
    """The file at ``path`` (None when there is none); :class:`DamagedStore` when malformed."""
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise SecretsError(f"cannot read the secrets file {path}: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        raise DamagedStore(path, f"not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise DamagedStore(path, f"not a {FORMAT} file")
    tokens, check = data.get("secrets"), data.get("check")
    salt: Any = data.get("salt")
    with contextlib.suppress(TypeError, ValueError):
        salt = base64.b64decode(salt, validate=True)
    if not (isinstance(salt, bytes) and len(salt) == 16 and isinstance(check, str)):
        raise DamagedStore(path, "its salt or key check is missing")
    if not isinstance(tokens, dict) or not all(
        NAME.match(k) and isinstance(v, str) for k, v in tokens.items()
    ):
        raise DamagedStore(path, "its secrets are not names and text")
    return Store(path, salt, check, dict(tokens))


def _write_store(store: Store) -> None:
    """Write atomically (a temporary file renamed over the old one), readable by the owner only."""
    data = {
        "format": FORMAT,
        "note": "values are encrypted; edit with `flowengine secrets set/rm`, never by hand",
        "salt": base64.b64encode(store.salt).decode(),
        "check": store.check,
        "secrets": dict(sorted(store.tokens.items())),
    }
    folder = store.path.parent
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{store.path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(json.dumps(data, indent=2) + "\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, store.path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sys.platform != "win32":
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on the folder, so two read-modify-writes never interleave."""
    if sys.platform == "win32":  # no flock; one writer at a time is the user's business
        yield
        return
    import fcntl

    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _keyring() -> Any:
    """The ``keyring`` module when installed, else None."""
    return require("keyring", "secrets") if installed("keyring") else None


def _key_text() -> tuple[str, str] | None:
    """The key and where it came from: ``FLOWENGINE_SECRETS_KEY``, else the OS keyring."""
    if text := os.environ.get(KEY_ENV, "").strip():
        return text, KEY_ENV
    keyring = _keyring()
    if keyring is None:
        return None
    try:
        text = keyring.get_password(KEYRING_SERVICE, KEYRING_USER)
    except Exception:  # no backend, a locked keyring: as if there were no key there
        return None
    return (text.strip(), "the OS keyring") if text else None


def _key_bytes(text: str, salt: bytes, where: str) -> bytes:
    """A Fernet key as given, or derived from a passphrase with scrypt and the file's salt."""
    with contextlib.suppress(ValueError):
        if len(text) == 44 and len(base64.urlsafe_b64decode(text)) == 32:
            return text.encode()
    if len(text) < MIN_PASSPHRASE:
        raise NoKey(
            f"the secrets key in {where} is neither a key from `flowengine secrets init` nor a "
            f"passphrase of {MIN_PASSPHRASE} or more characters"
        )
    cache = (text, salt)
    if cache not in _derived:
        scrypt = require("cryptography.hazmat.primitives.kdf.scrypt", "secrets")
        raw = scrypt.Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(text.encode())
        _derived[cache] = base64.urlsafe_b64encode(raw)
    return _derived[cache]


def _fernet(store: Store) -> Any:
    """The cipher for ``store``, checked against its key check (set for a new store)."""
    fernet_mod = require("cryptography.fernet", "secrets")
    found = _key_text()
    if found is None:
        what = "needs its key" if store.check else "cannot be created without a key"
        raise NoKey(
            f"the secrets file {store.path} {what}: set {KEY_ENV} (`flowengine secrets init` "
            "prints a new key; keep the one a file was created with)"
        )
    text, where = found
    fernet = fernet_mod.Fernet(_key_bytes(text, store.salt, where))
    if store.check is None:
        store.check = fernet.encrypt(_CHECK).decode()
    with contextlib.suppress(fernet_mod.InvalidToken, ValueError, TypeError):
        if fernet.decrypt(store.check.encode()) == _CHECK:
            return fernet
    raise WrongKey(
        f"the secrets file {store.path} was encrypted with another key: set {KEY_ENV} to the "
        "key it was created with, or re-create it with `flowengine secrets set` (after deleting "
        f"it; the key tried came from {where})"
    )


def _decrypt(store: Store, fernet: Any, name: str) -> str:
    fernet_mod = require("cryptography.fernet", "secrets")
    try:
        pair = json.loads(fernet.decrypt(store.tokens[name].encode()))
    except (fernet_mod.InvalidToken, ValueError, TypeError):
        raise DamagedStore(store.path, f"secret '{name}' does not decrypt") from None
    if not (isinstance(pair, list) and len(pair) == 2 and pair[0] == name):
        raise DamagedStore(store.path, f"secret '{name}' holds another name's value")
    return str(pair[1])


def resolve_secret(name: str, flow: Path | None) -> str:
    """The value of ``${secret:NAME}`` for the flow at ``flow``, registered for masking in logs.

    Only called for a reference, so a flow without one never needs the key nor ``cryptography``.
    """
    if flow is None:
        raise MissingSecret(f"secret '{name}': this flow has no file, so no secrets file beside it")
    path, hint = store_path(flow), f"`flowengine secrets set {name} --flow {flow}`"
    try:
        store = read_store(path)
        if store is None or name not in store.tokens:
            where = f"in {path}" if store else f"set: there is no secrets file {path}"
            raise MissingSecret(f"secret '{name}' is not {where} (add it with {hint})")
        value = _decrypt(store, _fernet(store), name)
    except LibraryMissing as exc:
        raise SecretsError(f"secret '{name}': {exc}") from None
    add_secrets([value])
    return value


def set_secret(path: Path, name: str, value: str) -> int:
    """Add or replace ``name`` in the file at ``path`` (created, 0600); the number of secrets."""
    if not NAME.match(name):
        raise SecretsError(f"'{name}' is not a secret name: use letters, digits and _")
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.parent):
        store = read_store(path) or Store(path)
        fernet = _fernet(store)
        store.tokens[name] = fernet.encrypt(json.dumps([name, value]).encode()).decode()
        _write_store(store)
    return len(store.tokens)


def remove_secret(path: Path, name: str) -> bool:
    """Remove ``name`` (no key needed); False when it was not there."""
    if not path.parent.is_dir():
        return False
    with _locked(path.parent):
        store = read_store(path)
        if store is None or store.tokens.pop(name, None) is None:
            return False
        _write_store(store)
    return True


def new_key() -> str:
    """A new random Fernet key (44 characters of URL-safe base64)."""
    return str(require("cryptography.fernet", "secrets").Fernet.generate_key().decode())


@contextlib.contextmanager
def _clean_errors() -> Iterator[None]:
    """A secrets problem ends the command with its sentence (exit 1), never a traceback."""
    try:
        yield
    except (SecretsError, LibraryMissing) as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"{exc.filename or 'secrets file'}: {exc.strerror}") from None


def _store_options(func: Any) -> Any:
    func = click.option(
        "--file", type=click.Path(dir_okay=False, path_type=Path), help="The secrets file itself."
    )(func)
    return click.option(
        "--flow",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        help=f"Use the {STORE_NAME} beside this flow (default: the one in this folder).",
    )(func)


def _where(flow: Path | None, file: Path | None) -> Path:
    if flow is not None and file is not None:
        raise click.UsageError("give --flow or --file, not both")
    return file if file is not None else store_path(flow) if flow else Path(STORE_NAME)


@click.group("secrets")
def secrets_cmd() -> None:
    """Encrypted secrets beside a flow, read in flows as ${secret:NAME}.

    \b
    They live in flowengine.secrets in the flow's folder. The key: FLOWENGINE_SECRETS_KEY (a
    key from `flowengine secrets init`, or a passphrase of 16+ characters), else the OS keyring.
    Example:
      export FLOWENGINE_SECRETS_KEY=$(flowengine secrets init)
      flowengine secrets set DB_PASSWORD --flow flows/line3.yaml   # asks for the value
    """


@secrets_cmd.command("init")
@click.option("--keyring", "to_keyring", is_flag=True, help="Store the key in the OS keyring.")
@click.option("--force", is_flag=True, help="With --keyring: replace the key already there.")
def init_cmd(to_keyring: bool, force: bool) -> None:
    """Make a new key: print it (stdout), or store it in the OS keyring (--keyring)."""
    with _clean_errors():
        key, keyring = new_key(), _keyring() if to_keyring else None
    if not to_keyring:
        click.echo(key)
        click.echo(f"set it as {KEY_ENV} where flows run, and keep a copy", err=True)
        return
    if keyring is None:
        raise click.ClickException("--keyring needs the keyring package (pip install keyring)")
    try:
        if keyring.get_password(KEYRING_SERVICE, KEYRING_USER) and not force:
            raise click.ClickException("the OS keyring holds a key already (--force replaces it)")
        keyring.set_password(KEYRING_SERVICE, KEYRING_USER, key)
    except click.ClickException:
        raise
    except Exception as exc:  # no backend, a locked keyring
        raise click.ClickException(f"cannot use the OS keyring: {exc}") from None
    click.echo(f"stored a new key in the OS keyring ({KEYRING_SERVICE}/{KEYRING_USER})", err=True)


def _read_value(name: str) -> str:
    """The value from a hidden prompt (a terminal) or stdin (one trailing newline dropped)."""
    if sys.stdin.isatty():
        return str(click.prompt(name, hide_input=True, confirmation_prompt=True))
    return sys.stdin.read().removesuffix("\n").removesuffix("\r")


@secrets_cmd.command("set")
@click.argument("name")
@click.option(
    "--value", help="The value (else asked for, or read from stdin; --value shows in ps)."
)
@_store_options
def set_cmd(name: str, value: str | None, flow: Path | None, file: Path | None) -> None:
    """Add or replace secret NAME (encrypted; the file is written atomically, mode 0600)."""
    path = _where(flow, file)
    value = value if value is not None else _read_value(name)
    if not value:
        raise click.ClickException(f"empty value: nothing stored for '{name}'")
    with _clean_errors():
        count = set_secret(path, name, value)
    click.echo(f"set {name} in {path} ({count} in all)", err=True)
    if not distinctive(value):
        click.echo(
            "note: this value is short or one kind of character, so logs mask it only where it "
            "stands as a credential (password=..., a URL's password), not as a plain word",
            err=True,
        )


@secrets_cmd.command("rm")
@click.argument("name")
@_store_options
def rm_cmd(name: str, flow: Path | None, file: Path | None) -> None:
    """Remove secret NAME (no key needed)."""
    path = _where(flow, file)
    with _clean_errors():
        if not remove_secret(path, name):
            raise click.ClickException(f"no secret '{name}' in {path}")
    click.echo(f"removed {name} from {path}", err=True)


@secrets_cmd.command("list")
@_store_options
def list_cmd(flow: Path | None, file: Path | None) -> None:
    """The secret names, one a line (never a value); warns when the key does not open them."""
    path = _where(flow, file)
    with _clean_errors():
        store = read_store(path)
    for name in sorted(store.tokens) if store else []:
        click.echo(name)
    if store is None or not store.tokens:
        click.echo(f"no secrets in {path}", err=True)
        return
    try:
        _fernet(store)
    except (SecretsError, LibraryMissing) as exc:
        click.echo(f"warning: {exc}", err=True)
