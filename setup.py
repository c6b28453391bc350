"""
Which packages txscales installs; everything else is in pyproject.toml.

Twisted finds plugins in every C{twisted/plugins/} folder on C{sys.path}, and
by Twisted's convention neither C{twisted/} nor C{twisted/plugins/} has an
C{__init__.py}: C{find_packages()} cannot see the folder, so it is listed by
hand beside the C{txscales} packages (pyproject.toml cannot combine a found
list with a written one). C{find_packages()} finds a C{txscales} package by its
C{__init__.py}; a folder without one is not installed, which
C{scripts/check-wheel} reports.

C{package_dir={"": "."}} makes an editable install put the checkout itself on
C{sys.path}, so that twistd finds C{twisted/plugins/txscales_*.py} there.
"""

from setuptools import find_packages, setup

setup(
    package_dir={"": "."},
    packages=find_packages(include=["txscales", "txscales.*"]) + ["twisted.plugins"],
)
