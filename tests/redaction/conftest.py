from __future__ import annotations

import pytest

from guard.config import PROJECT_ROOT
from guard.crypto.keys import MasterKey, RedactionKeys
from guard.redaction.policy import RedactionPolicy, load_redaction_policy
from guard.redaction.service import Redactor

TEST_MASTER = bytes(range(32))


@pytest.fixture(scope="session")
def policy() -> RedactionPolicy:
    return load_redaction_policy(PROJECT_ROOT / "policies" / "redaction.yaml")


@pytest.fixture
def keys() -> RedactionKeys:
    return RedactionKeys(MasterKey(TEST_MASTER))


@pytest.fixture
def redactor(policy: RedactionPolicy, keys: RedactionKeys) -> Redactor:
    return Redactor(policy=policy, keys=keys)
