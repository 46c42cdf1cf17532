"""Issue 11 ("also fix"): writer and compactor refuse a table whose protocol or metadata
asks writers for something they do not enforce (here: a CHECK constraint, deletion vectors)
— non-zero exit, a message naming the feature, and nothing written.

`deltalake` (Python) is used only to alter the table, as another engine would.
"""
import pytest

from conftest import _bin, run


def gen(path, count, seed):
    run([_bin("loadgen"), "generate", "--count", str(count), "--seed", str(seed), "--output", str(path),
         "--late-ratio", "0", "--malformed-ratio", "0"])
    return path


def snapshot_of(table):
    """Everything a write would change: log entries and data files."""
    return sorted(str(p.relative_to(table)) for p in table.rglob("*") if p.is_file())


def log_version(table):
    return max(int(p.name[:20]) for p in (table / "_delta_log").glob("*.json") if p.name[:20].isdigit())


def add_check_constraint(dt):
    dt.alter.add_constraint({"created_at_positive": "created_at > 0"})
    return ["CHECK constraint `created_at_positive`"]


def enable_deletion_vectors(dt):
    dt.alter.set_table_properties({"delta.enableDeletionVectors": "true"})
    return ["deletion vectors"]


@pytest.mark.parametrize("alter", [add_check_constraint, enable_deletion_vectors])
def test_writer_and_compactor_refuse_unenforced_features(writer_bin, compactor_bin, tmp_path, alter):
    import deltalake  # setup only

    table = tmp_path / "events"
    rej = tmp_path / "rej"
    run([writer_bin, "ingest", "--input", str(gen(tmp_path / "a.ndjson", 200, 21)),
         "--table", str(table), "--rejected-table", str(rej), "--max-batch-events", "50"])
    expected_messages = alter(deltalake.DeltaTable(str(table)))
    version = log_version(table)
    files = snapshot_of(table)

    _, p = run([writer_bin, "ingest", "--input", str(gen(tmp_path / "b.ndjson", 200, 22)),
                "--table", str(table), "--rejected-table", str(rej)], check=False)
    err = p.stderr.decode(errors="replace")
    assert p.returncode != 0, err
    assert "refusing to write" in err and all(m in err for m in expected_messages), err
    assert log_version(table) == version and snapshot_of(table) == files

    for cmd in (["optimize", "--target-size", "1MiB"], ["run", "--target-size", "1MiB"],
                ["vacuum", "--retention", "0h", "--force"]):
        _, p = run([compactor_bin, *cmd, "--table", str(table)], check=False)
        err = p.stderr.decode(errors="replace")
        assert p.returncode != 0, (cmd, err)
        assert "refusing to write" in err and all(m in err for m in expected_messages), (cmd, err)
        assert log_version(table) == version and snapshot_of(table) == files, cmd

    # Read-only commands still work on such a table.
    run([compactor_bin, "history", "--table", str(table)])
