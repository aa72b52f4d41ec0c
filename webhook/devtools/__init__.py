"""Development harness, not installed in the runtime image: the local control plane, the
load generator, the demo's Jobs and the benchmarks. Only the CLI's demo and bench commands and
the tests import it."""
