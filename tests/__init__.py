"""txscales tests: trial TestCases, run by pytest or python -m twisted.trial tests."""
