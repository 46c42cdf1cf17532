variable "name_prefix" {
  description = "Unique prefix of this test deployment's resources, e.g. \"e2e-1a2b3c\"."
  type        = string
  default     = "events-lake-e2e"
}

variable "aws_region" {
  description = "AWS region."
  type        = string
  default     = "us-east-1"
}

variable "aws_endpoint_url" {
  description = "Endpoint of an AWS emulator (moto server), e.g. \"http://127.0.0.1:5000\". Empty = real AWS with the usual credentials chain."
  type        = string
  default     = ""
}

# Credentials used against the emulator only (with IAM enforcement on, moto needs the keys of
# a user it knows: integration-tests/test_terraform_iam.py creates one).
variable "emulator_access_key" {
  description = "Access key id used when aws_endpoint_url is set."
  type        = string
  default     = "test"
}

variable "emulator_secret_key" {
  description = "Secret access key used when aws_endpoint_url is set."
  type        = string
  default     = "test"
  sensitive   = true
}

# Toggles for what the emulator does not support (see README "Emulator limitations").
variable "enable_athena" {
  description = "Create the Athena workgroup, results bucket and named queries."
  type        = bool
  default     = true
}

variable "enable_athena_named_queries" {
  description = "Create the saved Athena queries (moto 5.2 cannot delete them: DeleteNamedQuery is not implemented)."
  type        = bool
  default     = true
}

variable "enable_point_in_time_recovery" {
  description = "Point-in-time recovery on the DynamoDB tables."
  type        = bool
  default     = true
}

variable "stream_encryption_enabled" {
  description = "KMS server-side encryption of the Kinesis stream."
  type        = bool
  default     = true
}
