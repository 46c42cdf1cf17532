# Least-privilege roles. Every data action names the environment's resources; the only "*"
# resources are actions that have no resource-level permissions (ecr:GetAuthorizationToken,
# cloudwatch:PutMetricData - the latter limited to one namespace by condition).

locals {
  events_objects_arn   = "${var.lake_bucket_arn}/${var.events_table_key_prefix}/*"
  rejected_objects_arn = "${var.lake_bucket_arn}/${var.rejected_table_key_prefix}/*"

  # KMS calls made on the tasks' behalf by these services only.
  kms_via_services = [for s in ["s3", "kinesis", "dynamodb"] : "${s}.${local.region}.amazonaws.com"]

  ecs_tasks_trust = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "ecs-tasks.amazonaws.com" }
        Action    = "sts:AssumeRole"
        Condition = {
          StringEquals = { "aws:SourceAccount" = local.account_id }
          ArnLike      = { "aws:SourceArn" = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:*" }
        }
      },
    ]
  })

  put_metric_data_statement = {
    Sid       = "PublishMetricsToOwnNamespace"
    Effect    = "Allow"
    Action    = ["cloudwatch:PutMetricData"]
    Resource  = "*"
    Condition = { StringEquals = { "cloudwatch:namespace" = var.metrics_namespace } }
  }

  kms_statement = {
    Sid      = "UseEnvironmentKeyThroughDataServices"
    Effect   = "Allow"
    Action   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
    Resource = [var.kms_key_arn]
    Condition = {
      StringEquals = { "kms:ViaService" = local.kms_via_services }
    }
  }
}

# ------------------------------------------------------------------ task execution role (image pull, logs)

resource "aws_iam_role" "execution" {
  name               = "${var.name_prefix}-task-execution"
  description        = "ECS pulls the image and ships the logs of the writer and compactor tasks."
  assume_role_policy = local.ecs_tasks_trust
  tags               = var.tags
}

resource "aws_iam_role_policy" "execution" {
  name = "pull-image-and-write-logs"
  role = aws_iam_role.execution.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "EcrLogin"
        Effect   = "Allow"
        Action   = ["ecr:GetAuthorizationToken"]
        Resource = "*"
      },
      {
        Sid      = "PullOwnImage"
        Effect   = "Allow"
        Action   = ["ecr:BatchCheckLayerAvailability", "ecr:GetDownloadUrlForLayer", "ecr:BatchGetImage"]
        Resource = [aws_ecr_repository.this.arn]
      },
      {
        Sid      = "DecryptImageLayers"
        Effect   = "Allow"
        Action   = ["kms:Decrypt"]
        Resource = [var.kms_key_arn]
        Condition = {
          StringEquals = { "kms:ViaService" = "ecr.${local.region}.amazonaws.com" }
        }
      },
      {
        Sid    = "WriteOwnLogs"
        Effect = "Allow"
        Action = ["logs:CreateLogStream", "logs:PutLogEvents"]
        Resource = [
          "${aws_cloudwatch_log_group.writer.arn}:log-stream:*",
          "${aws_cloudwatch_log_group.compactor.arn}:log-stream:*",
        ]
      },
    ]
  })
}

# ------------------------------------------------------------------ writer task role

resource "aws_iam_role" "writer" {
  name               = "${var.name_prefix}-writer"
  description        = "Writer task: reads the stream, writes the events and rejected Delta tables."
  assume_role_policy = local.ecs_tasks_trust
  tags               = var.tags
}

resource "aws_iam_role_policy" "writer" {
  name = "writer"
  role = aws_iam_role.writer.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid    = "ReadOwnStream"
        Effect = "Allow"
        Action = [
          "kinesis:GetRecords",
          "kinesis:GetShardIterator",
          "kinesis:DescribeStream",
          "kinesis:DescribeStreamSummary",
          "kinesis:ListShards",
        ]
        Resource = [var.stream_arn]
      },
      {
        # AbortMultipartUpload: large data files are uploaded in parts; a failed upload is aborted.
        Sid      = "ReadWriteTableObjects"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
        Resource = [local.events_objects_arn, local.rejected_objects_arn]
      },
      {
        Sid      = "ListTablePrefixes"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [var.lake_bucket_arn]
        Condition = {
          StringLike = {
            "s3:prefix" = [
              var.events_table_key_prefix,
              "${var.events_table_key_prefix}/*",
              var.rejected_table_key_prefix,
              "${var.rejected_table_key_prefix}/*",
            ]
          }
        }
      },
      {
        Sid    = "LockAndLeaseItems"
        Effect = "Allow"
        Action = [
          "dynamodb:GetItem",
          "dynamodb:PutItem",
          "dynamodb:UpdateItem",
          "dynamodb:DeleteItem",
          "dynamodb:Query",
          "dynamodb:Scan",
          "dynamodb:DescribeTable",
        ]
        Resource = [var.lock_table_arn, var.lease_table_arn]
      },
      local.kms_statement,
      local.put_metric_data_statement,
    ]
  })
}

# ------------------------------------------------------------------ compactor task role

resource "aws_iam_role" "compactor" {
  name               = "${var.name_prefix}-compactor"
  description        = "Compactor task: optimizes, checkpoints and vacuums the events Delta table."
  assume_role_policy = local.ecs_tasks_trust
  tags               = var.tags
}

resource "aws_iam_role_policy" "compactor" {
  name = "compactor"
  role = aws_iam_role.compactor.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid      = "ReadWriteDeleteEventsTableObjects"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
        Resource = [local.events_objects_arn]
      },
      {
        Sid      = "ListEventsTablePrefix"
        Effect   = "Allow"
        Action   = ["s3:ListBucket"]
        Resource = [var.lake_bucket_arn]
        Condition = {
          StringLike = {
            "s3:prefix" = [var.events_table_key_prefix, "${var.events_table_key_prefix}/*"]
          }
        }
      },
      {
        Sid    = "CommitLockItems"
        Effect = "Allow"
        Action = [
          "dynamodb:GetItem",
          "dynamodb:PutItem",
          "dynamodb:UpdateItem",
          "dynamodb:DeleteItem",
          "dynamodb:Query",
          "dynamodb:DescribeTable",
        ]
        Resource = [var.lock_table_arn]
      },
      merge(local.kms_statement, {
        Condition = {
          StringEquals = { "kms:ViaService" = ["s3.${local.region}.amazonaws.com", "dynamodb.${local.region}.amazonaws.com"] }
        }
      }),
      local.put_metric_data_statement,
    ]
  })
}

# ------------------------------------------------------------------ scheduler role (starts the compactor)

resource "aws_iam_role" "scheduler" {
  name        = "${var.name_prefix}-compactor-scheduler"
  description = "EventBridge Scheduler starts the compactor task."
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Effect    = "Allow"
        Principal = { Service = "scheduler.amazonaws.com" }
        Action    = "sts:AssumeRole"
        Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
      },
    ]
  })
  tags = var.tags
}

resource "aws_iam_role_policy" "scheduler" {
  name = "run-compactor"
  role = aws_iam_role.scheduler.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid    = "RunCompactorTask"
        Effect = "Allow"
        Action = ["ecs:RunTask"]
        Resource = [
          aws_ecs_task_definition.compactor.arn_without_revision,
          "${aws_ecs_task_definition.compactor.arn_without_revision}:*",
        ]
        Condition = { ArnEquals = { "ecs:cluster" = aws_ecs_cluster.this.arn } }
      },
      {
        Sid       = "TagStartedTask"
        Effect    = "Allow"
        Action    = ["ecs:TagResource"]
        Resource  = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:task/${aws_ecs_cluster.this.name}/*"]
        Condition = { StringEquals = { "ecs:CreateAction" = "RunTask" } }
      },
      {
        Sid       = "PassCompactorRoles"
        Effect    = "Allow"
        Action    = ["iam:PassRole"]
        Resource  = [aws_iam_role.execution.arn, aws_iam_role.compactor.arn]
        Condition = { StringEquals = { "iam:PassedToService" = "ecs-tasks.amazonaws.com" } }
      },
      {
        # The schedule is encrypted with the environment's key; Scheduler decrypts it as this role.
        Sid       = "DecryptOwnSchedule"
        Effect    = "Allow"
        Action    = ["kms:Decrypt"]
        Resource  = [var.kms_key_arn]
        Condition = { StringEquals = { "kms:EncryptionContext:aws:scheduler:schedule:arn" = local.compactor_schedule_arn } }
      },
    ]
  })
}
