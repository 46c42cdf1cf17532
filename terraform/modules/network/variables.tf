variable "name_prefix" {
  description = "Prefix of every resource name of this environment."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key encrypting the VPC flow-log group."
  type        = string
}

variable "log_group_name_prefix" {
  description = "Prefix of the stack's log group names (the KMS key policy lets CloudWatch Logs use the key for these only)."
  type        = string
}

variable "create_vpc" {
  description = "true: create a VPC with private subnets only (no NAT, no internet gateway; the AWS APIs are reached through the endpoints). false: use vpc_id / subnet_ids."
  type        = bool
  default     = false
}

variable "vpc_cidr" {
  description = "CIDR of the created VPC."
  type        = string
  default     = "10.40.0.0/16"
}

variable "az_count" {
  description = "Availability zones (one private subnet each) of the created VPC."
  type        = number
  default     = 2

  validation {
    condition     = var.az_count >= 1 && var.az_count <= 6
    error_message = "az_count must be between 1 and 6."
  }
}

variable "vpc_id" {
  description = "Existing VPC (create_vpc = false)."
  type        = string
  default     = null
}

variable "subnet_ids" {
  description = "Existing private subnets of the tasks (create_vpc = false); the interface endpoints go there too."
  type        = list(string)
  default     = []
}

variable "route_table_ids" {
  description = "Route tables of the existing subnets, for the S3 and DynamoDB gateway endpoints (create_vpc = false)."
  type        = list(string)
  default     = []
}

variable "create_endpoints" {
  description = "Create the VPC endpoints of the data path: S3 + DynamoDB gateway (free), Kinesis, ECR (api, dkr), CloudWatch Logs, STS interface endpoints. Always on with create_vpc (there is no other way out)."
  type        = bool
  default     = true
}

variable "interface_endpoint_services" {
  description = "Interface endpoints to create (service name suffixes)."
  type        = list(string)
  default     = ["kinesis-streams", "ecr.api", "ecr.dkr", "logs", "sts"]
}

variable "flow_log_retention_days" {
  description = "Retention of the created VPC's flow logs (REJECT records only)."
  type        = number
  default     = 30
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
