"""The machinery behind the commands of ``benchmarks``: config loading and checks, the suites,
the run loop, the jobs and their launchers, progress, results I/O and statistics."""
