# Optional network of the tasks: create a private-only VPC, or reuse one; and the VPC endpoints
# the data path needs, so a private writer needs no NAT gateway (at 1000x, Kinesis reads through
# NAT cost ~$10k/month, see README cost notes). Gateway endpoints (S3, DynamoDB) are free;
# interface endpoints cost ~$0.01/h per AZ + $0.01/GB.

data "aws_region" "current" {}

data "aws_availability_zones" "available" {
  count = var.create_vpc ? 1 : 0
  state = "available"
}

data "aws_vpc" "existing" {
  count = var.create_vpc ? 0 : 1
  id    = var.vpc_id
}

locals {
  region           = data.aws_region.current.name
  create_endpoints = var.create_vpc || var.create_endpoints
  vpc_id           = var.create_vpc ? aws_vpc.this[0].id : var.vpc_id
  vpc_cidr         = var.create_vpc ? var.vpc_cidr : data.aws_vpc.existing[0].cidr_block
  subnet_ids       = var.create_vpc ? aws_subnet.private[*].id : var.subnet_ids
  route_table_ids  = var.create_vpc ? [aws_route_table.private[0].id] : var.route_table_ids
}

# ------------------------------------------------------------------ created VPC (private only)

resource "aws_vpc" "this" {
  count                = var.create_vpc ? 1 : 0
  cidr_block           = var.vpc_cidr
  enable_dns_support   = true
  enable_dns_hostnames = true # private DNS of the interface endpoints
  tags                 = merge(var.tags, { Name = var.name_prefix })
}

# Nothing may use the default security group.
resource "aws_default_security_group" "this" {
  count  = var.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = merge(var.tags, { Name = "${var.name_prefix}-default-unused" })
}

resource "aws_subnet" "private" {
  count                   = var.create_vpc ? var.az_count : 0
  vpc_id                  = aws_vpc.this[0].id
  availability_zone       = data.aws_availability_zones.available[0].names[count.index]
  cidr_block              = cidrsubnet(var.vpc_cidr, 4, count.index)
  map_public_ip_on_launch = false
  tags                    = merge(var.tags, { Name = "${var.name_prefix}-private-${count.index}" })
}

# No default route: no internet gateway, no NAT. Only the gateway endpoints' prefix lists.
resource "aws_route_table" "private" {
  count  = var.create_vpc ? 1 : 0
  vpc_id = aws_vpc.this[0].id
  tags   = merge(var.tags, { Name = "${var.name_prefix}-private" })
}

resource "aws_route_table_association" "private" {
  count          = var.create_vpc ? var.az_count : 0
  subnet_id      = aws_subnet.private[count.index].id
  route_table_id = aws_route_table.private[0].id
}

resource "aws_cloudwatch_log_group" "flow_logs" {
  #checkov:skip=CKV_AWS_338:Network troubleshooting records (REJECT only), not audit logs; retention per environment (flow_log_retention_days).
  count             = var.create_vpc ? 1 : 0
  name              = "${var.log_group_name_prefix}vpc-flow-logs"
  retention_in_days = var.flow_log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_iam_role" "flow_logs" {
  count = var.create_vpc ? 1 : 0
  name  = "${var.name_prefix}-vpc-flow-logs"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "vpc-flow-logs.amazonaws.com" }
        Action    = "sts:AssumeRole"
        Condition = { ArnLike = { "aws:SourceArn" = "arn:*:ec2:${local.region}:*:vpc-flow-log/*" } }
      },
    ]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "flow_logs" {
  count = var.create_vpc ? 1 : 0
  name  = "write-flow-logs"
  role  = aws_iam_role.flow_logs[0].id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect   = "Allow"
        Action   = ["logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
        Resource = ["${aws_cloudwatch_log_group.flow_logs[0].arn}:*"]
      },
    ]
  })
}

resource "aws_flow_log" "this" {
  count           = var.create_vpc ? 1 : 0
  vpc_id          = aws_vpc.this[0].id
  traffic_type    = "REJECT"
  log_destination = aws_cloudwatch_log_group.flow_logs[0].arn
  iam_role_arn    = aws_iam_role.flow_logs[0].arn
  tags            = var.tags
}

# ------------------------------------------------------------------ endpoints

resource "aws_vpc_endpoint" "gateway" {
  for_each          = local.create_endpoints ? toset(["s3", "dynamodb"]) : toset([])
  vpc_id            = local.vpc_id
  service_name      = "com.amazonaws.${local.region}.${each.key}"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = local.route_table_ids
  tags              = merge(var.tags, { Name = "${var.name_prefix}-${each.key}" })
}

resource "aws_security_group" "endpoints" {
  count       = local.create_endpoints ? 1 : 0
  name        = "${var.name_prefix}-endpoints"
  description = "Interface endpoints of ${var.name_prefix}: HTTPS from inside the VPC"
  vpc_id      = local.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_ingress_rule" "endpoints_https" {
  count             = local.create_endpoints ? 1 : 0
  security_group_id = aws_security_group.endpoints[0].id
  description       = "HTTPS from the VPC"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = local.vpc_cidr
}

resource "aws_vpc_endpoint" "interface" {
  for_each            = local.create_endpoints ? toset(var.interface_endpoint_services) : toset([])
  vpc_id              = local.vpc_id
  service_name        = "com.amazonaws.${local.region}.${each.key}"
  vpc_endpoint_type   = "Interface"
  subnet_ids          = local.subnet_ids
  security_group_ids  = [aws_security_group.endpoints[0].id]
  private_dns_enabled = true
  tags                = merge(var.tags, { Name = "${var.name_prefix}-${each.key}" })
}
