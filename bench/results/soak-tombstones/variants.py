import pyarrow.parquet as pq, pyarrow.compute as pc, pyarrow as pa, json, sys
src='/tmp/soak-v4/ckpt-5808-orig.parquet'
t=pq.read_table(src)
ts=pc.struct_field(t.column('remove'),'deletionTimestamp')
is_rm=pc.is_valid(t.column('remove'))
last_run_start=1796616059000  # 04:00:59 UTC, the last compactor run's first removal
keep_last=pc.or_(pc.invert(is_rm), pc.greater_equal(pc.fill_null(ts,0), last_run_start))
variants={'all': t, 'lastrun': t.filter(keep_last), 'none': t.filter(pc.invert(is_rm))}
for name,v in variants.items():
    path=f'/tmp/tomb/{name}.parquet'
    pq.write_table(v, path, compression='snappy')
    import os
    print(name, v.num_rows, os.path.getsize(path))
