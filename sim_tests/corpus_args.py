"""Bad-input corpus cases: see badinput.py."""
from badinput import Case

CASES = []
