# Identities that touch the data plane, least privilege: the writer and compactor task roles
# (assumed by ECS tasks), and managed policies for producers and analysts (attach them to the
# organisation's own roles/groups). Every data action names the environment's resources; the
# only "*" resource is cloudwatch:PutMetricData (no resource-level permissions), limited to one
# namespace by condition.
#
# integration-tests/test_terraform_iam.py applies this module (through terraform/e2e) to moto
# with IAM enforcement and runs the real binaries under these roles.

data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.name
  partition  = data.aws_partition.current.partition

  table_key_prefixes = {
    events   = var.events_table_key_prefix
    rejected = var.rejected_table_key_prefix
  }
  table_objects_arns = [for p in values(local.table_key_prefixes) : "${var.lake_bucket_arn}/${p}/*"]
  # ListBucket only for listings of the tables (every principal here reads both tables).
  table_list_prefixes = flatten([for p in values(local.table_key_prefixes) : [p, "${p}/*"]])

  # KMS calls made on the principals' behalf by these services only.
  kms_via = { for s in ["s3", "kinesis", "dynamodb", "athena", "glue"] : s => "${s}.${local.region}.amazonaws.com" }

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

  table_objects_statement = {
    # AbortMultipartUpload: large data files are uploaded in parts; a failed upload is aborted.
    Sid      = "ReadWriteTableObjects"
    Effect   = "Allow"
    Action   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
    Resource = local.table_objects_arns
  }

  list_tables_statement = {
    Sid       = "ListTablePrefixes"
    Effect    = "Allow"
    Action    = ["s3:ListBucket"]
    Resource  = [var.lake_bucket_arn]
    Condition = { StringLike = { "s3:prefix" = local.table_list_prefixes } }
  }

  lock_item_actions = [
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
    "dynamodb:DescribeTable",
  ]
}

# ------------------------------------------------------------------ writer task role

resource "aws_iam_role" "writer" {
  name               = "${var.name_prefix}-writer"
  description        = "Writer task: reads the stream, writes the events and rejected Delta tables."
  assume_role_policy = local.ecs_tasks_trust
  tags               = var.tags
}

# No dynamodb:CreateTable: the lock and lease tables are Terraform's; the writer only
# describes them at start (storage/src/aws.rs ensure_table describes first).
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
      local.table_objects_statement,
      local.list_tables_statement,
      {
        Sid      = "LockAndLeaseItems"
        Effect   = "Allow"
        Action   = concat(local.lock_item_actions, ["dynamodb:Scan"])
        Resource = [var.lock_table_arn, var.lease_table_arn]
      },
      {
        Sid      = "UseEnvironmentKeyThroughDataServices"
        Effect   = "Allow"
        Action   = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
        Resource = [var.kms_key_arn]
        Condition = {
          StringEquals = { "kms:ViaService" = [local.kms_via.s3, local.kms_via.kinesis, local.kms_via.dynamodb] }
        }
      },
      local.put_metric_data_statement,
    ]
  })
}

# ------------------------------------------------------------------ compactor task role

resource "aws_iam_role" "compactor" {
  name               = "${var.name_prefix}-compactor"
  description        = "Compactor task: optimizes, checkpoints and vacuums the events and rejected Delta tables."
  assume_role_policy = local.ecs_tasks_trust
  tags               = var.tags
}

resource "aws_iam_role_policy" "compactor" {
  name = "compactor"
  role = aws_iam_role.compactor.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      local.table_objects_statement,
      local.list_tables_statement,
      {
        Sid      = "CommitLockItems"
        Effect   = "Allow"
        Action   = local.lock_item_actions
        Resource = [var.lock_table_arn]
      },
      {
        Sid       = "UseEnvironmentKeyThroughDataServices"
        Effect    = "Allow"
        Action    = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
        Resource  = [var.kms_key_arn]
        Condition = { StringEquals = { "kms:ViaService" = [local.kms_via.s3, local.kms_via.dynamodb] } }
      },
      local.put_metric_data_statement,
    ]
  })
}

# ------------------------------------------------------------------ producers

resource "aws_iam_policy" "producer" {
  name        = "${var.name_prefix}-producer"
  description = "Put events into the ${var.name_prefix} stream (attach to producer roles)."
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        # DescribeStreamSummary/ListShards: the KPL and most SDK producers look the stream up.
        Sid      = "PutToOwnStream"
        Effect   = "Allow"
        Action   = ["kinesis:PutRecord", "kinesis:PutRecords", "kinesis:DescribeStreamSummary", "kinesis:ListShards"]
        Resource = [var.stream_arn]
      },
      {
        # The stream is SSE-KMS: Kinesis generates a data key as the producer.
        Sid       = "EncryptThroughKinesis"
        Effect    = "Allow"
        Action    = ["kms:GenerateDataKey"]
        Resource  = [var.kms_key_arn]
        Condition = { StringEquals = { "kms:ViaService" = local.kms_via.kinesis } }
      },
    ]
  })
  tags = var.tags
}

# ------------------------------------------------------------------ analysts (Athena, read-only lake)

locals {
  glue_catalog_arn   = "arn:${local.partition}:glue:${local.region}:${local.account_id}:catalog"
  glue_database_arn  = "arn:${local.partition}:glue:${local.region}:${local.account_id}:database/${var.glue_database_name}"
  glue_tables_arn    = "arn:${local.partition}:glue:${local.region}:${local.account_id}:table/${var.glue_database_name}/*"
  athena_workgroup   = var.athena_workgroup_name == null ? null : "arn:${local.partition}:athena:${local.region}:${local.account_id}:workgroup/${var.athena_workgroup_name}"
  analyst_s3_objects = [for p in values(local.table_key_prefixes) : "${var.lake_bucket_arn}/${p}/*"]
}

resource "aws_iam_policy" "analyst" {
  count       = var.athena_workgroup_name == null ? 0 : 1
  name        = "${var.name_prefix}-analyst"
  description = "Query the ${var.name_prefix} lake with Athena in its workgroup, read-only (attach to analyst roles)."
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid    = "QueryInOwnWorkgroup"
        Effect = "Allow"
        Action = [
          "athena:StartQueryExecution",
          "athena:StopQueryExecution",
          "athena:GetQueryExecution",
          "athena:GetQueryResults",
          "athena:GetQueryResultsStream",
          "athena:ListQueryExecutions",
          "athena:BatchGetQueryExecution",
          "athena:GetWorkGroup",
          "athena:ListNamedQueries",
          "athena:GetNamedQuery",
          "athena:BatchGetNamedQuery",
        ]
        Resource = [local.athena_workgroup]
      },
      {
        Sid      = "ReadCatalog"
        Effect   = "Allow"
        Action   = ["glue:GetDatabase", "glue:GetDatabases", "glue:GetTable", "glue:GetTables", "glue:GetPartition", "glue:GetPartitions"]
        Resource = [local.glue_catalog_arn, local.glue_database_arn, local.glue_tables_arn]
      },
      {
        Sid      = "ReadLakeTables"
        Effect   = "Allow"
        Action   = ["s3:GetObject"]
        Resource = local.analyst_s3_objects
      },
      merge(local.list_tables_statement, { Sid = "ListLakeTables" }),
      {
        Sid      = "QueryResults"
        Effect   = "Allow"
        Action   = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]
        Resource = ["${var.athena_results_bucket_arn}/results/*"]
      },
      {
        Sid      = "ListQueryResults"
        Effect   = "Allow"
        Action   = ["s3:ListBucket", "s3:GetBucketLocation"]
        Resource = [var.athena_results_bucket_arn]
      },
      {
        # Lake objects and results are SSE-KMS with the environment key: S3 decrypts (and
        # encrypts results) as the analyst.
        Sid       = "UseEnvironmentKeyThroughS3"
        Effect    = "Allow"
        Action    = ["kms:Decrypt", "kms:GenerateDataKey", "kms:DescribeKey"]
        Resource  = [var.kms_key_arn]
        Condition = { StringEquals = { "kms:ViaService" = [local.kms_via.s3, local.kms_via.athena] } }
      },
    ]
  })
  tags = var.tags

  lifecycle {
    precondition {
      condition     = var.athena_results_bucket_arn != null
      error_message = "athena_results_bucket_arn is required with athena_workgroup_name."
    }
  }
}
