"""The 0.1.x surface kept apart from the core.

Each module here holds the documented 0.1.x names of one public module (managers,
records, stats helpers, convenience methods) and is imported by that public module with
a plain import. The core objects do not depend on anything in this package except the
mixins that carry 0.1.x convenience methods.
"""
