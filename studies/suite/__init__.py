"""Suites: from studies to a paper's table (``losstune suite SUITE.yaml``).

A suite file names datasets, arms (studies to search, or fixed configurations) and claims
(comparisons of an arm against a baseline). :mod:`.spec` reads and validates it, :mod:`.runner`
searches, confirms and evaluates every arm on paired seeds and holdouts, :mod:`.stats` computes
intervals, paired tests, the Holm correction and verdicts, and :mod:`.outputs` writes
RESULTS.md, results.csv, results.tex and forest.png. See docs/suites.md.
"""

from __future__ import annotations
