"""greenlight's one settings object, the sections that belong to no single layer, and the
settings reference the chart is generated from."""
