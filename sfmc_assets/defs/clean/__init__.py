"""Clean assets: canonical, de-duplicated partitions gated by blocking pandera contracts."""
