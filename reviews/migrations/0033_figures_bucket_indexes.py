# The per-column bucket indexes of the order statistics (`reviews.selectors.order_statistics`): a bucket's rows of one
# period are one range scan, whatever the rest of the history holds in the bucket's value range. They take over from the
# per-column value indexes of 0031, which hold every period's rows in value order, for the reads inside a bucket (its
# ends still come from those, a few probes; merged_at is now in their key, so that whether a period has a row on a
# bucket's bound is one probe too).

from django.db import migrations, models

# The histograms' bucket bounds as this migration creates the indexes with (`order_statistics.DURATION_BOUNDS` and
# `LINE_BOUNDS` on 27 Nov 2026), frozen: the planner uses an index for its own expression only, so other bounds need
# a new migration (`tests/reviews/test_order_statistics.py` compares this with the live `bucket_sql`).
DURATION_BOUNDS = (
    0.0, 1.0, 2.0, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 120.0, 180.0, 300.0, 420.0, 600.0, 900.0, 1200.0,
    1500.0, 1800.0, 2400.0, 2700.0, 3000.0, 3600.0, 5400.0, 7200.0, 9000.0, 10800.0, 14400.0, 18000.0, 21600.0,
    25200.0, 28800.0, 32400.0, 36000.0, 39600.0, 43200.0, 46800.0, 50400.0, 54000.0, 57600.0, 61200.0, 64800.0,
    68400.0, 72000.0, 75600.0, 79200.0, 82800.0, 86400.0, 90000.0, 93600.0, 97200.0, 100800.0, 104400.0, 108000.0,
    111600.0, 115200.0, 118800.0, 122400.0, 126000.0, 129600.0, 133200.0, 136800.0, 140400.0, 144000.0, 147600.0,
    151200.0, 154800.0, 158400.0, 162000.0, 165600.0, 169200.0, 172800.0, 183600.0, 194400.0, 205200.0, 216000.0,
    226800.0, 237600.0, 248400.0, 259200.0, 270000.0, 280800.0, 291600.0, 302400.0, 313200.0, 324000.0, 334800.0,
    345600.0, 356400.0, 367200.0, 378000.0, 388800.0, 399600.0, 410400.0, 421200.0, 432000.0, 442800.0, 453600.0,
    464400.0, 475200.0, 486000.0, 496800.0, 507600.0, 518400.0, 529200.0, 540000.0, 550800.0, 561600.0, 572400.0,
    583200.0, 594000.0, 604800.0, 691200.0, 777600.0, 864000.0, 950400.0, 1036800.0, 1123200.0, 1209600.0,
    1296000.0, 1382400.0, 1468800.0, 1555200.0, 1641600.0, 1728000.0, 1814400.0, 1900800.0, 1987200.0, 2073600.0,
    2160000.0, 2246400.0, 2332800.0, 2419200.0, 2505600.0, 2592000.0, 2678400.0, 2764800.0, 2851200.0, 2937600.0,
    3024000.0, 3628800.0, 4233600.0, 4838400.0, 5443200.0, 6048000.0, 6912000.0, 7776000.0, 9072000.0, 10368000.0,
    12960000.0, 15552000.0, 20736000.0, 25920000.0, 31536000.0, 43200000.0, 63072000.0, 94608000.0
)
LINE_BOUNDS = (
    0, 1, 2, 3, 5, 7, 10, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 175, 200, 250, 300, 350, 400, 450, 500,
    600, 700, 800, 900, 1000, 1250, 1500, 1750, 2000, 2500, 3000, 4000, 5000, 7500, 10000, 20000, 50000, 100000
)

COLUMNS = {
    "time_to_first_review": "ttfr",
    "pickup_time": "pickup",
    "review_time": "review",
    "time_to_approve": "approve",
    "merge_time": "merge",
    "cycle_time": "cycle",
    "changed_lines": "lines",
}


def _bounds(column, sign):
    """The column's bounds as an SQL array (negated and ascending: `sign` -1)."""
    if column == "changed_lines":
        bounds = LINE_BOUNDS[::-1] if sign < 0 else LINE_BOUNDS
        return "'{" + ", ".join(str(sign * int(bound)) for bound in bounds) + "}'::integer[]"
    bounds = DURATION_BOUNDS[::-1] if sign < 0 else DURATION_BOUNDS
    return "'{" + ", ".join(repr(sign * float(bound)) for bound in bounds) + "}'::double precision[]"


def bucket_expression(column, reference):
    """The bucket number of a measured value (`order_statistics.bucket_of`: how many bounds are below it), as
    `order_statistics.bucket_sql` writes it."""
    count = len(LINE_BOUNDS if column == "changed_lines" else DURATION_BOUNDS)
    return f"({count} - width_bucket(- {reference}, {_bounds(column, -1)}))"


def off_bounds(column, reference):
    """Not on a bound, as `order_statistics.off_bounds_sql` writes it (the ties on a bound are counted, not read)."""
    return f"{reference} <> ALL ({_bounds(column, 1)})"


def create_bucket_indexes(apps, schema_editor):
    """(repository, bucket, merged_at) INCLUDE (value) of the measured values not on a bound (PostgreSQL only:
    SQLite reads the period's rows, and has no width_bucket)."""
    if schema_editor.connection.vendor != "postgresql":
        return
    for column, short in COLUMNS.items():
        schema_editor.execute(
            f"CREATE INDEX figures_{short}_bucket_idx ON reviews_pullrequestfigures "
            f"(repository_id, {bucket_expression(column, column)}, merged_at) INCLUDE ({column}) "
            f"WHERE {column} >= 0 AND {off_bounds(column, column)}"
        )


def drop_bucket_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for short in COLUMNS.values():
        schema_editor.execute(f"DROP INDEX IF EXISTS figures_{short}_bucket_idx")


class Migration(migrations.Migration):

    dependencies = [
        ('reviews', '0032_figures_daily_rollups'),
    ]

    operations = [
        migrations.RunPython(create_bucket_indexes, drop_bucket_indexes),
        # The value indexes with merged_at in the key: a period's rows of one value (a bucket's bound) are a range.
        migrations.RemoveIndex(
            model_name='pullrequestfigures',
            name='figures_ttfr_order_idx',
        ),
        migrations.AddIndex(
            model_name='pullrequestfigures',
            index=models.Index(condition=models.Q(('time_to_first_review__gte', 0)), fields=['repository', 'time_to_first_review', 'merged_at'], name='figures_ttfr_order_idx'),
        ),
        migrations.RemoveIndex(
            model_name='pullrequestfigures',
            name='figures_pickup_order_idx',
        ),
        migrations.AddIndex(
            model_name='pullrequestfigures',
            index=models.Index(condition=models.Q(('pickup_time__gte', 0)), fields=['repository', 'pickup_time', 'merged_at'], name='figures_pickup_order_idx'),
        ),
        migrations.RemoveIndex(
            model_name='pullrequestfigures',
            name='figures_review_order_idx',
        ),
        migrations.AddIndex(
            model_name='pullrequestfigures',
            index=models.Index(condition=models.Q(('review_time__gte', 0)), fields=['repository', 'review_time', 'merged_at'], name='figures_review_order_idx'),
        ),
        migrations.RemoveIndex(
            model_name='pullrequestfigures',
            name='figures_approve_order_idx',
        ),
        migrations.AddIndex(
            model_name='pullrequestfigures',
            index=models.Index(condition=models.Q(('time_to_approve__gte', 0)), fields=['repository', 'time_to_approve', 'merged_at'], name='figures_approve_order_idx'),
        ),
        migrations.RemoveIndex(
            model_name='pullrequestfigures',
            name='figures_merge_order_idx',
        ),
        migrations.AddIndex(
            model_name='pullrequestfigures',
            index=models.Index(condition=models.Q(('merge_time__gte', 0)), fields=['repository', 'merge_time', 'merged_at'], name='figures_merge_order_idx'),
        ),
        migrations.RemoveIndex(
            model_name='pullrequestfigures',
            name='figures_cycle_order_idx',
        ),
        migrations.AddIndex(
            model_name='pullrequestfigures',
            index=models.Index(condition=models.Q(('cycle_time__gte', 0)), fields=['repository', 'cycle_time', 'merged_at'], name='figures_cycle_order_idx'),
        ),
        migrations.RemoveIndex(
            model_name='pullrequestfigures',
            name='figures_lines_order_idx',
        ),
        migrations.AddIndex(
            model_name='pullrequestfigures',
            index=models.Index(condition=models.Q(('changed_lines__gte', 0)), fields=['repository', 'changed_lines', 'merged_at'], name='figures_lines_order_idx'),
        ),
    ]
