"""Reporting: the statistics of a comparison, leaderboards and pairwise tables, the replication and proxy checks, plots, LaTeX tables, the doc figures and the provenance of committed results."""
