"""Publish assets: each validated partition sent to Experience Platform as one replaceable batch."""
