output "stream_name" {
  description = "Kinesis stream name (WRITER_STREAM)."
  value       = aws_kinesis_stream.events.name
}

output "stream_arn" {
  description = "Kinesis stream ARN."
  value       = aws_kinesis_stream.events.arn
}

output "lake_bucket_name" {
  description = "Lake bucket name."
  value       = aws_s3_bucket.lake.bucket
}

output "lake_bucket_arn" {
  description = "Lake bucket ARN."
  value       = aws_s3_bucket.lake.arn
}

output "events_table_key_prefix" {
  description = "S3 key prefix of the events table (no trailing slash)."
  value       = local.events_key_prefix
}

output "rejected_table_key_prefix" {
  description = "S3 key prefix of the rejected table (no trailing slash)."
  value       = local.rejected_key_prefix
}

output "events_table_uri" {
  description = "URI of the events Delta table (WRITER_TABLE, COMPACTOR_TABLE)."
  value       = local.events_table_uri
}

output "rejected_table_uri" {
  description = "URI of the rejected-events Delta table (WRITER_REJECTED_TABLE, COMPACTOR_TABLE of the rejected compactor)."
  value       = local.rejected_table_uri
}

output "lock_table_name" {
  description = "DynamoDB commit-lock table (WRITER_LOCK_TABLE, COMPACTOR_LOCK_TABLE)."
  value       = aws_dynamodb_table.lock.name
}

output "lock_table_arn" {
  description = "DynamoDB commit-lock table ARN."
  value       = aws_dynamodb_table.lock.arn
}

output "lease_table_name" {
  description = "DynamoDB shard-lease table (WRITER_LEASE_TABLE)."
  value       = aws_dynamodb_table.lease.name
}

output "lease_table_arn" {
  description = "DynamoDB shard-lease table ARN."
  value       = aws_dynamodb_table.lease.arn
}

output "glue_database_name" {
  description = "Glue database of the lake tables."
  value       = aws_glue_catalog_database.this.name
}

output "glue_events_table_name" {
  description = "Glue table of the events Delta table."
  value       = aws_glue_catalog_table.events.name
}

output "glue_rejected_table_name" {
  description = "Glue table of the rejected Delta table (null when not registered)."
  value       = try(aws_glue_catalog_table.rejected[0].name, null)
}

output "athena_workgroup_name" {
  description = "Athena workgroup (null when enable_athena = false)."
  value       = try(aws_athena_workgroup.this[0].name, null)
}

output "athena_results_bucket_name" {
  description = "Bucket of the Athena query results (null when enable_athena = false)."
  value       = try(aws_s3_bucket.athena_results[0].bucket, null)
}

output "athena_results_bucket_arn" {
  description = "ARN of the Athena results bucket (null when enable_athena = false)."
  value       = try(aws_s3_bucket.athena_results[0].arn, null)
}
