"""Benchmarks of the operator on the local control plane, beside a raw-Job baseline (`make bench`)."""
