"""The cost side of a model: parameters, MACs, weight-file size and measured CPU speed.

``cost_columns(model, input_shape, threads)`` returns the flat dict that the suites put
into each runs.csv row; the pieces are usable on their own (see ``docs/cost.md``).
"""

from retrieval.cost.columns import (COST_COLUMNS, MEASURED, TIMING_COLUMNS, cost_columns, input_shape_of, row_record,
                                    saved_row, suite_cost)
from retrieval.cost.counts import count_macs, count_parameters, weights_file_bytes
from retrieval.cost.latency import measure_latency

__all__ = ["COST_COLUMNS", "MEASURED", "TIMING_COLUMNS", "cost_columns", "count_macs", "count_parameters",
           "input_shape_of", "measure_latency", "row_record", "saved_row", "suite_cost", "weights_file_bytes"]
