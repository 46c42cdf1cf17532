output "writer_role_arn" {
  description = "Task role of the writer."
  value       = aws_iam_role.writer.arn
}

output "writer_role_name" {
  description = "Task role name of the writer."
  value       = aws_iam_role.writer.name
}

output "compactor_role_arn" {
  description = "Task role of the compactor (both tables)."
  value       = aws_iam_role.compactor.arn
}

output "compactor_role_name" {
  description = "Task role name of the compactor."
  value       = aws_iam_role.compactor.name
}

output "producer_policy_arn" {
  description = "Managed policy for producers (PutRecords on the stream + its KMS key)."
  value       = aws_iam_policy.producer.arn
}

output "analyst_policy_arn" {
  description = "Managed policy for analysts (Athena workgroup, Glue, results bucket, read-only lake). null without Athena."
  value       = try(aws_iam_policy.analyst[0].arn, null)
}
