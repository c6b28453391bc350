"""
Install txscales.

C{package_dir={"": "."}} puts the checkout itself on C{sys.path} for editable
installs, so that C{twisted/plugins/txscales_twistd.py} is found by twistd.
"""

from setuptools import find_packages, setup

setup(
    package_dir={"": "."},
    packages=find_packages(include=["txscales", "txscales.*"]) + ["twisted.plugins"],
    package_data={"twisted.plugins": ["txscales_*.py"]},
)
