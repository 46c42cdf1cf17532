# Offline unit tests (mock provider): run with `terraform test` in modules/network.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["eu-west-1a", "eu-west-1b", "eu-west-1c"] }
  }
  mock_data "aws_vpc" {
    defaults = { cidr_block = "10.0.0.0/16" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:/events-lake/events-lake-test/vpc-flow-logs" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::111122223333:role/events-lake-test-vpc-flow-logs" }
  }
}

variables {
  name_prefix           = "events-lake-test"
  kms_key_arn           = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"
  log_group_name_prefix = "/events-lake/events-lake-test/"
}

run "created_private_vpc_with_data_path_endpoints" {
  variables {
    create_vpc = true
  }
  assert {
    condition     = length(aws_subnet.private) == 2 && alltrue([for s in aws_subnet.private : !s.map_public_ip_on_launch])
    error_message = "Two private subnets."
  }
  assert {
    condition     = length(aws_route_table.private[0].route) == 0
    error_message = "No default route: no internet gateway, no NAT."
  }
  assert {
    condition = (
      toset(keys(aws_vpc_endpoint.gateway)) == toset(["s3", "dynamodb"]) &&
      alltrue([for e in aws_vpc_endpoint.gateway : e.vpc_endpoint_type == "Gateway"])
    )
    error_message = "S3 and DynamoDB are reached through (free) gateway endpoints."
  }
  assert {
    condition = (
      toset(keys(aws_vpc_endpoint.interface)) == toset(["kinesis-streams", "ecr.api", "ecr.dkr", "logs", "sts"]) &&
      alltrue([for e in aws_vpc_endpoint.interface : e.private_dns_enabled && e.vpc_endpoint_type == "Interface"])
    )
    error_message = "Kinesis, ECR, Logs and STS through interface endpoints with private DNS."
  }
  assert {
    condition     = aws_vpc_security_group_ingress_rule.endpoints_https[0].from_port == 443 && aws_vpc_security_group_ingress_rule.endpoints_https[0].cidr_ipv4 == "10.40.0.0/16"
    error_message = "Endpoints accept HTTPS from the VPC only."
  }
}

run "reuse_existing_vpc" {
  variables {
    vpc_id          = "vpc-0123456789abcdef0"
    subnet_ids      = ["subnet-a", "subnet-b"]
    route_table_ids = ["rtb-a"]
  }
  assert {
    condition     = length(aws_vpc.this) == 0 && output.vpc_id == "vpc-0123456789abcdef0" && tolist(output.subnet_ids) == tolist(["subnet-a", "subnet-b"])
    error_message = "Reusing a VPC creates none and passes its subnets through."
  }
  assert {
    condition     = aws_vpc_endpoint.gateway["s3"].route_table_ids == toset(["rtb-a"]) && aws_vpc_endpoint.interface["kinesis-streams"].subnet_ids == toset(["subnet-a", "subnet-b"])
    error_message = "Endpoints go into the given VPC's route tables and subnets."
  }
}

run "reuse_without_endpoints" {
  variables {
    vpc_id           = "vpc-0123456789abcdef0"
    subnet_ids       = ["subnet-a"]
    create_endpoints = false
  }
  assert {
    condition     = length(aws_vpc_endpoint.gateway) == 0 && length(aws_vpc_endpoint.interface) == 0
    error_message = "create_endpoints = false (e.g. a NAT or shared endpoints) creates none."
  }
}
