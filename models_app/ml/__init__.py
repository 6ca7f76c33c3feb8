"""The studio's machine-learning library.

Everything under this package runs without Django settings so it can be used from a notebook, a
script or a worker alike. Modules that need torch import it themselves; `hub`, `quantization` and
`architecture` do not, so the web process can use them without loading torch.
"""
