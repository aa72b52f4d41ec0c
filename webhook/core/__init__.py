"""The domain model, pure: the annotation contract, energy, planner, cost, series, durations,
forecast math. Imports nothing of greenlight above it, and no network, Kubernetes or GPU library;
its only I/O is reading its own data tables (GPU profiles, prices, intensity files) when asked."""
