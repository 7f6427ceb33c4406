"""Datasets with known generating factors, behind one interface (see base.py)."""
