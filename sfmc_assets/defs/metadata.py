"""Materialisation metadata the Dagster UI shows: column schemas and previews with personal columns masked."""

from collections.abc import Iterable

import dagster as dg
import polars as pl

from sfmc_assets.lib.personal import mask


def table_schema(schema: pl.Schema, descriptions: dict[str, str] | None = None) -> dg.TableSchema:
    descriptions = descriptions or {}
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=name, type=str(dtype), description=descriptions.get(name))
            for name, dtype in schema.items()
        ]
    )


def preview(frame: pl.DataFrame, masked: Iterable[str] = (), rows: int = 5) -> dg.MetadataValue:
    """The first rows as a Markdown table, with personal columns reduced to their first character."""
    masked = [c for c in masked if c in frame.columns]
    head = frame.head(rows).with_columns(mask(c) for c in masked)
    with pl.Config(tbl_formatting="ASCII_MARKDOWN", tbl_hide_column_data_types=True,
                   tbl_hide_dataframe_shape=True, tbl_rows=rows, tbl_cols=-1, fmt_str_lengths=40):
        return dg.MetadataValue.md(str(head) if frame.height else "_(no rows in this partition)_")
