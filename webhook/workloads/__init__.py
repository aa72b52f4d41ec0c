"""What greenlight reads from a workload and how it suspends and releases one: the seam between
a Kubernetes object and the domain model. Only modules here read a workload's spec."""
