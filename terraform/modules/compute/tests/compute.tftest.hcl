# Offline unit tests (mock provider): run with `terraform test` in modules/compute.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "111122223333" }
  }
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws" }
  }
  mock_resource "aws_ecr_repository" {
    defaults = {
      arn            = "arn:aws:ecr:eu-west-1:111122223333:repository/events-lake-test"
      repository_url = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/events-lake-test"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:/events-lake/events-lake-test/x" }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = { arn = "arn:aws:ecs:eu-west-1:111122223333:cluster/events-lake-test" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::111122223333:role/events-lake-test-x" }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = {
      arn                  = "arn:aws:ecs:eu-west-1:111122223333:task-definition/events-lake-test-compactor:1"
      arn_without_revision = "arn:aws:ecs:eu-west-1:111122223333:task-definition/events-lake-test-compactor"
    }
  }
}

variables {
  name_prefix               = "events-lake-test"
  kms_key_arn               = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"
  stream_name               = "events-lake-test-events"
  stream_arn                = "arn:aws:kinesis:eu-west-1:111122223333:stream/events-lake-test-events"
  lake_bucket_name          = "events-lake-test-lake-111122223333"
  lake_bucket_arn           = "arn:aws:s3:::events-lake-test-lake-111122223333"
  events_table_key_prefix   = "lake/events"
  rejected_table_key_prefix = "lake/events_rejected"
  events_table_uri          = "s3://events-lake-test-lake-111122223333/lake/events"
  rejected_table_uri        = "s3://events-lake-test-lake-111122223333/lake/events_rejected"
  lock_table_name           = "events-lake-test-delta-lock"
  lock_table_arn            = "arn:aws:dynamodb:eu-west-1:111122223333:table/events-lake-test-delta-lock"
  lease_table_name          = "events-lake-test-shard-leases"
  lease_table_arn           = "arn:aws:dynamodb:eu-west-1:111122223333:table/events-lake-test-shard-leases"
  vpc_id                    = "vpc-0123456789abcdef0"
  subnet_ids                = ["subnet-0123456789abcdef0"]
  image_tag                 = "abc123"
  metrics_namespace         = "EventsLake/test"
  log_group_name_prefix     = "/events-lake/events-lake-test/"
  writer_desired_count      = 2
}

run "writer_container_contract" {
  assert {
    condition     = jsondecode(aws_ecs_task_definition.writer.container_definitions)[0].command == ["writer", "run"]
    error_message = "The writer runs `writer run`."
  }
  assert {
    condition = {
      for e in jsondecode(aws_ecs_task_definition.writer.container_definitions)[0].environment : e.name => e.value
      } == {
      WRITER_STREAM         = "events-lake-test-events"
      WRITER_TABLE          = "s3://events-lake-test-lake-111122223333/lake/events"
      WRITER_REJECTED_TABLE = "s3://events-lake-test-lake-111122223333/lake/events_rejected"
      WRITER_LEASE_TABLE    = "events-lake-test-shard-leases"
      WRITER_LOCK_TABLE     = "events-lake-test-delta-lock"
      WRITER_COMMIT_LOCK    = "dynamodb"
      WRITER_FLUSH_INTERVAL = "30s"
      WRITER_METRICS_PORT   = "9898"
      LOG_FORMAT            = "json"
      RUST_LOG              = "info,buoyant_kernel=warn,delta_kernel=warn,deltalake_core=warn"
      AWS_REGION            = "eu-west-1"
    }
    error_message = "The writer environment must follow the contract."
  }
  assert {
    condition     = strcontains(jsondecode(aws_ecs_task_definition.writer.container_definitions)[0].healthCheck.command[1], "http://localhost:9898/healthz")
    error_message = "The health check must probe /healthz on WRITER_METRICS_PORT."
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.writer.container_definitions)[0].image == "111122223333.dkr.ecr.eu-west-1.amazonaws.com/events-lake-test:abc123"
    error_message = "The image comes from the environment's ECR repository."
  }
  assert {
    condition     = aws_ecs_service.writer.desired_count == 2 && aws_ecs_service.writer.launch_type == "FARGATE"
    error_message = "The writer is a Fargate service with the desired count."
  }
  assert {
    condition     = !aws_ecs_service.writer.network_configuration[0].assign_public_ip
    error_message = "No public IP by default."
  }
}

run "compactor_scheduled_task_contract" {
  assert {
    condition     = jsondecode(aws_ecs_task_definition.compactor.container_definitions)[0].command == ["compactor", "run"]
    error_message = "The compactor runs `compactor run`."
  }
  assert {
    condition = {
      for e in jsondecode(aws_ecs_task_definition.compactor.container_definitions)[0].environment : e.name => e.value
      } == {
      COMPACTOR_TABLE       = "s3://events-lake-test-lake-111122223333/lake/events"
      COMPACTOR_COMMIT_LOCK = "dynamodb"
      COMPACTOR_LOCK_TABLE  = "events-lake-test-delta-lock"
      LOG_FORMAT            = "json"
      RUST_LOG              = "info,buoyant_kernel=warn,delta_kernel=warn,deltalake_core=warn"
      AWS_REGION            = "eu-west-1"
    }
    error_message = "The compactor environment must follow the contract."
  }
  assert {
    condition     = aws_scheduler_schedule.compactor.schedule_expression == "rate(6 hours)"
    error_message = "Default schedule is every 6 hours."
  }
  assert {
    condition     = aws_scheduler_schedule.compactor.target[0].ecs_parameters[0].launch_type == "FARGATE"
    error_message = "The schedule starts a Fargate task."
  }
}

run "logs_encrypted" {
  assert {
    condition = alltrue([
      for g in [aws_cloudwatch_log_group.writer, aws_cloudwatch_log_group.compactor] :
      g.kms_key_id == var.kms_key_arn && g.retention_in_days == 30
    ])
    error_message = "Log groups must be KMS-encrypted with a retention."
  }
  assert {
    condition     = aws_ecr_repository.this.encryption_configuration[0].encryption_type == "KMS"
    error_message = "ECR repository must be KMS-encrypted."
  }
}

run "least_privilege_policies" {
  # Every data statement names resources; "*" only for actions without resource-level permissions.
  assert {
    condition = alltrue(flatten([
      for p in [aws_iam_role_policy.writer.policy, aws_iam_role_policy.compactor.policy, aws_iam_role_policy.execution.policy, aws_iam_role_policy.scheduler.policy] : [
        for s in jsondecode(p).Statement :
        s.Resource != "*" || contains([["cloudwatch:PutMetricData"], ["ecr:GetAuthorizationToken"]], s.Action)
      ]
    ]))
    error_message = "Only PutMetricData and GetAuthorizationToken may use Resource \"*\"."
  }
  assert {
    condition = alltrue(flatten([
      for p in [aws_iam_role_policy.writer.policy, aws_iam_role_policy.compactor.policy] : [
        for s in jsondecode(p).Statement :
        s.Condition.StringEquals["cloudwatch:namespace"] == "EventsLake/test" if s.Action == ["cloudwatch:PutMetricData"]
      ]
    ]))
    error_message = "PutMetricData must be limited to the environment namespace."
  }
  assert {
    condition = alltrue(flatten([
      for p in [aws_iam_role_policy.writer.policy, aws_iam_role_policy.compactor.policy] : [
        for s in jsondecode(p).Statement : [for a in s.Action : !strcontains(a, "*")]
      ]
    ]))
    error_message = "Task roles must not use wildcard actions."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.writer.policy).Statement : s.Resource if s.Sid == "ReadOwnStream"
    ]) == [var.stream_arn]
    error_message = "Kinesis access is limited to the stream."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.writer.policy).Statement : s.Resource if s.Sid == "ReadWriteTableObjects"
      ]) == [
      "arn:aws:s3:::events-lake-test-lake-111122223333/lake/events/*",
      "arn:aws:s3:::events-lake-test-lake-111122223333/lake/events_rejected/*",
    ]
    error_message = "S3 object access is limited to the table prefixes."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.writer.policy).Statement : s.Resource if s.Sid == "LockAndLeaseItems"
    ]) == [var.lock_table_arn, var.lease_table_arn]
    error_message = "DynamoDB access is limited to the lock and lease tables."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.compactor.policy).Statement : s.Resource if s.Sid == "CommitLockItems"
    ]) == [var.lock_table_arn]
    error_message = "The compactor only touches the lock table."
  }
  assert {
    condition = alltrue([
      for s in jsondecode(aws_iam_role_policy.compactor.policy).Statement :
      !strcontains(jsonencode(s.Resource), "kinesis") && !strcontains(jsonencode(s.Resource), "shard-leases")
    ])
    error_message = "The compactor has no access to the stream or the lease table."
  }
}
