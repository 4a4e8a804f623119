"""The multi-tenant control plane for meow.

Lives in `platform/meow_platform/`; `platform/` itself is not a package (it would shadow the
standard library's `platform` module, which numpy, Ray and torch import).
"""
