"""Extract assets: one daily-partitioned asset per configured data extension (`sfmc/raw/<name>`)."""
