output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  description = "ECS cluster ARN."
  value       = aws_ecs_cluster.this.arn
}

output "writer_service_name" {
  description = "ECS service of the writer."
  value       = aws_ecs_service.writer.name
}

output "writer_desired_count" {
  description = "Desired writer task count."
  value       = aws_ecs_service.writer.desired_count
}

output "writer_task_definition_arn" {
  description = "Current writer task definition."
  value       = aws_ecs_task_definition.writer.arn
}

output "compactor_task_definition_family" {
  description = "Task definition family of the compactor."
  value       = aws_ecs_task_definition.compactor.family
}

output "compactor_task_definition_arn_without_revision" {
  description = "Compactor task definition ARN without revision."
  value       = aws_ecs_task_definition.compactor.arn_without_revision
}

output "compactor_schedule_name" {
  description = "EventBridge Scheduler schedule of the compactor."
  value       = aws_scheduler_schedule.compactor.name
}

output "writer_log_group_name" {
  description = "Log group of the writer."
  value       = aws_cloudwatch_log_group.writer.name
}

output "compactor_log_group_name" {
  description = "Log group of the compactor."
  value       = aws_cloudwatch_log_group.compactor.name
}

output "writer_role_arn" {
  description = "Task role of the writer."
  value       = aws_iam_role.writer.arn
}

output "compactor_role_arn" {
  description = "Task role of the compactor."
  value       = aws_iam_role.compactor.arn
}

output "ecr_repository_url" {
  description = "ECR repository to push the image to (docker tag <image> <url>:<image_tag>)."
  value       = aws_ecr_repository.this.repository_url
}

output "security_group_id" {
  description = "Security group of the tasks."
  value       = aws_security_group.tasks.id
}
