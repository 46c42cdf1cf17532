# Least-privilege roles of the ECS plumbing. Every action names the environment's resources;
# the only "*" resource is ecr:GetAuthorizationToken (no resource-level permissions). The task
# roles of the writer and compactor (what the programs may do) are in modules/iam.

locals {
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

# ------------------------------------------------------------------ scheduler role (starts the compactor, and the scheduled writer)

resource "aws_iam_role" "scheduler" {
  name        = "${var.name_prefix}-compactor-scheduler"
  description = "EventBridge Scheduler starts the compactor tasks (and the writer task in writer_mode scheduled)."
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
    Statement = concat([
      {
        Sid    = "RunCompactorTask"
        Effect = "Allow"
        Action = ["ecs:RunTask"]
        Resource = flatten([
          for td in aws_ecs_task_definition.compactor : [td.arn_without_revision, "${td.arn_without_revision}:*"]
        ])
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
        Resource  = [aws_iam_role.execution.arn, var.compactor_role_arn]
        Condition = { StringEquals = { "iam:PassedToService" = "ecs-tasks.amazonaws.com" } }
      },
      {
        # The schedules are encrypted with the environment's key; Scheduler decrypts them as this role.
        Sid       = "DecryptOwnSchedules"
        Effect    = "Allow"
        Action    = ["kms:Decrypt"]
        Resource  = [var.kms_key_arn]
        Condition = { StringEquals = { "kms:EncryptionContext:aws:scheduler:schedule:arn" = concat(values(local.compactor_schedule_arns), local.writer_scheduled ? [local.writer_schedule_arn] : []) } }
      },
      ], local.writer_scheduled ? [
      {
        Sid       = "RunWriterTask"
        Effect    = "Allow"
        Action    = ["ecs:RunTask"]
        Resource  = [aws_ecs_task_definition.writer.arn_without_revision, "${aws_ecs_task_definition.writer.arn_without_revision}:*"]
        Condition = { ArnEquals = { "ecs:cluster" = aws_ecs_cluster.this.arn } }
      },
      {
        Sid       = "PassWriterRoles"
        Effect    = "Allow"
        Action    = ["iam:PassRole"]
        Resource  = [aws_iam_role.execution.arn, var.writer_role_arn]
        Condition = { StringEquals = { "iam:PassedToService" = "ecs-tasks.amazonaws.com" } }
      },
    ] : [])
  })
}
