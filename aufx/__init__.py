"""AUFX: edit facial expressions in photos through FACS Action Units, keep identity, measure the result."""
__version__ = "0.1.0"
