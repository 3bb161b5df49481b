import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))          # test helpers (factory, benches) import as plain modules
# the tests' Verilator models run a few frames each: compiled without C++ optimization they
# build in about half the time and lose less than that in simulation (qloom.simulate)
os.environ.setdefault("QLOOM_VERILATOR_OPT", "-O0")

REPO = HERE.parent
DIGITS = REPO / "models" / "digits"


@pytest.fixture(scope="session")
def digits():
    return DIGITS
