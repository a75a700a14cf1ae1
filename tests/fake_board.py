"""A hand-made leaderboard (indexed by method) for the default runs' target checks."""

import pandas as pd


def fake_board(primary: str, halfwidths, teacher: float, none: float, gain: float = 0.5, replicates: str = "full",
               **columns) -> pd.DataFrame:
    """Teacher, ``none`` and one student ``m<i>`` per half-width, each ``gain`` above ``none`` on
    ``<primary>_mean``, under the ``replicates`` design; ``columns`` gives extra per-role values as
    ``name=(teacher, student)``."""
    nan = float("nan")
    extra = {role: {name: pair[i] for name, pair in columns.items()} for i, role in enumerate(("teacher", "student"))}
    rows = [{"method": "teacher", f"{primary}_mean": teacher, "gain_vs_none": nan, "gain_ci_halfwidth": nan,
             **extra["teacher"]},
            {"method": "none", f"{primary}_mean": none, "gain_vs_none": 0.0, "gain_ci_halfwidth": nan,
             **extra["student"]}]
    rows += [{"method": f"m{i}", f"{primary}_mean": none + gain, "gain_vs_none": gain, "gain_ci_halfwidth": h,
              **extra["student"]} for i, h in enumerate(halfwidths)]
    return pd.DataFrame(rows).assign(replicates=replicates).set_index("method")
