"""Fixtures of the single sign-on tests: a real OpenID provider (tests/support/idp.py) on 127.0.0.1, and a second
one with another issuer that signs with the same key (so only `iss` tells their tokens apart)."""

from collections.abc import Iterator

import pytest

from tests.support import idp



@pytest.fixture(scope="session")
def idp_installed() -> None:
    idp.install()


@pytest.fixture(scope="session")
def signing_keys() -> list[dict]:
    return [idp.signing_key()]


@pytest.fixture(scope="module")
def provider(idp_installed: None, signing_keys: list[dict]) -> Iterator[idp.Provider]:
    with idp.provider(redirect_uris=[idp.API_REDIRECT], jwks=signing_keys) as running:
        yield running


@pytest.fixture(scope="module")
def other_provider(idp_installed: None, signing_keys: list[dict]) -> Iterator[idp.Provider]:
    with idp.provider(redirect_uris=[idp.API_REDIRECT], jwks=signing_keys) as running:
        yield running
