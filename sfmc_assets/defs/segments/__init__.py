"""Segment-ready tables in the warehouse: contact features and segment membership per day."""
