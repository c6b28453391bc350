"""
C{python -m txscales._cli}: the C{txscales} command.
"""

from txscales._cli import main

main()
