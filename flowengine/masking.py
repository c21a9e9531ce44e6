"""Which text is secret, and how it is masked in logs and exports.

The rules, chosen so masking hides credentials without eating ordinary words:

- credential positions are always masked, registered or not: the password of a URL
  (``postgresql://user:******@host/db``), the value after ``Authorization:`` or
  ``Proxy-Authorization:`` (and its ``Bearer``/``Basic`` scheme kept), and the value after a
  secret-like key (``password=``, ``"api_key": ``, ``X-API-Key:``, ``token=`` ...);
- a registered secret value is masked anywhere else only when it is *distinctive*: at least two
  kinds of character (letters, digits, others) or 12 characters and more; then only as a whole
  token (not inside a longer word). A password ``line`` or ``pipeline`` is masked where it is a
  credential, never in "line 3 failed";
- a connection URL registered as a secret registers only its password.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

MASK = "******"
#: Keys whose values are credentials (a header name, a config key, a query parameter).
SECRET_KEY = re.compile(
    r"^(?:[\w-]*[_-])?(?:password|passwd|pwd|passphrase|passcode|secret|token|api[_-]?key|"
    r"apikey|access[_-]?key|private[_-]?key|credentials?|authorization|proxy-authorization|"
    r"cookie)$"
    # header conventions: X-Functions-Key, Ocp-Apim-Subscription-Key, X-Session-Key, X-Auth-*
    r"|^x-[\w-]*-key$|^[\w-]*-subscription-key$|^x-auth(?:-[\w-]+)?$",
    re.IGNORECASE,
)
_URL_PASSWORD = re.compile(
    r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)(?P<secret>[^\s@/]+)(?=@)"
)
_AUTH_HEADER = re.compile(
    r"(?P<head>\b(?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?(?:(?:bearer|basic|token|digest)\s+)?)"
    r"(?P<secret>[^\s'\",;}]+)",
    re.IGNORECASE,
)
_KEYED = re.compile(
    r"(?P<head>\b(?:[\w-]*[_-])?(?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey|"
    r"access[_-]?key|private[_-]?key)['\"]?\s*[:=]\s*['\"]?)(?P<secret>[^\s'\",;&}]+)",
    re.IGNORECASE,
)
MIN_SECRET = 3


def is_secret_key(name: Any) -> bool:
    """True for a key whose value is a credential (``Authorization``, ``X-API-Key``, ``token``)."""
    return isinstance(name, str) and SECRET_KEY.match(name) is not None


def url_password(text: str) -> str | None:
    """The password of a ``scheme://user:password@host`` URL in ``text``, else None."""
    match = _URL_PASSWORD.search(text)
    return match.group("secret") if match else None


def mask_credentials(text: str) -> str:
    """``text`` with every credential position masked (see the module docstring)."""
    for pattern in (_URL_PASSWORD, _AUTH_HEADER, _KEYED):
        text = _mask(pattern, text)
    return text


def mask_url_password(text: str, keep: Callable[[str], bool] | None = None) -> str:
    """``text`` with URL passwords masked, except those for which ``keep`` is true (in an
    export: a ``${VAR}`` reference, which is what makes the exported flow runnable)."""
    return _mask(_URL_PASSWORD, text, keep)


def _mask(pattern: re.Pattern[str], text: str, keep: Callable[[str], bool] | None = None) -> str:
    def repl(match: re.Match[str]) -> str:
        secret = match.group("secret")
        if secret == MASK or (keep is not None and keep(secret)):
            return match.group(0)
        return match.group("head") + MASK

    return pattern.sub(repl, text)


def distinctive(secret: str) -> bool:
    """True when ``secret`` is unlikely to be an ordinary word or number in a log line."""
    kinds = (
        any(c.isalpha() for c in secret),
        any(c.isdigit() for c in secret),
        any(not c.isalnum() for c in secret),
    )
    return sum(kinds) >= 2 or len(secret) >= 12


def token_pattern(secret: str) -> re.Pattern[str]:
    """``secret`` as a whole token: not preceded or followed by a letter or digit."""
    return re.compile(rf"(?<![^\W_]){re.escape(secret)}(?![^\W_])")


def secret_texts(value: Any) -> list[str]:
    """The texts to mask for a secret field's value: a URL's password only, a mapping's
    credential-keyed values (headers), else the value itself; None and short values give none."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [t for k, v in value.items() if is_secret_key(k) for t in secret_texts(v)]
    if isinstance(value, list | tuple):
        return [t for v in value for t in secret_texts(v)]
    text = str(value)
    password = url_password(text) if "://" in text else None
    text = password if password is not None else text
    scheme, _, rest = text.partition(" ")
    if scheme.lower() in ("bearer", "basic", "token") and rest:
        text = rest.strip()  # an Authorization header value: the credential after its scheme
    return [text] if len(text) >= MIN_SECRET else []
