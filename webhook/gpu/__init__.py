"""NVIDIA GPUs through NVML: the only package that imports ``pynvml``."""
