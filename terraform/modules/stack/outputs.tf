output "kms_key_arn" {
  description = "The environment's KMS key."
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
  description = "Lake bucket."
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
  description = "Glue table of the events."
  value       = module.data_plane.glue_events_table_name
}

output "glue_rejected_table_name" {
  description = "Glue table of the rejected events."
  value       = module.data_plane.glue_rejected_table_name
}

output "athena_workgroup_name" {
  description = "Athena workgroup."
  value       = module.data_plane.athena_workgroup_name
}

output "athena_results_bucket_name" {
  description = "Athena results bucket."
  value       = module.data_plane.athena_results_bucket_name
}

output "ecs_cluster_name" {
  description = "ECS cluster."
  value       = module.compute.cluster_name
}

output "writer_service_name" {
  description = "ECS service of the writer."
  value       = module.compute.writer_service_name
}

output "writer_mode" {
  description = "How the writer runs: service or scheduled."
  value       = module.compute.writer_mode
}

output "writer_schedule_name" {
  description = "EventBridge Scheduler schedule of the writer (writer_mode scheduled; else null)."
  value       = module.compute.writer_schedule_name
}

output "writer_autoscaling_bounds" {
  description = "Min and max writer task count (null in writer_mode scheduled)."
  value       = module.compute.writer_autoscaling_bounds
}

output "compactor_schedule_names" {
  description = "Scheduler schedules of the compactor, per table."
  value       = module.compute.compactor_schedule_names
}

output "compactor_task_definition_families" {
  description = "Task definition families of the compactor, per table (run one by hand: see README runbook)."
  value       = module.compute.compactor_task_definition_families
}

output "writer_role_arn" {
  description = "Task role of the writer."
  value       = module.iam.writer_role_arn
}

output "compactor_role_arn" {
  description = "Task role of the compactor."
  value       = module.iam.compactor_role_arn
}

output "producer_policy_arn" {
  description = "Managed policy to attach to producer roles (PutRecords + the stream's KMS key)."
  value       = module.iam.producer_policy_arn
}

output "analyst_policy_arn" {
  description = "Managed policy to attach to analyst roles (Athena workgroup, Glue, results, read-only lake)."
  value       = module.iam.analyst_policy_arn
}

output "ecr_repository_url" {
  description = "Where to push the image."
  value       = module.compute.ecr_repository_url
}

output "sns_topic_arn" {
  description = "Alarm topic."
  value       = module.monitoring.sns_topic_arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard."
  value       = module.monitoring.dashboard_name
}

output "metrics_namespace" {
  description = "Namespace of the log-derived metrics."
  value       = local.metrics_namespace
}

output "vpc_id" {
  description = "VPC of the tasks."
  value       = module.network.vpc_id
}

output "subnet_ids" {
  description = "Subnets of the tasks."
  value       = module.network.subnet_ids
}
