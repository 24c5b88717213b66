from __future__ import annotations

from pathlib import Path

import pytest

from fjernhjelp.config import Settings
from tests.conftest import test_settings


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    # No one-time client build to hand out: the download route's answer must not depend
    # on whether some other test or `make support-client` left one in dist/.
    empty = tmp_path / "no-support-client"
    empty.mkdir()
    return test_settings(tmp_path, database_url, support_client_dir=empty)
