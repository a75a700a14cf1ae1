"""The machinery behind the commands of ``benchmarks``: config loading and checks, the tasks
(``tasks/``), the run loop and its jobs, where they run (``launch/``), tuning (``tune/``), progress,
tracking and results I/O. Statistics and tables are in ``benchmarks.report``."""
