output "kms_key_arn" {
  description = "KMS key ARN."
  value       = module.kms.key_arn
}

output "stream_name" {
  description = "Kinesis stream name."
  value       = module.data_plane.stream_name
}

output "stream_arn" {
  description = "Kinesis stream ARN."
  value       = module.data_plane.stream_arn
}

output "lake_bucket_name" {
  description = "Lake bucket name."
  value       = module.data_plane.lake_bucket_name
}

output "events_table_uri" {
  description = "URI of the events Delta table."
  value       = module.data_plane.events_table_uri
}

output "rejected_table_uri" {
  description = "URI of the rejected-events Delta table."
  value       = module.data_plane.rejected_table_uri
}

output "lock_table_name" {
  description = "DynamoDB commit-lock table."
  value       = module.data_plane.lock_table_name
}

output "lease_table_name" {
  description = "DynamoDB shard-lease table."
  value       = module.data_plane.lease_table_name
}

output "glue_database_name" {
  description = "Glue database."
  value       = module.data_plane.glue_database_name
}

output "glue_events_table_name" {
  description = "Glue events table."
  value       = module.data_plane.glue_events_table_name
}

output "athena_workgroup_name" {
  description = "Athena workgroup (null when disabled)."
  value       = module.data_plane.athena_workgroup_name
}

output "lock_table_arn" {
  description = "DynamoDB commit-lock table ARN."
  value       = module.data_plane.lock_table_arn
}

output "writer_role_arn" {
  description = "Task role of the writer (modules/iam)."
  value       = module.iam.writer_role_arn
}

output "compactor_role_arn" {
  description = "Task role of the compactor (modules/iam)."
  value       = module.iam.compactor_role_arn
}

output "producer_policy_arn" {
  description = "Producer managed policy (modules/iam)."
  value       = module.iam.producer_policy_arn
}

output "analyst_policy_arn" {
  description = "Analyst managed policy (modules/iam); null without Athena."
  value       = module.iam.analyst_policy_arn
}

output "writer_environment" {
  description = "Environment variables to run the writer against this data plane."
  value = {
    WRITER_STREAM         = module.data_plane.stream_name
    WRITER_TABLE          = module.data_plane.events_table_uri
    WRITER_REJECTED_TABLE = module.data_plane.rejected_table_uri
    WRITER_LEASE_TABLE    = module.data_plane.lease_table_name
    WRITER_LOCK_TABLE     = module.data_plane.lock_table_name
    WRITER_COMMIT_LOCK    = "dynamodb"
    AWS_REGION            = var.aws_region
  }
}
