"""Tuning KD method options on validation data: the grid (``grid``) and the sampled search (``search``)."""
