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
  mock_resource "aws_appautoscaling_policy" {
    defaults = { arn = "arn:aws:autoscaling:eu-west-1:111122223333:scalingPolicy:00000000-0000-0000-0000-000000000000:resource/ecs/service/events-lake-test/writer:policyName/events-lake-test-writer-lag" }
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
  writer_role_arn           = "arn:aws:iam::111122223333:role/events-lake-test-writer"
  compactor_role_arn        = "arn:aws:iam::111122223333:role/events-lake-test-compactor"
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
      WRITER_STREAM            = "events-lake-test-events"
      WRITER_TABLE             = "s3://events-lake-test-lake-111122223333/lake/events"
      WRITER_REJECTED_TABLE    = "s3://events-lake-test-lake-111122223333/lake/events_rejected"
      WRITER_LEASE_TABLE       = "events-lake-test-shard-leases"
      WRITER_LOCK_TABLE        = "events-lake-test-delta-lock"
      WRITER_COMMIT_LOCK       = "dynamodb"
      WRITER_FLUSH_INTERVAL    = "30s"
      WRITER_DEDUPE_KEYS       = "all"
      WRITER_METRICS_PORT      = "9898"
      WRITER_SHUTDOWN_DEADLINE = "105s"
      WRITER_DEDUPE_MEMORY_MB  = "819"
      LOG_FORMAT               = "json"
      RUST_LOG                 = "info,buoyant_kernel=warn,delta_kernel=warn,deltalake_core=warn"
      AWS_REGION               = "eu-west-1"
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
    condition     = aws_ecs_service.writer[0].desired_count == 2 && aws_ecs_service.writer[0].launch_type == "FARGATE"
    error_message = "The writer is a Fargate service with the desired count."
  }
  assert {
    condition     = aws_ecs_service.writer[0].wait_for_steady_state
    error_message = "apply must fail when the writer never becomes healthy (issue 13, defect 1 went unnoticed)."
  }
  assert {
    condition     = !aws_ecs_service.writer[0].network_configuration[0].assign_public_ip
    error_message = "No public IP by default."
  }
}

run "compactor_scheduled_task_contract" {
  assert {
    condition = alltrue([
      for td in aws_ecs_task_definition.compactor : jsondecode(td.container_definitions)[0].command == ["compactor", "run"]
    ])
    error_message = "The compactor runs `compactor run`."
  }
  assert {
    condition = {
      for e in jsondecode(aws_ecs_task_definition.compactor["events"].container_definitions)[0].environment : e.name => e.value
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
    condition     = aws_scheduler_schedule.compactor["events"].schedule_expression == "rate(1 hour)"
    error_message = "Default schedule is hourly (issue 14: the soak benchmark assumes an hourly compactor run at 1x)."
  }
  assert {
    condition     = alltrue([for sc in aws_scheduler_schedule.compactor : sc.target[0].ecs_parameters[0].launch_type == "FARGATE"])
    error_message = "The schedule starts a Fargate task."
  }
}

# Issue 13, defect 5: the rejected table was never compacted nor vacuumed.
run "compactor_maintains_both_tables" {
  assert {
    condition = toset([
      for td in aws_ecs_task_definition.compactor :
      one([for e in jsondecode(td.container_definitions)[0].environment : e.value if e.name == "COMPACTOR_TABLE"])
      ]) == toset([
      "s3://events-lake-test-lake-111122223333/lake/events",
      "s3://events-lake-test-lake-111122223333/lake/events_rejected",
    ])
    error_message = "There must be a compactor task for the events AND the rejected table."
  }
  assert {
    condition = alltrue([
      for k, td in aws_ecs_task_definition.compactor :
      aws_scheduler_schedule.compactor[k].state == "ENABLED" && td.task_role_arn == var.compactor_role_arn
    ])
    error_message = "Each table's compactor task must be scheduled and run as the compactor role."
  }
  assert {
    condition = toset(one([
      for s in jsondecode(aws_iam_role_policy.scheduler.policy).Statement : s.Resource if s.Sid == "RunCompactorTask"
      ])) == toset(flatten([
      for td in aws_ecs_task_definition.compactor : [td.arn_without_revision, "${td.arn_without_revision}:*"]
    ]))
    error_message = "The scheduler may run both compactor task definitions (and nothing else)."
  }
}

# Issue 13, defect 6: stopTimeout had no effect while the writer's deadline stayed 25 s.
run "writer_shutdown_fits_in_stop_timeout" {
  assert {
    condition = (
      tonumber(trimsuffix(one([for e in jsondecode(aws_ecs_task_definition.writer.container_definitions)[0].environment : e.value if e.name == "WRITER_SHUTDOWN_DEADLINE"]), "s")) + 10
      <= jsondecode(aws_ecs_task_definition.writer.container_definitions)[0].stopTimeout
    )
    error_message = "WRITER_SHUTDOWN_DEADLINE must end (with 10 s to spare) before ECS kills the writer at stopTimeout."
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.writer.container_definitions)[0].stopTimeout == 120
    error_message = "The writer gets Fargate's maximum stopTimeout by default."
  }
}

run "writer_shutdown_follows_a_shorter_stop_timeout" {
  variables {
    writer_stop_timeout_seconds = 60
  }
  assert {
    condition = (
      jsondecode(aws_ecs_task_definition.writer.container_definitions)[0].stopTimeout == 60 &&
      contains(jsondecode(aws_ecs_task_definition.writer.container_definitions)[0].environment, { name = "WRITER_SHUTDOWN_DEADLINE", value = "45s" })
    )
    error_message = "The shutdown deadline follows stopTimeout."
  }
}

# Issue 13, defect 2: the binary's default dedupe budget (1 GiB + 128 MiB) exceeded the dev task.
run "dedupe_budget_derived_from_task_memory" {
  variables {
    writer_memory = 1024
  }
  assert {
    condition     = contains(jsondecode(aws_ecs_task_definition.writer.container_definitions)[0].environment, { name = "WRITER_DEDUPE_MEMORY_MB", value = "409" })
    error_message = "A 1 GiB writer task gets a 409 MiB (40%) dedupe budget."
  }
  assert {
    condition = (
      tonumber(one([for e in jsondecode(aws_ecs_task_definition.writer.container_definitions)[0].environment : e.value if e.name == "WRITER_DEDUPE_MEMORY_MB"])) + 128
      <= aws_ecs_task_definition.writer.memory * 0.6
    )
    error_message = "Events + rejected (128 MiB) indexes must leave at least 40% of the task for Arrow/Parquet."
  }
}

run "dedupe_budget_override" {
  variables {
    writer_dedupe_memory_mb = 300
  }
  assert {
    condition     = contains(jsondecode(aws_ecs_task_definition.writer.container_definitions)[0].environment, { name = "WRITER_DEDUPE_MEMORY_MB", value = "300" })
    error_message = "writer_dedupe_memory_mb overrides the derived budget."
  }
}

# Issue 13, defect 6: non-blocking awslogs may drop the lines the metric filters count.
run "logs_are_never_dropped" {
  assert {
    condition = alltrue([
      for c in concat(
        jsondecode(aws_ecs_task_definition.writer.container_definitions),
        flatten([for td in aws_ecs_task_definition.compactor : jsondecode(td.container_definitions)]),
      ) : c.logConfiguration.logDriver == "awslogs" && c.logConfiguration.options.mode == "blocking"
    ])
    error_message = "awslogs must run in blocking mode (non-blocking drops lines the alarms count)."
  }
}

# Issue 13, defect 6: the lifecycle policy kept "the last 30 images" of any tag status, so 30
# pushes without a deploy expired the image in service.
run "ecr_lifecycle_never_expires_tagged_images" {
  assert {
    condition = alltrue([
      for r in jsondecode(aws_ecr_lifecycle_policy.this.policy).rules : r.selection.tagStatus == "untagged"
    ])
    error_message = "By default only untagged images may expire (the image in service is tagged)."
  }
  assert {
    condition     = length(jsondecode(aws_ecr_lifecycle_policy.this.policy).rules) >= 1
    error_message = "Untagged images must expire."
  }
}

run "ecr_lifecycle_optional_tagged_cap" {
  variables {
    ecr_tagged_image_retention_count = 100
  }
  assert {
    condition = anytrue([
      for r in jsondecode(aws_ecr_lifecycle_policy.this.policy).rules :
      r.selection.tagStatus == "tagged" && r.selection.countType == "imageCountMoreThan" && r.selection.countNumber == 100
    ])
    error_message = "The opt-in cap keeps the newest N tagged images."
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

run "least_privilege_plumbing_policies" {
  assert {
    condition = alltrue(flatten([
      for p in [aws_iam_role_policy.execution.policy, aws_iam_role_policy.scheduler.policy] : [
        for s in jsondecode(p).Statement :
        s.Resource != "*" || s.Action == ["ecr:GetAuthorizationToken"]
      ]
    ]))
    error_message = "Only GetAuthorizationToken may use Resource \"*\"."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.scheduler.policy).Statement : s.Resource if s.Sid == "PassCompactorRoles"
    ]) == ["arn:aws:iam::111122223333:role/events-lake-test-x", var.compactor_role_arn]
    error_message = "The scheduler passes only the execution role and the compactor role."
  }
  assert {
    condition     = aws_ecs_task_definition.writer.task_role_arn == var.writer_role_arn
    error_message = "The writer runs as the writer role."
  }
}

run "writer_fixed_count_without_autoscaling" {
  assert {
    condition = (
      aws_appautoscaling_target.writer[0].min_capacity == 2 && aws_appautoscaling_target.writer[0].max_capacity == 2 &&
      length(aws_appautoscaling_policy.writer_cpu) == 0 && length(aws_appautoscaling_policy.writer_lag) == 0
    )
    error_message = "writer_max_count unset: the count is fixed at writer_desired_count."
  }
}

run "writer_autoscaling_bounds" {
  variables {
    writer_max_count = 6
  }
  assert {
    condition = (
      aws_appautoscaling_target.writer[0].min_capacity == 2 && aws_appautoscaling_target.writer[0].max_capacity == 6 &&
      aws_appautoscaling_target.writer[0].resource_id == "service/events-lake-test/writer"
    )
    error_message = "Autoscaling between writer_desired_count and writer_max_count."
  }
  assert {
    condition = (
      aws_appautoscaling_policy.writer_cpu[0].target_tracking_scaling_policy_configuration[0].predefined_metric_specification[0].predefined_metric_type == "ECSServiceAverageCPUUtilization" &&
      aws_cloudwatch_metric_alarm.writer_lag_scale_out[0].metric_name == "GetRecords.IteratorAgeMilliseconds" &&
      aws_cloudwatch_metric_alarm.writer_lag_scale_out[0].alarm_actions == toset([aws_appautoscaling_policy.writer_lag[0].arn])
    )
    error_message = "Scale on CPU and on iterator age."
  }
}

# Issue 15, low-volume mode: the default is the always-on service, with no writer schedule.
run "writer_service_mode_has_no_schedule" {
  assert {
    condition     = length(aws_ecs_service.writer) == 1 && length(aws_appautoscaling_target.writer) == 1
    error_message = "writer_mode service (default): one ECS service with its scalable target."
  }
  assert {
    condition     = length(aws_scheduler_schedule.writer) == 0
    error_message = "writer_mode service: no writer schedule."
  }
  assert {
    condition     = !contains(jsondecode(aws_ecs_task_definition.writer.container_definitions)[0].command, "--exit-when-idle")
    error_message = "The always-on writer must not exit when idle."
  }
  assert {
    condition     = length([for s in jsondecode(aws_iam_role_policy.scheduler.policy).Statement : s if contains(["RunWriterTask", "PassWriterRoles"], s.Sid)]) == 0
    error_message = "writer_mode service: the scheduler may not start writer tasks."
  }
  assert {
    condition     = output.writer_schedule_name == null && output.writer_service_name == "writer"
    error_message = "Outputs: a service, no schedule."
  }
}

run "writer_scheduled_mode" {
  variables {
    writer_mode             = "scheduled"
    writer_schedule_minutes = 15
    writer_exit_when_idle   = "30s"
    writer_max_count        = 4
  }
  assert {
    condition     = length(aws_ecs_service.writer) == 0 && length(aws_appautoscaling_target.writer) == 0
    error_message = "writer_mode scheduled: no ECS service, no autoscaling."
  }
  assert {
    condition = (
      length(aws_appautoscaling_policy.writer_cpu) == 0 && length(aws_appautoscaling_policy.writer_lag) == 0 &&
      length(aws_cloudwatch_metric_alarm.writer_lag_scale_out) == 0
    )
    error_message = "writer_mode scheduled: no scaling policies, whatever writer_max_count says."
  }
  assert {
    condition     = jsondecode(aws_ecs_task_definition.writer.container_definitions)[0].command == ["writer", "run", "--exit-when-caught-up", "--exit-when-idle", "30s", "--max-run-time", "14m"]
    error_message = "A scheduled run is `writer run --exit-when-caught-up --exit-when-idle <writer_exit_when_idle> --max-run-time <period - 1 minute>`."
  }
  assert {
    condition = (
      aws_scheduler_schedule.writer[0].schedule_expression == "rate(15 minutes)" &&
      aws_scheduler_schedule.writer[0].state == "ENABLED" &&
      aws_scheduler_schedule.writer[0].group_name == aws_scheduler_schedule_group.this.name &&
      aws_scheduler_schedule.writer[0].target[0].ecs_parameters[0].task_count == 1 &&
      aws_scheduler_schedule.writer[0].target[0].ecs_parameters[0].launch_type == "FARGATE" &&
      aws_scheduler_schedule.writer[0].target[0].ecs_parameters[0].task_definition_arn == aws_ecs_task_definition.writer.arn_without_revision
    )
    error_message = "One writer task every writer_schedule_minutes, in the stack's schedule group (its failure alarm)."
  }
  assert {
    condition     = aws_scheduler_schedule.writer[0].target[0].retry_policy[0].maximum_event_age_in_seconds < 15 * 60
    error_message = "A failed start must not be retried past the next run."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.scheduler.policy).Statement : s.Resource if s.Sid == "RunWriterTask"
    ]) == [aws_ecs_task_definition.writer.arn_without_revision, "${aws_ecs_task_definition.writer.arn_without_revision}:*"]
    error_message = "The scheduler may run the writer's task definition family (and no other)."
  }
  assert {
    condition = one([
      for s in jsondecode(aws_iam_role_policy.scheduler.policy).Statement : s.Resource if s.Sid == "PassWriterRoles"
    ]) == ["arn:aws:iam::111122223333:role/events-lake-test-x", var.writer_role_arn]
    error_message = "The scheduler passes only the execution role and the writer role to the writer task."
  }
  assert {
    condition = contains(one([
      for s in jsondecode(aws_iam_role_policy.scheduler.policy).Statement : s.Condition.StringEquals["kms:EncryptionContext:aws:scheduler:schedule:arn"] if s.Sid == "DecryptOwnSchedules"
    ]), "arn:aws:scheduler:eu-west-1:111122223333:schedule/events-lake-test/events-lake-test-writer")
    error_message = "The scheduler may decrypt the (KMS-encrypted) writer schedule."
  }
  assert {
    condition     = output.writer_service_name == null && output.writer_schedule_name == "events-lake-test-writer" && output.writer_autoscaling_bounds == null
    error_message = "Outputs: a schedule, no service."
  }
}

run "writer_exit_when_idle_must_be_a_duration" {
  command = plan
  variables {
    writer_mode           = "scheduled"
    writer_exit_when_idle = "twenty seconds"
  }
  expect_failures = [var.writer_exit_when_idle]
}
