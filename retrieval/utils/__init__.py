"""Small helpers the library and the runner share."""
