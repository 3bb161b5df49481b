import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))          # test helpers (factory, benches) import as plain modules

REPO = HERE.parent
DIGITS = REPO / "models" / "digits"


@pytest.fixture(scope="session")
def digits():
    return DIGITS
