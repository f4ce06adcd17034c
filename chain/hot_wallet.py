"""The hot wallet's key: from an encrypted keystore file (production) or an environment variable
(development only). Never from code, never logged."""

from __future__ import annotations

import json
import logging
import pathlib

from eth_account import Account
from eth_account.signers.local import LocalAccount

log = logging.getLogger(__name__)
PRIVATE_KEY_ENV = "LEDGER_SIGNER_PRIVATE_KEY"
KEYSTORE_PASSWORD_ENV = "LEDGER_SIGNER_KEYSTORE_PASSWORD"


class KeyUnavailableError(Exception):
    """No usable key: refuse to start."""


def load_hot_wallet(
    keystore_path: str | None, keystore_password: str | None, development_key: str | None
) -> LocalAccount:
    if keystore_path:
        if keystore_password is None:
            raise KeyUnavailableError(f"the keystore needs its password in {KEYSTORE_PASSWORD_ENV}")
        try:
            encrypted = json.loads(pathlib.Path(keystore_path).read_text())
            key = Account.decrypt(encrypted, keystore_password)
        except (OSError, ValueError) as error:
            raise KeyUnavailableError(f"cannot open the keystore {keystore_path}: {type(error).__name__}") from None
        account: LocalAccount = Account.from_key(key)
        return account
    if development_key:
        log.warning("using the hot wallet key from %s: for development only", PRIVATE_KEY_ENV)
        try:
            dev_account: LocalAccount = Account.from_key(development_key)
        except (ValueError, TypeError):
            raise KeyUnavailableError(f"{PRIVATE_KEY_ENV} is not a valid private key") from None
        return dev_account
    raise KeyUnavailableError(f"no key: give --keystore (password in {KEYSTORE_PASSWORD_ENV}) or {PRIVATE_KEY_ENV}")


def write_keystore(account: LocalAccount, password: str, path: pathlib.Path, scrypt_n: int | None = None) -> None:
    """Encrypt a key into a keystore file (scrypt; its default cost unless `scrypt_n` is given)."""
    path.write_text(json.dumps(Account.encrypt(account.key, password, iterations=scrypt_n)))
    path.chmod(0o600)
