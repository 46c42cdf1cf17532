data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  image = "${aws_ecr_repository.this.repository_url}:${var.image_tag}"

  writer_family = "${var.name_prefix}-writer"

  # writer_mode = "scheduled": no ECS service; EventBridge Scheduler starts one task every
  # writer_schedule_minutes that reads what arrived since the last run and exits when idle.
  writer_scheduled     = var.writer_mode == "scheduled"
  writer_schedule_name = "${var.name_prefix}-writer"
  writer_schedule_arn  = "arn:${local.partition}:scheduler:${local.region}:${local.account_id}:schedule/${var.name_prefix}/${local.writer_schedule_name}"
  # A run stops once every shard was read to its tip and committed (--exit-when-caught-up:
  # at 1,000 events/h a record arrives every ~4 s, so an idle gap alone rarely ends a run),
  # or after an idle gap, whichever comes first. --max-run-time caps it one minute short of
  # the period: a backlog that takes longer still ends each run before the next one starts.
  writer_command = local.writer_scheduled ? [
    "writer", "run", "--exit-when-caught-up", "--exit-when-idle", var.writer_exit_when_idle,
    "--max-run-time", "${var.writer_schedule_minutes - 1}m",
  ] : ["writer", "run"]

  # Both Delta tables need maintenance (optimize, checkpoint, vacuum): one compactor task
  # definition and one schedule per table (the compactor binary takes one --table).
  compactor_tables = {
    events   = var.events_table_uri
    rejected = var.rejected_table_uri
  }
  compactor_families      = { for k, _ in local.compactor_tables : k => "${var.name_prefix}-compactor-${k}" }
  compactor_schedule_arns = { for k, _ in local.compactor_tables : k => "arn:${local.partition}:scheduler:${local.region}:${local.account_id}:schedule/${var.name_prefix}/${var.name_prefix}-compactor-${k}" }

  # The writer's own shutdown deadline (commit, checkpoint, release leases) must end before ECS
  # sends SIGKILL at stopTimeout; 15 s are left for process exit and the log driver's flush.
  writer_shutdown_deadline_seconds = var.writer_stop_timeout_seconds - 15

  # Dedupe key index budget (events table; the rejected table's index is small and bounded
  # separately) as a share of the task memory; the rest is for Arrow batches, Parquet encoding
  # and the object-store buffers.
  writer_dedupe_memory_mb = coalesce(var.writer_dedupe_memory_mb, floor(var.writer_memory * 0.4))
}

# Resources that used to have a single instance (before the rejected table got its compactor).
moved {
  from = aws_ecs_task_definition.compactor
  to   = aws_ecs_task_definition.compactor["events"]
}

moved {
  from = aws_scheduler_schedule.compactor
  to   = aws_scheduler_schedule.compactor["events"]
}

# The writer service became optional (writer_mode = "scheduled" has none).
moved {
  from = aws_ecs_service.writer
  to   = aws_ecs_service.writer[0]
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

# Never expires a tagged image: the task definitions reference images by tag, and the image in
# service (or the one a rollback returns to) can be any age. Untagged images (failed or
# superseded pushes; tags are immutable) go after a day. Optionally, tagged images beyond the
# newest ecr_tagged_image_retention_count are expired - only set it if no environment ever runs
# an image older than that many pushes.
resource "aws_ecr_lifecycle_policy" "this" {
  repository = aws_ecr_repository.this.name
  policy = jsonencode({
    rules = concat(
      [
        {
          rulePriority = 1
          description  = "Expire untagged images after 1 day"
          selection = {
            tagStatus   = "untagged"
            countType   = "sinceImagePushed"
            countUnit   = "days"
            countNumber = 1
          }
          action = { type = "expire" }
        },
      ],
      var.ecr_tagged_image_retention_count == null ? [] : [
        {
          rulePriority = 2
          description  = "Keep the newest ${var.ecr_tagged_image_retention_count} tagged images"
          selection = {
            tagStatus      = "tagged"
            tagPatternList = ["*"]
            countType      = "imageCountMoreThan"
            countNumber    = var.ecr_tagged_image_retention_count
          }
          action = { type = "expire" }
        },
      ],
    )
  })
}

# ------------------------------------------------------------------ cluster, logs, network

resource "aws_ecs_cluster" "this" {
  #checkov:skip=CKV_AWS_224:ECS Exec is disabled on every task (enable_execute_command = false), so there are no exec sessions to log; the exec channel would still use the CMK below.
  #checkov:skip=CKV_AWS_65:Container Insights is on by default (enable_container_insights); only the low-volume profile turns it off: its one consumer, the writer service's RunningTaskCount alarm, does not exist with a scheduled writer, and its metrics (~$0.30 each a month) would cost more than that data path.
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
    stopTimeout            = var.writer_stop_timeout_seconds
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
    WRITER_DEDUPE_KEYS    = var.writer_dedupe_keys
    WRITER_METRICS_PORT   = tostring(var.writer_metrics_port)
    # Fits inside the container's stopTimeout (ECS SIGKILLs after it).
    WRITER_SHUTDOWN_DEADLINE = "${local.writer_shutdown_deadline_seconds}s"
    # Derived from the task memory: the binary's default (1 GiB) does not fit a 1 GiB task.
    WRITER_DEDUPE_MEMORY_MB = tostring(local.writer_dedupe_memory_mb)
    LOG_FORMAT              = "json"
    RUST_LOG                = var.rust_log
    AWS_REGION              = local.region
  }, var.writer_extra_environment)

  compactor_environment = { for k, uri in local.compactor_tables : k => merge({
    COMPACTOR_TABLE       = uri
    COMPACTOR_COMMIT_LOCK = "dynamodb"
    COMPACTOR_LOCK_TABLE  = var.lock_table_name
    LOG_FORMAT            = "json"
    RUST_LOG              = var.rust_log
    AWS_REGION            = local.region
  }, var.compactor_extra_environment) }

  # awslogs in blocking mode: the alarms count log lines (metric filters), and non-blocking
  # mode drops lines when its buffer is full. Blocking means a CloudWatch Logs outage stalls
  # the program's stdout instead - the writer then stops committing (and alarms), nothing is lost.
  writer_container = merge(local.common_container, {
    name    = "writer"
    command = local.writer_command
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
        mode                  = "blocking"
      }
    }
  })

  compactor_containers = { for k, env in local.compactor_environment : k => merge(local.common_container, {
    name        = "compactor"
    command     = ["compactor", "run"]
    stopTimeout = 120
    environment = [
      for name in sort(keys(env)) : { name = name, value = env[name] }
    ]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        awslogs-group         = aws_cloudwatch_log_group.compactor.name
        awslogs-region        = local.region
        awslogs-stream-prefix = "compactor-${k}"
        mode                  = "blocking"
      }
    }
  }) }
}

resource "aws_ecs_task_definition" "writer" {
  family                   = local.writer_family
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.writer_cpu
  memory                   = var.writer_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = var.writer_role_arn
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
  for_each                 = local.compactor_containers
  family                   = local.compactor_families[each.key]
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.compactor_cpu
  memory                   = var.compactor_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = var.compactor_role_arn
  container_definitions    = jsonencode([each.value])

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
  count = local.writer_scheduled ? 0 : 1

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
  # apply fails when the new tasks never become healthy (e.g. a crash loop the circuit breaker
  # rolls back), instead of reporting success with nothing ingesting.
  wait_for_steady_state = var.wait_for_steady_state

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  # The task count is owned by aws_appautoscaling_target.writer (min = writer_desired_count).
  lifecycle {
    ignore_changes = [desired_count]
  }

  network_configuration {
    subnets          = var.subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = var.assign_public_ip
  }

  tags = var.tags
}

# ------------------------------------------------------------------ writer schedule (writer_mode = "scheduled")

# One `writer run --exit-when-idle` task every writer_schedule_minutes. Overlapping runs are
# safe (shard leases in DynamoDB: a shard is read by one run at a time, the table's txn
# versions fence the rest) and do not pile up: a run that starts while the previous one still
# holds the shard gets nothing to read (with one shard no lease is stolen) and exits after
# writer_exit_when_idle. They are only wasteful (a few task-seconds each), so
# writer_exit_when_idle must stay well below the period; --max-run-time (period - 1 minute)
# ends a run that never sees an idle gap. If runs routinely hit that cap, the traffic has
# outgrown this mode: switch to writer_mode = "service".
resource "aws_scheduler_schedule" "writer" {
  count                        = local.writer_scheduled ? 1 : 0
  name                         = local.writer_schedule_name
  group_name                   = aws_scheduler_schedule_group.this.name
  description                  = "Runs the writer every ${var.writer_schedule_minutes} minutes until its shards are idle for ${var.writer_exit_when_idle} (low-volume mode)."
  schedule_expression          = "rate(${var.writer_schedule_minutes} minutes)"
  schedule_expression_timezone = "UTC"
  state                        = "ENABLED"
  kms_key_arn                  = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = aws_ecs_cluster.this.arn
    role_arn = aws_iam_role.scheduler.arn

    ecs_parameters {
      task_definition_arn     = aws_ecs_task_definition.writer.arn_without_revision
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

    # A start that failed is retried within half a period; later the next run takes over.
    retry_policy {
      maximum_event_age_in_seconds = var.writer_schedule_minutes * 30
      maximum_retry_attempts       = 1
    }
  }
}

# ------------------------------------------------------------------ compactor schedule

# Own schedule group: its AWS/Scheduler metrics (ScheduleGroup dimension) are the stack's only,
# so the monitoring module can alarm on failed compactor invocations.
resource "aws_scheduler_schedule_group" "this" {
  name = var.name_prefix
  tags = var.tags
}

resource "aws_scheduler_schedule" "compactor" {
  for_each                     = aws_ecs_task_definition.compactor
  name                         = "${var.name_prefix}-compactor-${each.key}"
  group_name                   = aws_scheduler_schedule_group.this.name
  description                  = "Runs the compactor (optimize, checkpoint, vacuum) on the ${each.key} table."
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
      task_definition_arn     = each.value.arn_without_revision
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
