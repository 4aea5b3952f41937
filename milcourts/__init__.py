"""Prosecutions of Russian soldiers who refuse to fight: ledger, constraints, models and reports.

The package is the one place where logic lives; notebooks and the build only call into it.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("milcourts")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
