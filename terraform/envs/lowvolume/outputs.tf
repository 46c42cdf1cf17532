output "stream_name" {
  description = "Kinesis stream name."
  value       = module.stack.stream_name
}

output "stream_arn" {
  description = "Kinesis stream ARN."
  value       = module.stack.stream_arn
}

output "lake_bucket_name" {
  description = "Lake bucket."
  value       = module.stack.lake_bucket_name
}

output "events_table_uri" {
  description = "URI of the events Delta table."
  value       = module.stack.events_table_uri
}

output "rejected_table_uri" {
  description = "URI of the rejected-events Delta table."
  value       = module.stack.rejected_table_uri
}

output "lock_table_name" {
  description = "DynamoDB commit-lock table."
  value       = module.stack.lock_table_name
}

output "lease_table_name" {
  description = "DynamoDB shard-lease table."
  value       = module.stack.lease_table_name
}

output "glue_database_name" {
  description = "Glue database."
  value       = module.stack.glue_database_name
}

output "glue_events_table_name" {
  description = "Glue table of the events."
  value       = module.stack.glue_events_table_name
}

output "glue_rejected_table_name" {
  description = "Glue table of the rejected events."
  value       = module.stack.glue_rejected_table_name
}

output "athena_workgroup_name" {
  description = "Athena workgroup."
  value       = module.stack.athena_workgroup_name
}

output "ecs_cluster_name" {
  description = "ECS cluster."
  value       = module.stack.ecs_cluster_name
}

output "writer_service_name" {
  description = "ECS service of the writer."
  value       = module.stack.writer_service_name
}

output "ecr_repository_url" {
  description = "Where to push the image."
  value       = module.stack.ecr_repository_url
}

output "sns_topic_arn" {
  description = "Alarm topic."
  value       = module.stack.sns_topic_arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard."
  value       = module.stack.dashboard_name
}

output "writer_schedule_name" {
  description = "EventBridge Scheduler schedule that runs the writer."
  value       = module.stack.writer_schedule_name
}
