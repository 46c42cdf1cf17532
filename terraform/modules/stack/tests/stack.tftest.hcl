# Offline test of the whole stack's wiring (mock provider): run with `terraform test` in modules/stack.

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
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000" }
  }
  mock_resource "aws_kinesis_stream" {
    defaults = { arn = "arn:aws:kinesis:eu-west-1:111122223333:stream/events-lake-dev-events" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::events-lake-dev-lake-111122223333" }
  }
  mock_resource "aws_dynamodb_table" {
    defaults = { arn = "arn:aws:dynamodb:eu-west-1:111122223333:table/events-lake-dev-x" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::111122223333:role/events-lake-dev-x" }
  }
  mock_resource "aws_ecr_repository" {
    defaults = {
      arn            = "arn:aws:ecr:eu-west-1:111122223333:repository/events-lake-dev"
      repository_url = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/events-lake-dev"
    }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-west-1:111122223333:log-group:/events-lake/events-lake-dev/x" }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = { arn = "arn:aws:ecs:eu-west-1:111122223333:cluster/events-lake-dev" }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = {
      arn                  = "arn:aws:ecs:eu-west-1:111122223333:task-definition/events-lake-dev-x:1"
      arn_without_revision = "arn:aws:ecs:eu-west-1:111122223333:task-definition/events-lake-dev-x"
    }
  }
  mock_resource "aws_appautoscaling_policy" {
    defaults = { arn = "arn:aws:autoscaling:eu-west-1:111122223333:scalingPolicy:00000000-0000-0000-0000-000000000000:resource/ecs/service/events-lake-dev/writer:policyName/events-lake-dev-writer-lag" }
  }
  mock_data "aws_vpc" {
    defaults = { cidr_block = "10.0.0.0/16" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["eu-west-1a", "eu-west-1b"] }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:eu-west-1:111122223333:events-lake-dev-alarms" }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:eu-west-1:111122223333:rule/events-lake-dev-compactor-task-failed" }
  }
}

variables {
  environment = "dev"
  vpc_id      = "vpc-0123456789abcdef0"
  subnet_ids  = ["subnet-0123456789abcdef0"]
  image_tag   = "abc123"
}

run "whole_stack_wiring" {
  assert {
    condition     = output.events_table_uri == "s3://events-lake-dev-lake-111122223333/lake/events"
    error_message = "Table URI follows the naming convention."
  }
  assert {
    condition     = output.metrics_namespace == "EventsLake/dev"
    error_message = "Metrics namespace is per environment."
  }
  assert {
    condition     = module.kms.key_arn == "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"
    error_message = "The stack uses its own key."
  }
}

run "task_roles_come_from_module_iam" {
  assert {
    condition     = module.compute.compactor_task_definition_families == { events = "events-lake-dev-compactor-events", rejected = "events-lake-dev-compactor-rejected" }
    error_message = "Both tables get a compactor."
  }
  assert {
    condition     = output.writer_role_arn == module.iam.writer_role_arn && output.compactor_role_arn == module.iam.compactor_role_arn
    error_message = "The stack exposes the task roles of modules/iam."
  }
  assert {
    condition     = output.producer_policy_arn != null && output.analyst_policy_arn != null
    error_message = "Producer and analyst policies are part of the stack."
  }
}

run "writer_autoscaling_bounded_by_shards" {
  variables {
    stream_shard_count   = 4
    writer_desired_count = 2
    writer_max_count     = 10
  }
  assert {
    condition     = module.compute.writer_autoscaling_bounds.min == 2 && module.compute.writer_autoscaling_bounds.max == 4
    error_message = "Writer autoscaling must stop at the shard count of a provisioned stream."
  }
}

run "optional_private_vpc" {
  variables {
    create_vpc = true
    vpc_id     = null
    subnet_ids = []
  }
  assert {
    condition     = length(module.network.subnet_ids) == 2 && contains(module.network.endpoint_services, "kinesis-streams") && contains(module.network.endpoint_services, "s3")
    error_message = "create_vpc gives the tasks private subnets with the data path's endpoints."
  }
}

run "kms_key_rotates" {
  module {
    source = "../kms"
  }
  variables {
    name_prefix           = "events-lake-dev"
    log_group_name_prefix = "/events-lake/events-lake-dev/"
  }
  assert {
    condition     = aws_kms_key.this.enable_key_rotation
    error_message = "Key rotation must be on."
  }
  assert {
    condition = anytrue([
      for s in jsondecode(aws_kms_key.this.policy).Statement :
      try(
        s.Principal.Service == "logs.eu-west-1.amazonaws.com" &&
        s.Condition.ArnLike["kms:EncryptionContext:aws:logs:arn"] == "arn:aws:logs:eu-west-1:111122223333:log-group:/events-lake/events-lake-dev/*",
        false
      )
    ])
    error_message = "CloudWatch Logs may use the key for the stack's log groups only."
  }
}

# Issue 15: the low-volume profile (envs/lowvolume) wires a scheduled writer through the stack.
run "low_volume_scheduled_writer" {
  variables {
    environment                   = "lowvolume"
    writer_mode                   = "scheduled"
    writer_schedule_minutes       = 10
    writer_exit_when_idle         = "20s"
    writer_cpu                    = 256
    writer_memory                 = 512
    writer_dedupe_memory_mb       = 128
    assign_public_ip              = true
    enable_container_insights     = false
    compactor_schedule_expression = "cron(30 0 * * ? *)"
  }
  assert {
    condition     = output.writer_mode == "scheduled" && output.writer_service_name == null && output.writer_schedule_name == "events-lake-lowvolume-writer"
    error_message = "Scheduled writer: a schedule, no service."
  }
  assert {
    condition     = output.writer_autoscaling_bounds == null && length(module.monitoring.alarm_names) == 11
    error_message = "No autoscaling and no writer-down alarm without a service."
  }
}

run "default_writer_is_a_service" {
  assert {
    condition     = output.writer_mode == "service" && output.writer_service_name == "writer" && output.writer_schedule_name == null
    error_message = "By default the writer is the always-on service."
  }
}
