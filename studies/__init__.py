"""Studies: study files, runners, launchers, export/replay, the CLI and the Python API.

Import :mod:`losstune.studies.api` for the functions behind every CLI command.
"""

from __future__ import annotations
