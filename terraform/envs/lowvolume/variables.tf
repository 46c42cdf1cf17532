variable "aws_region" {
  description = "Region of the environment."
  type        = string
}

variable "aws_account_id" {
  description = "Account the environment lives in (the provider refuses any other). null = no check."
  type        = string
  default     = null
}

variable "vpc_id" {
  description = "VPC of the ECS tasks."
  type        = string
}

variable "subnet_ids" {
  description = "Public subnets of the ECS tasks (route to an internet gateway; the tasks get a public IP, no NAT needed, see README \"Low-volume profile\")."
  type        = list(string)
}

variable "image_tag" {
  description = "Tag of the writer/compactor image in the environment's ECR repository."
  type        = string
}

variable "alarm_email_addresses" {
  description = "E-mail subscribers of the alarm topic."
  type        = list(string)
  default     = []
}
