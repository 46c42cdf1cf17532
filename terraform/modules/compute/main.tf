data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  image = "${aws_ecr_repository.this.repository_url}:${var.image_tag}"

  writer_family    = "${var.name_prefix}-writer"
  compactor_family = "${var.name_prefix}-compactor"

  compactor_schedule_name = "${var.name_prefix}-compactor"
  compactor_schedule_arn  = "arn:${local.partition}:scheduler:${local.region}:${local.account_id}:schedule/default/${local.compactor_schedule_name}"
}

# ------------------------------------------------------------------ image repository

resource "aws_ecr_repository" "this" {
  name                 = var.name_prefix
  image_tag_mutability = "IMMUTABLE"

  image_scanning_configuration {
    scan_on_push = true
  }

  encryption_configuration {
    encryption_type = "KMS"
    kms_key         = var.kms_key_arn
  }

  tags = var.tags
}

resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name
  policy = jsonencode({
    rules = [
      {
        rulePriority = 1
        description  = "Keep the last ${var.ecr_image_retention_count} images"
        selection = {
          tagStatus   = "any"
          countType   = "imageCountMoreThan"
          countNumber = var.ecr_image_retention_count
        }
        action = { type = "expire" }
      },
    ]
  })
}

# ------------------------------------------------------------------ cluster, logs, network

resource "aws_ecs_cluster" "this" {
  #checkov:skip=CKV_AWS_224:ECS Exec is disabled on every task (enable_execute_command = false), so there are no exec sessions to log; the exec channel would still use the CMK below.
  name = var.name_prefix

  setting {
    name  = "containerInsights"
    value = var.enable_container_insights ? "enabled" : "disabled"
  }

  # ECS Exec is not enabled on the tasks; should it ever be, its sessions are KMS-encrypted.
  configuration {
    execute_command_configuration {
      kms_key_id = var.kms_key_arn
      logging    = "DEFAULT"
    }
  }

  tags = var.tags
}

resource "aws_cloudwatch_log_group" "writer" {
  #checkov:skip=CKV_AWS_338:Operational JSON logs, not audit logs; retention is chosen per environment (log_retention_days).
  name              = "${var.log_group_name_prefix}writer"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

resource "aws_cloudwatch_log_group" "compactor" {
  #checkov:skip=CKV_AWS_338:Operational JSON logs, not audit logs; retention is chosen per environment (log_retention_days).
  name              = "${var.log_group_name_prefix}compactor"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
  tags              = var.tags
}

# No ingress at all (the health check runs inside the container); egress HTTPS only, to the AWS
# APIs (through NAT or VPC endpoints).
resource "aws_security_group" "tasks" {
  name        = "${var.name_prefix}-tasks"
  description = "Writer and compactor tasks: no ingress, HTTPS egress to AWS APIs"
  vpc_id      = var.vpc_id
  tags        = var.tags
}

resource "aws_vpc_security_group_egress_rule" "https" {
  security_group_id = aws_security_group.tasks.id
  description       = "HTTPS to AWS service endpoints"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

# ------------------------------------------------------------------ task definitions

locals {
  common_container = {
    image                  = local.image
    essential              = true
    readonlyRootFilesystem = true
    user                   = "10001:10001"
    stopTimeout            = 120
    linuxParameters        = { initProcessEnabled = true }
    mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
    portMappings           = []
    volumesFrom            = []
  }

  writer_environment = merge({
    WRITER_STREAM         = var.stream_name
    WRITER_TABLE          = var.events_table_uri
    WRITER_REJECTED_TABLE = var.rejected_table_uri
    WRITER_LEASE_TABLE    = var.lease_table_name
    WRITER_LOCK_TABLE     = var.lock_table_name
    WRITER_COMMIT_LOCK    = "dynamodb"
    WRITER_FLUSH_INTERVAL = var.writer_flush_interval
    WRITER_METRICS_PORT   = tostring(var.writer_metrics_port)
    LOG_FORMAT            = "json"
    RUST_LOG              = var.rust_log
    AWS_REGION            = local.region
  }, var.writer_extra_environment)

  compactor_environment = merge({
    COMPACTOR_TABLE       = var.events_table_uri
    COMPACTOR_COMMIT_LOCK = "dynamodb"
    COMPACTOR_LOCK_TABLE  = var.lock_table_name
    LOG_FORMAT            = "json"
    RUST_LOG              = var.rust_log
    AWS_REGION            = local.region
  }, var.compactor_extra_environment)

  writer_container = merge(local.common_container, {
    name    = "writer"
    command = ["writer", "run"]
    environment = [
      for k in sort(keys(local.writer_environment)) : { name = k, value = local.writer_environment[k] }
    ]
    healthCheck = {
      command     = ["CMD-SHELL", "curl -fsS -o /dev/null http://localhost:${var.writer_metrics_port}/healthz || exit 1"]
      interval    = 30
      timeout     = 5
      retries     = 3
      startPeriod = 60
    }
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.writer.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "writer"
        mode                  = "non-blocking"
        max-buffer-size       = "25m"
      }
    }
  })

  compactor_container = merge(local.common_container, {
    name    = "compactor"
    command = ["compactor", "run"]
    environment = [
      for k in sort(keys(local.compactor_environment)) : { name = k, value = local.compactor_environment[k] }
    ]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.compactor.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "compactor"
      }
    }
  })
}

resource "aws_ecs_task_definition" "writer" {
  family                   = local.writer_family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.writer_cpu
  memory                   = var.writer_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.writer.arn
  container_definitions    = jsonencode([local.writer_container])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "tmp"
  }

  tags = var.tags
}

resource "aws_ecs_task_definition" "compactor" {
  family                   = local.compactor_family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.compactor_cpu
  memory                   = var.compactor_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.compactor.arn
  container_definitions    = jsonencode([local.compactor_container])

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  volume {
    name = "tmp"
  }

  tags = var.tags
}

# ------------------------------------------------------------------ writer service

resource "aws_ecs_service" "writer" {
  name                               = "writer"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.writer.arn
  desired_count                      = var.writer_desired_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"
  enable_execute_command             = false

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = var.assign_public_ip
  }

  tags = var.tags
}

# ------------------------------------------------------------------ compactor schedule

resource "aws_scheduler_schedule" "compactor" {
  name                         = local.compactor_schedule_name
  description                  = "Runs the compactor (optimize, checkpoint, vacuum) on the events table."
  schedule_expression          = var.compactor_schedule_expression
  schedule_expression_timezone = var.compactor_schedule_timezone
  state                        = var.compactor_schedule_enabled ? "ENABLED" : "DISABLED"
  kms_key_arn                  = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_ecs_cluster.this.arn
    role_arn = aws_iam_role.scheduler.arn

    ecs_parameters {
      task_definition_arn     = aws_ecs_task_definition.compactor.arn_without_revision
      launch_type             = "FARGATE"
      platform_version        = "LATEST"
      task_count              = 1
      enable_ecs_managed_tags = true
      propagate_tags          = "TASK_DEFINITION"

      network_configuration {
        subnets          = var.subnet_ids
        security_groups  = [aws_security_group.tasks.id]
        assign_public_ip = var.assign_public_ip
      }
    }

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 2
    }
  }
}
