#!/bin/bash
# Alternate checkpoint variants of version 5808 with the compacted baseline; DuckDB queries.
PY=~/.cache/events-lake/venv/bin/python
LOG=/tmp/soak-v4/events/_delta_log
ARGS="--day 2026-12-06 --event-type type00 --uuid 80d76bbb-84ca-4dfa-a82f-95375b0fd05f --hour-end 1796601600 --reps 5"
for round in 1 2; do
  for v in orig all lastrun none; do
    if [ $v = orig ]; then cp /tmp/soak-v4/ckpt-5808-orig.parquet $LOG/00000000000000005808.checkpoint.parquet
    else cp /tmp/tomb/$v.parquet $LOG/00000000000000005808.checkpoint.parquet; fi
    rows=$($PY -c "import pyarrow.parquet as pq;print(pq.ParquetFile('$LOG/00000000000000005808.checkpoint.parquet').metadata.num_rows)")
    size=$(stat -c %s $LOG/00000000000000005808.checkpoint.parquet)
    echo "{\"version\":5808,\"size\":$rows,\"sizeInBytes\":$size,\"numOfAddFiles\":409}" > $LOG/_last_checkpoint
    $PY /work/main/bench/soak_probe.py --table /tmp/soak-v4/events --version 5808 $ARGS > /tmp/tomb/r$round-$v.json 2>/dev/null
    $PY /work/main/bench/soak_probe.py --table /tmp/soak-v4/baseline $ARGS > /tmp/tomb/r$round-$v-base.json 2>/dev/null
  done
done
