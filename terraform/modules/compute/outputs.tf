output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  description = "ECS cluster ARN."
  value       = aws_ecs_cluster.this.arn
}

output "writer_mode" {
  description = "How the writer runs: service or scheduled."
  value       = var.writer_mode
}

output "writer_service_name" {
  description = "ECS service of the writer (null in writer_mode scheduled)."
  value       = local.writer_scheduled ? null : aws_ecs_service.writer[0].name
}

output "writer_desired_count" {
  description = "Desired writer task count (writer_mode scheduled: 1 task per run)."
  value       = local.writer_scheduled ? 1 : aws_ecs_service.writer[0].desired_count
}

output "writer_task_definition_family" {
  description = "Task definition family of the writer."
  value       = aws_ecs_task_definition.writer.family
}

output "writer_schedule_name" {
  description = "EventBridge Scheduler schedule of the writer (null in writer_mode service)."
  value       = local.writer_scheduled ? aws_scheduler_schedule.writer[0].name : null
}

output "writer_task_definition_arn" {
  description = "Current writer task definition."
  value       = aws_ecs_task_definition.writer.arn
}

output "compactor_task_definition_families" {
  description = "Task definition families of the compactor, per table (events, rejected)."
  value       = { for k, td in aws_ecs_task_definition.compactor : k => td.family }
}

output "compactor_task_definition_arns_without_revision" {
  description = "Compactor task definition ARNs without revision, per table."
  value       = { for k, td in aws_ecs_task_definition.compactor : k => td.arn_without_revision }
}

output "compactor_schedule_names" {
  description = "EventBridge Scheduler schedules of the compactor, per table."
  value       = { for k, sc in aws_scheduler_schedule.compactor : k => sc.name }
}

output "schedule_group_name" {
  description = "EventBridge Scheduler group of the compactor schedules (and the writer's in writer_mode scheduled)."
  value       = aws_scheduler_schedule_group.this.name
}

output "writer_log_group_name" {
  description = "Log group of the writer."
  value       = aws_cloudwatch_log_group.writer.name
}

output "compactor_log_group_name" {
  description = "Log group of the compactor."
  value       = aws_cloudwatch_log_group.compactor.name
}

output "ecr_repository_url" {
  description = "ECR repository to push the image to (docker tag <image> <url>:<image_tag>)."
  value       = aws_ecr_repository.this.repository_url
}

output "security_group_id" {
  description = "Security group of the tasks."
  value       = aws_security_group.tasks.id
}

output "writer_autoscaling_bounds" {
  description = "Min and max writer task count (null in writer_mode scheduled: no service to scale)."
  value       = local.writer_scheduled ? null : { min = aws_appautoscaling_target.writer[0].min_capacity, max = aws_appautoscaling_target.writer[0].max_capacity }
}
