output "vpc_id" {
  description = "VPC of the tasks (created or given)."
  value       = local.vpc_id
}

output "subnet_ids" {
  description = "Private subnets of the tasks (created or given)."
  value       = local.subnet_ids
}

output "endpoint_services" {
  description = "Services reachable through VPC endpoints."
  value       = concat(keys(aws_vpc_endpoint.gateway), keys(aws_vpc_endpoint.interface))
}
