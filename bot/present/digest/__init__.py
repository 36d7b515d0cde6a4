"""The weekly physician digest in words and small-multiple charts."""
