# Offline unit tests (mock provider): run with `terraform test` in modules/data_plane.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = {
      account_id = "111122223333"
    }
  }
}

variables {
  name_prefix = "events-lake-test"
  kms_key_arn = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"
}

run "encryption_everywhere" {
  assert {
    condition     = aws_kinesis_stream.events.encryption_type == "KMS" && aws_kinesis_stream.events.kms_key_id == var.kms_key_arn
    error_message = "The stream must be SSE-KMS encrypted with the environment key."
  }
  assert {
    condition = alltrue([
      for r in aws_s3_bucket_server_side_encryption_configuration.lake.rule :
      alltrue([for d in r.apply_server_side_encryption_by_default : d.sse_algorithm == "aws:kms" && d.kms_master_key_id == var.kms_key_arn])
    ])
    error_message = "The lake bucket must be SSE-KMS encrypted with the environment key."
  }
  assert {
    condition = alltrue([
      for r in aws_s3_bucket_server_side_encryption_configuration.athena_results[0].rule :
      alltrue([for d in r.apply_server_side_encryption_by_default : d.sse_algorithm == "aws:kms"])
    ])
    error_message = "The Athena results bucket must be SSE-KMS encrypted."
  }
  assert {
    condition = alltrue([
      for t in [aws_dynamodb_table.lock, aws_dynamodb_table.lease] :
      t.server_side_encryption[0].enabled && t.server_side_encryption[0].kms_key_arn == var.kms_key_arn
    ])
    error_message = "Both DynamoDB tables must be encrypted with the environment key."
  }
  assert {
    condition = (
      aws_athena_workgroup.this[0].configuration[0].enforce_workgroup_configuration &&
      aws_athena_workgroup.this[0].configuration[0].result_configuration[0].encryption_configuration[0].encryption_option == "SSE_KMS"
    )
    error_message = "The Athena workgroup must enforce SSE_KMS-encrypted results."
  }
}

run "buckets_private_and_tls_only" {
  assert {
    condition = alltrue([
      for b in [aws_s3_bucket_public_access_block.lake, aws_s3_bucket_public_access_block.athena_results[0]] :
      b.block_public_acls && b.block_public_policy && b.ignore_public_acls && b.restrict_public_buckets
    ])
    error_message = "All public access must be blocked on both buckets."
  }
  assert {
    condition = anytrue([
      for s in jsondecode(aws_s3_bucket_policy.lake.policy).Statement :
      s.Effect == "Deny" && s.Condition.Bool["aws:SecureTransport"] == "false"
    ])
    error_message = "The lake bucket policy must deny non-TLS access."
  }
  assert {
    condition     = aws_s3_bucket.lake.bucket == "events-lake-test-lake-111122223333"
    error_message = "Lake bucket name must be <name_prefix>-lake-<account>."
  }
  assert {
    condition     = aws_s3_bucket_versioning.lake.versioning_configuration[0].status == "Enabled"
    error_message = "Versioning is on by default."
  }
}

run "lifecycle_cleans_temporary_commit_files" {
  assert {
    condition = alltrue([
      for p in [
        "lake/events/_delta_log/.tmp/", "lake/events_rejected/_delta_log/.tmp/",
        "lake/events/_delta_log/_commit_", "lake/events_rejected/_delta_log/_commit_",
      ] :
      anytrue([for r in aws_s3_bucket_lifecycle_configuration.lake.rule : try(r.filter[0].prefix == p && r.expiration[0].days == 30, false)])
    ])
    error_message = "Temporary commit files of both tables must expire, after 30 days."
  }
  assert {
    condition     = anytrue([for r in aws_s3_bucket_lifecycle_configuration.lake.rule : try(r.noncurrent_version_expiration[0].noncurrent_days, 0) == 30])
    error_message = "Noncurrent versions must expire."
  }
  assert {
    condition     = !anytrue([for r in aws_s3_bucket_lifecycle_configuration.lake.rule : strcontains(r.id, "old-log-files")])
    error_message = "Old log files are not expired by S3 unless delta_log_expiration_days is set."
  }
}

# Issue 13, defect 3: the temp-file rule once expired .tmp/ files after 3 days while an
# incomplete lock entry (no TTL until completed, storage/src/lock/dynamodb.rs) needs its temp
# file until it is repaired. Every rule that expires current objects is checked against keys
# of each kind the protocol writes: log entries, checkpoints and data files must never match;
# temp files may only expire after 30 days or more (and must expire, or .tmp/ grows forever).
run "expiry_never_hits_what_the_lock_protocol_needs" {
  assert {
    condition = alltrue(flatten([
      for r in aws_s3_bucket_lifecycle_configuration.lake.rule : [
        for k in [
          "lake/events/_delta_log/00000000000000000042.json",
          "lake/events/_delta_log/00000000000000000040.checkpoint.parquet",
          "lake/events/_delta_log/_last_checkpoint",
          "lake/events/event_type=payment/created_date=2024-03-17/part-00000-0a1b.zstd.parquet",
          "lake/events_rejected/_delta_log/00000000000000000007.json",
          "lake/events_rejected/_delta_log/_last_checkpoint",
          "lake/events_rejected/rejected_date=2024-03-17/part-00000-0a1b.zstd.parquet",
        ] : !startswith(k, coalesce(try(r.filter[0].prefix, null), ""))
      ] if try(r.expiration[0].days, null) != null && !try(r.expiration[0].expired_object_delete_marker, false)
    ]))
    error_message = "A rule expiring current objects matches a Delta log entry, checkpoint or data file."
  }
  assert {
    condition = alltrue(flatten([
      for r in aws_s3_bucket_lifecycle_configuration.lake.rule : [
        for k in [
          "lake/events/_delta_log/.tmp/00000000000000000042.json.6f1c2d3e-0000-4000-8000-000000000000",
          "lake/events_rejected/_delta_log/.tmp/00000000000000000007.json.6f1c2d3e-0000-4000-8000-000000000000",
        ] : r.expiration[0].days >= 30 if startswith(k, coalesce(try(r.filter[0].prefix, null), ""))
      ] if try(r.expiration[0].days, null) != null && !try(r.expiration[0].expired_object_delete_marker, false)
    ]))
    error_message = "A lock temp file (_delta_log/.tmp/) must not expire before 30 days: an incomplete lock entry is repaired from it."
  }
}

run "tmp_expiry_below_lock_need_is_refused" {
  command = plan
  variables {
    tmp_object_expiration_days = 3
  }
  expect_failures = [var.tmp_object_expiration_days]
}

run "old_log_expiry_opt_in" {
  variables {
    delta_log_expiration_days = 60
  }
  assert {
    condition = anytrue([
      for r in aws_s3_bucket_lifecycle_configuration.lake.rule :
      try(r.filter[0].prefix == "lake/events/_delta_log/" && r.expiration[0].days == 60, false)
    ])
    error_message = "delta_log_expiration_days must add an expiry of _delta_log/."
  }
}

run "lock_table_has_spark_s3dynamodblogstore_schema" {
  assert {
    condition     = aws_dynamodb_table.lock.hash_key == "tablePath" && aws_dynamodb_table.lock.range_key == "fileName"
    error_message = "Lock table keys must be tablePath (hash) / fileName (range)."
  }
  assert {
    condition     = toset([for a in aws_dynamodb_table.lock.attribute : "${a.name}:${a.type}"]) == toset(["tablePath:S", "fileName:S"])
    error_message = "Lock table key attributes must both be strings."
  }
  assert {
    condition     = aws_dynamodb_table.lock.ttl[0].attribute_name == "expireTime" && aws_dynamodb_table.lock.ttl[0].enabled
    error_message = "Lock table TTL attribute must be expireTime."
  }
  assert {
    condition     = aws_dynamodb_table.lease.hash_key == "leaseKey" && aws_dynamodb_table.lease.range_key == null
    error_message = "Lease table key must be leaseKey."
  }
  assert {
    condition = alltrue([
      for t in [aws_dynamodb_table.lock, aws_dynamodb_table.lease] :
      t.billing_mode == "PAY_PER_REQUEST" && t.point_in_time_recovery[0].enabled
    ])
    error_message = "Tables must be on-demand with point-in-time recovery."
  }
}

run "glue_registers_native_delta_tables" {
  assert {
    condition = (
      aws_glue_catalog_table.events.parameters["table_type"] == "DELTA" &&
      aws_glue_catalog_table.events.parameters["spark.sql.sources.provider"] == "delta"
    )
    error_message = "The events table must be registered as a Delta table."
  }
  assert {
    condition     = [for k in aws_glue_catalog_table.events.partition_keys : "${k.name}:${k.type}"] == ["event_type:string", "created_date:date"]
    error_message = "Partition keys must be event_type string, created_date date."
  }
  assert {
    condition     = aws_glue_catalog_table.events.storage_descriptor[0].location == "s3://events-lake-test-lake-111122223333/lake/events"
    error_message = "Glue location must be the events table URI."
  }
  assert {
    condition = [for c in aws_glue_catalog_table.events.storage_descriptor[0].columns : "${c.name}:${c.type}"] == [
      "event_uuid:string", "event_name:string", "created_at:bigint", "created_timestamp:timestamp",
      "created_datetime:string", "event_subtype:string", "payload:string", "source:string",
      "source_shard:string", "source_position:string", "ingested_at:timestamp",
    ]
    error_message = "Events columns must match the contract."
  }
  assert {
    condition = one([
      for c in aws_glue_catalog_table.events.storage_descriptor[0].columns : strcontains(c.comment, "seconds") && !strcontains(c.comment, "milli") if c.name == "created_at"
    ])
    error_message = "created_at holds Unix epoch seconds (schemas crate: Long, whole seconds), not milliseconds."
  }
  assert {
    condition = [for c in aws_glue_catalog_table.rejected[0].storage_descriptor[0].columns : "${c.name}:${c.type}"] == [
      "rejection_id:string", "raw:binary", "reason:string", "message:string", "source:string",
      "source_shard:string", "source_position:string", "rejected_at:timestamp",
    ]
    error_message = "Rejected columns must match schemas::table::REJECTED (rejection_id first)."
  }
  assert {
    condition     = [for k in aws_glue_catalog_table.rejected[0].partition_keys : "${k.name}:${k.type}"] == ["rejected_date:date"]
    error_message = "The rejected table is partitioned by rejected_date."
  }
  assert {
    condition     = strcontains(aws_athena_named_query.this["duplicate_check"].query, "HAVING count(*) > 1")
    error_message = "The duplicate-check query must exist."
  }
  assert {
    condition     = length(aws_athena_named_query.this) == 4
    error_message = "Four named queries are expected."
  }
}

run "on_demand_stream_has_no_shard_count" {
  variables {
    stream_mode = "ON_DEMAND"
  }
  assert {
    condition     = aws_kinesis_stream.events.stream_mode_details[0].stream_mode == "ON_DEMAND" && aws_kinesis_stream.events.shard_count == null
    error_message = "ON_DEMAND streams must not set a shard count."
  }
}

run "emulator_toggles" {
  variables {
    enable_athena                 = false
    enable_point_in_time_recovery = false
  }
  assert {
    condition     = length(aws_athena_workgroup.this) == 0 && length(aws_s3_bucket.athena_results) == 0 && length(aws_athena_named_query.this) == 0
    error_message = "enable_athena = false must drop Athena resources."
  }
  assert {
    condition     = output.athena_workgroup_name == null
    error_message = "The workgroup output is null without Athena."
  }
}

run "rejects_bad_name_prefix" {
  command = plan
  variables {
    name_prefix = "Bad_Prefix"
  }
  expect_failures = [var.name_prefix]
}
