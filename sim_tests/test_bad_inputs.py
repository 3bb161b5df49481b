"""The bad-input corpus (badinput.py): no traceback, no hang, no user file lost."""
import pytest

import badinput

CASES = badinput.all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    badinput.check(case, tmp_path, capsys)


def test_the_corpus_covers_at_least_80_cases():
    assert len(CASES) >= 80, len(CASES)
