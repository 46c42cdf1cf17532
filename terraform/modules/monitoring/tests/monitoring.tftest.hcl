# Offline unit tests (mock provider): run with `terraform test` in modules/monitoring.

mock_provider "aws" {
  mock_data "aws_region" {
    defaults = { name = "eu-west-1" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:eu-west-1:111122223333:events-lake-test-alarms" }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:eu-west-1:111122223333:rule/events-lake-test-compactor-task-failed" }
  }
}

variables {
  name_prefix                                    = "events-lake-test"
  kms_key_arn                                    = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"
  metrics_namespace                              = "EventsLake/test"
  stream_name                                    = "events-lake-test-events"
  cluster_name                                   = "events-lake-test"
  cluster_arn                                    = "arn:aws:ecs:eu-west-1:111122223333:cluster/events-lake-test"
  writer_service_name                            = "writer"
  writer_desired_count                           = 2
  writer_log_group_name                          = "/events-lake/events-lake-test/writer"
  compactor_log_group_name                       = "/events-lake/events-lake-test/compactor"
  compactor_task_definition_arn_without_revision = "arn:aws:ecs:eu-west-1:111122223333:task-definition/events-lake-test-compactor"
}

run "topic_encrypted" {
  assert {
    condition     = aws_sns_topic.alarms.kms_master_key_id == var.kms_key_arn
    error_message = "The alarm topic must be KMS-encrypted."
  }
}

run "every_alarm_notifies_the_topic" {
  assert {
    condition = alltrue([
      for a in [
        aws_cloudwatch_metric_alarm.iterator_age,
        aws_cloudwatch_metric_alarm.rejected_spike,
        aws_cloudwatch_metric_alarm.commit_latency,
        aws_cloudwatch_metric_alarm.freshness,
        aws_cloudwatch_metric_alarm.writer_down,
        aws_cloudwatch_metric_alarm.compactor_failed,
        aws_cloudwatch_metric_alarm.compactor_not_succeeding,
      ] : contains(a.alarm_actions, aws_sns_topic.alarms.arn)
    ])
    error_message = "Every alarm must publish to the SNS topic."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.iterator_age.metric_name == "GetRecords.IteratorAgeMilliseconds" && aws_cloudwatch_metric_alarm.iterator_age.dimensions["StreamName"] == var.stream_name
    error_message = "Iterator-age alarm must watch the stream."
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.writer_down.metric_name == "RunningTaskCount" &&
      aws_cloudwatch_metric_alarm.writer_down.threshold == 2 &&
      aws_cloudwatch_metric_alarm.writer_down.comparison_operator == "LessThanThreshold"
    )
    error_message = "Writer-down alarm: running tasks below the desired count."
  }
  assert {
    condition     = aws_cloudwatch_event_target.compactor_failed.arn == aws_sns_topic.alarms.arn
    error_message = "Stopped-with-error compactor tasks must notify the topic."
  }
  assert {
    condition     = jsondecode(aws_cloudwatch_event_rule.compactor_failed.event_pattern).detail.lastStatus == ["STOPPED"]
    error_message = "The rule matches stopped tasks."
  }
}

run "metric_filters_follow_log_contract" {
  assert {
    condition     = aws_cloudwatch_log_metric_filter.writer["events_written"].pattern == "{ $.message = \"batch committed\" }"
    error_message = "Ingest metric comes from the \"batch committed\" line."
  }
  assert {
    condition = {
      for k, f in aws_cloudwatch_log_metric_filter.writer : k => f.metric_transformation[0].value
      } == {
      events_written = "$.written"
      duplicates     = "$.duplicates"
      rejected       = "$.rejected"
      commit_latency = "$.commit_ms"
      freshness      = "$.freshness_ms"
      commits        = "1"
      errors         = "1"
    }
    error_message = "Metric values must be the fields of the commit line."
  }
  assert {
    condition = alltrue([
      for f in concat(values(aws_cloudwatch_log_metric_filter.writer), values(aws_cloudwatch_log_metric_filter.compactor)) :
      f.metric_transformation[0].namespace == "EventsLake/test"
    ])
    error_message = "All metrics go to the environment namespace."
  }
  assert {
    condition     = aws_cloudwatch_log_metric_filter.compactor["compactor_failed"].pattern == "{ $.message = \"compactor run failed\" }"
    error_message = "Compactor failure metric comes from \"compactor run failed\"."
  }
  assert {
    condition     = length(jsondecode(aws_cloudwatch_dashboard.this.dashboard_body).widgets) == 8
    error_message = "The dashboard has its eight widgets."
  }
}
