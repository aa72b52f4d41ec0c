"""The replay simulator: policies against each other on real grid data (``greenlight simulate``)."""
