"""guard's own recognizers, each for a weak spot of Presidio's defaults."""
