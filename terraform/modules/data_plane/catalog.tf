# Glue catalog entries so Athena (engine v3) reads the tables natively as Delta Lake tables:
# Athena takes schema, partitions and the live file list from the Delta log at `location`;
# the columns below document the contract (and serve tools that read Glue schemas).

locals {
  events_columns = [
    { name = "event_uuid", type = "string", comment = "Event id; the dedup key" },
    { name = "event_name", type = "string", comment = "Event name as sent by the producer" },
    { name = "created_at", type = "bigint", comment = "Creation time, Unix epoch seconds (whole part, as received)" },
    { name = "created_timestamp", type = "timestamp", comment = "Creation time (UTC)" },
    { name = "created_datetime", type = "string", comment = "Creation time as sent (ISO-8601)" },
    { name = "event_subtype", type = "string", comment = "Optional subtype" },
    { name = "payload", type = "string", comment = "Event payload, JSON text" },
    { name = "source", type = "string", comment = "Ingestion source (stream name or file)" },
    { name = "source_shard", type = "string", comment = "Kinesis shard id" },
    { name = "source_position", type = "string", comment = "Kinesis sequence number" },
    { name = "ingested_at", type = "timestamp", comment = "Time the writer committed the event (UTC)" },
  ]
  events_partition_keys = [
    { name = "event_type", type = "string", comment = "Partition: event type" },
    { name = "created_date", type = "date", comment = "Partition: UTC date of created_timestamp" },
  ]

  rejected_columns = [
    { name = "rejection_id", type = "string", comment = "Stable hash of origin + raw bytes; the rejected table's dedupe key" },
    { name = "raw", type = "binary", comment = "The record as received" },
    { name = "reason", type = "string", comment = "Machine-readable rejection reason" },
    { name = "message", type = "string", comment = "Human-readable detail" },
    { name = "source", type = "string", comment = "Ingestion source (stream name or file)" },
    { name = "source_shard", type = "string", comment = "Kinesis shard id" },
    { name = "source_position", type = "string", comment = "Kinesis sequence number" },
    { name = "rejected_at", type = "timestamp", comment = "Time of rejection (UTC)" },
  ]
  rejected_partition_keys = [
    { name = "rejected_date", type = "date", comment = "Partition: UTC date of rejected_at" },
  ]

  delta_table_parameters = {
    EXTERNAL                     = "TRUE"
    table_type                   = "DELTA"
    "spark.sql.sources.provider" = "delta"
    classification               = "delta"
  }

  glue_qualified_events   = "\"${local.glue_database_name}\".\"${var.events_table_name}\""
  glue_qualified_rejected = "\"${local.glue_database_name}\".\"${var.rejected_table_name}\""
}

resource "aws_glue_catalog_database" "this" {
  name        = local.glue_database_name
  description = "Events lake (${var.name_prefix}): Delta tables written by the writer service."
  tags        = var.tags
}

resource "aws_glue_catalog_table" "events" {
  name          = var.events_table_name
  database_name = aws_glue_catalog_database.this.name
  description   = "Deduplicated JSON events, Delta Lake, partitioned by event_type and created_date."
  table_type    = "EXTERNAL_TABLE"
  parameters    = local.delta_table_parameters

  dynamic "partition_keys" {
    for_each = local.events_partition_keys
    content {
      name    = partition_keys.value.name
      type    = partition_keys.value.type
      comment = partition_keys.value.comment
    }
  }

  storage_descriptor {
    location      = local.events_table_uri
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    }

    dynamic "columns" {
      for_each = local.events_columns
      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}

resource "aws_glue_catalog_table" "rejected" {
  count         = var.enable_rejected_glue_table ? 1 : 0
  name          = var.rejected_table_name
  database_name = aws_glue_catalog_database.this.name
  description   = "Events the writer could not accept, with the reason. Delta Lake, partitioned by rejected_date."
  table_type    = "EXTERNAL_TABLE"
  parameters    = local.delta_table_parameters

  dynamic "partition_keys" {
    for_each = local.rejected_partition_keys
    content {
      name    = partition_keys.value.name
      type    = partition_keys.value.type
      comment = partition_keys.value.comment
    }
  }

  storage_descriptor {
    location      = local.rejected_table_uri
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
    }

    dynamic "columns" {
      for_each = local.rejected_columns
      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = columns.value.comment
      }
    }
  }
}

resource "aws_athena_workgroup" "this" {
  count         = var.enable_athena ? 1 : 0
  name          = var.name_prefix
  description   = "Queries on the ${var.name_prefix} events lake (results SSE-KMS encrypted)."
  state         = "ENABLED"
  force_destroy = var.force_destroy

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.athena_bytes_scanned_cutoff

    engine_version {
      selected_engine_version = "Athena engine version 3"
    }

    result_configuration {
      output_location = "s3://${aws_s3_bucket.athena_results[0].bucket}/results/"

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = var.kms_key_arn
      }
    }
  }

  tags = var.tags
}

locals {
  named_queries = {
    events_per_type_per_day = {
      description = "Events per event_type and day, last 7 days."
      query       = <<-SQL
        SELECT event_type, created_date, count(*) AS events
        FROM ${local.glue_qualified_events}
        WHERE created_date >= current_date - INTERVAL '7' DAY
        GROUP BY event_type, created_date
        ORDER BY created_date DESC, events DESC
      SQL
    }
    duplicate_check = {
      description = "event_uuid present more than once (must return no rows: the writer deduplicates)."
      query       = <<-SQL
        SELECT event_uuid, count(*) AS copies
        FROM ${local.glue_qualified_events}
        GROUP BY event_uuid
        HAVING count(*) > 1
        ORDER BY copies DESC
        LIMIT 100
      SQL
    }
    latest_events_of_type = {
      description = "Latest 100 events of one event_type (Athena prompts for the ? parameter)."
      query       = <<-SQL
        SELECT *
        FROM ${local.glue_qualified_events}
        WHERE event_type = ?
          AND created_date >= current_date - INTERVAL '2' DAY
        ORDER BY created_timestamp DESC
        LIMIT 100
      SQL
    }
    rejected_per_reason_per_day = {
      description = "Rejected records per reason and day, last 7 days."
      query       = <<-SQL
        SELECT reason, rejected_date, count(*) AS rejected
        FROM ${local.glue_qualified_rejected}
        WHERE rejected_date >= current_date - INTERVAL '7' DAY
        GROUP BY reason, rejected_date
        ORDER BY rejected_date DESC, rejected DESC
      SQL
    }
  }
}

resource "aws_athena_named_query" "this" {
  for_each    = var.enable_athena && var.enable_athena_named_queries ? local.named_queries : {}
  name        = "${var.name_prefix}-${replace(each.key, "_", "-")}"
  description = each.value.description
  workgroup   = aws_athena_workgroup.this[0].id
  database    = aws_glue_catalog_database.this.name
  query       = each.value.query
}
