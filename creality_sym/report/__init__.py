"""``creality report``: the whole study of the default spec as one offline HTML page.

>>> from pathlib import Path
>>> from creality_sym.report import Settings, build_report
>>> result = build_report(Path("out"), Settings.make(quick=True))  # doctest: +SKIP
>>> result.page                                                     # doctest: +SKIP
PosixPath('out/index.html')
"""

from creality_sym.report.study import ReportResult, Settings, build_report

__all__ = ["ReportResult", "Settings", "build_report"]
