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
  name_prefix              = "events-lake-test"
  kms_key_arn              = "arn:aws:kms:eu-west-1:111122223333:key/00000000-0000-0000-0000-000000000000"
  metrics_namespace        = "EventsLake/test"
  stream_name              = "events-lake-test-events"
  cluster_name             = "events-lake-test"
  cluster_arn              = "arn:aws:ecs:eu-west-1:111122223333:cluster/events-lake-test"
  writer_service_name      = "writer"
  writer_desired_count     = 2
  writer_log_group_name    = "/events-lake/events-lake-test/writer"
  compactor_log_group_name = "/events-lake/events-lake-test/compactor"
  compactor_task_definition_arns_without_revision = [
    "arn:aws:ecs:eu-west-1:111122223333:task-definition/events-lake-test-compactor-events",
    "arn:aws:ecs:eu-west-1:111122223333:task-definition/events-lake-test-compactor-rejected",
  ]
  schedule_group_name = "events-lake-test"
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
        aws_cloudwatch_metric_alarm.writer_down[0],
        aws_cloudwatch_metric_alarm.compactor_failed,
        aws_cloudwatch_metric_alarm.compactor_not_succeeding,
        aws_cloudwatch_metric_alarm.shards_unread,
        aws_cloudwatch_metric_alarm.compactor_schedule_failing,
        aws_cloudwatch_metric_alarm.writer_errors,
        aws_cloudwatch_metric_alarm.kinesis_write_throttled,
        aws_cloudwatch_metric_alarm.no_commits,
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
      aws_cloudwatch_metric_alarm.writer_down[0].metric_name == "RunningTaskCount" &&
      aws_cloudwatch_metric_alarm.writer_down[0].threshold == 2 &&
      aws_cloudwatch_metric_alarm.writer_down[0].comparison_operator == "LessThanThreshold"
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

run "shards_nobody_reads_alarm" {
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.shards_unread.metric_name == "ShardsUnread" &&
      aws_cloudwatch_metric_alarm.shards_unread.statistic == "Minimum" &&
      aws_cloudwatch_metric_alarm.shards_unread.threshold == 0 &&
      aws_cloudwatch_metric_alarm.shards_unread.comparison_operator == "GreaterThanThreshold" &&
      aws_cloudwatch_metric_alarm.shards_unread.period * aws_cloudwatch_metric_alarm.shards_unread.evaluation_periods >= 600
    )
    error_message = "A shard no writer reads for 10 minutes must alarm (no iterator age exists for it)."
  }
  assert {
    condition     = aws_cloudwatch_log_metric_filter.writer["shards_unread"].pattern == "{ $.message = \"lease state\" && $.shards_unread = * }"
    error_message = "ShardsUnread comes from the writer's \"lease state\" line."
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
      shards_unread  = "$.shards_unread"
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

# Issue 13, defect 4: alarms with gaps.
run "writer_errors_alarm" {
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.writer_errors.metric_name == aws_cloudwatch_log_metric_filter.writer["errors"].metric_transformation[0].name &&
      aws_cloudwatch_metric_alarm.writer_errors.namespace == "EventsLake/test" &&
      aws_cloudwatch_metric_alarm.writer_errors.statistic == "Sum" &&
      aws_cloudwatch_metric_alarm.writer_errors.comparison_operator == "GreaterThanThreshold" &&
      aws_cloudwatch_metric_alarm.writer_errors.threshold == 0 &&
      aws_cloudwatch_metric_alarm.writer_errors.treat_missing_data == "notBreaching"
    )
    error_message = "WriterErrors (level = ERROR lines) must raise an alarm, not only feed the dashboard."
  }
}

run "producer_throttling_alarm" {
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.kinesis_write_throttled.namespace == "AWS/Kinesis" &&
      aws_cloudwatch_metric_alarm.kinesis_write_throttled.metric_name == "WriteProvisionedThroughputExceeded" &&
      aws_cloudwatch_metric_alarm.kinesis_write_throttled.dimensions["StreamName"] == var.stream_name &&
      aws_cloudwatch_metric_alarm.kinesis_write_throttled.comparison_operator == "GreaterThanThreshold" &&
      aws_cloudwatch_metric_alarm.kinesis_write_throttled.threshold == 0
    )
    error_message = "Throttled producers (WriteProvisionedThroughputExceeded) must alarm."
  }
}

run "compactor_alarm_quiet_before_first_run" {
  assert {
    condition     = aws_cloudwatch_metric_alarm.compactor_not_succeeding.treat_missing_data == "missing"
    error_message = "No data before the first scheduled run must not breach (a new environment would page at once)."
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.compactor_not_succeeding.comparison_operator == "LessThanThreshold" &&
      aws_cloudwatch_metric_alarm.compactor_not_succeeding.threshold == 1 &&
      aws_cloudwatch_log_metric_filter.compactor["compactor_succeeded"].metric_transformation[0].default_value == "0"
    )
    error_message = "A run that logged but did not succeed emits 0 successes and must breach."
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.compactor_schedule_failing.namespace == "AWS/Scheduler" &&
      aws_cloudwatch_metric_alarm.compactor_schedule_failing.metric_name == "TargetErrorCount" &&
      aws_cloudwatch_metric_alarm.compactor_schedule_failing.dimensions["ScheduleGroup"] == var.schedule_group_name
    )
    error_message = "A schedule that cannot start the compactor (no log line at all) must alarm."
  }
  assert {
    condition = [for p in jsondecode(aws_cloudwatch_event_rule.compactor_failed.event_pattern).detail.taskDefinitionArn : p.prefix] == [
      "arn:aws:ecs:eu-west-1:111122223333:task-definition/events-lake-test-compactor-events:",
      "arn:aws:ecs:eu-west-1:111122223333:task-definition/events-lake-test-compactor-rejected:",
    ]
    error_message = "Failed compactor tasks of both tables are reported."
  }
}

run "no_commit_at_all_alarm" {
  assert {
    condition = (
      one([for q in aws_cloudwatch_metric_alarm.no_commits.metric_query : q.expression if q.id == "stalled" && q.return_data == true]) == "IF(FILL(incoming, 0) > 0 AND FILL(commits, 0) == 0, 1, 0)" &&
      one([for q in aws_cloudwatch_metric_alarm.no_commits.metric_query : q.metric[0].metric_name if q.id == "incoming"]) == "IncomingRecords" &&
      one([for q in aws_cloudwatch_metric_alarm.no_commits.metric_query : q.metric[0].metric_name if q.id == "commits"]) == "BatchesCommitted"
    )
    error_message = "Records arriving while nothing is committed must alarm (the freshness alarm has no data then)."
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.no_commits.evaluation_periods == 15 &&
      aws_cloudwatch_metric_alarm.no_commits.datapoints_to_alarm == 15 &&
      aws_cloudwatch_metric_alarm.no_commits.threshold == 1
    )
    error_message = "15 minutes in a row without a commit while records arrive."
  }
}

# Issue 15, low-volume mode: a writer that runs every N minutes must not page after every run,
# and must still page when it stops running.
run "scheduled_writer_alarms" {
  variables {
    writer_service_name     = null
    writer_schedule_minutes = 10
  }
  assert {
    condition     = length(aws_cloudwatch_metric_alarm.writer_down) == 0
    error_message = "No service, so no RunningTaskCount alarm."
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.iterator_age.treat_missing_data == "notBreaching" &&
      aws_cloudwatch_metric_alarm.iterator_age.threshold == 1200000
    )
    error_message = "Iterator age: nobody reads between runs (no data is normal); threshold two periods."
  }
  assert {
    condition     = aws_cloudwatch_metric_alarm.freshness.threshold == 900000
    error_message = "Freshness: a run commits records up to one period (+ start-up) old."
  }
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.no_commits.evaluation_periods == 25 &&
      aws_cloudwatch_metric_alarm.no_commits.datapoints_to_alarm == 25
    )
    error_message = "No commits: alarm after two periods + 5 minutes without a commit while records arrive."
  }
  assert {
    condition     = !strcontains(aws_cloudwatch_dashboard.this.dashboard_body, "RunningTaskCount")
    error_message = "The dashboard shows no service task count."
  }
}

run "service_writer_alarms_unchanged" {
  assert {
    condition = (
      aws_cloudwatch_metric_alarm.iterator_age.treat_missing_data == "breaching" &&
      aws_cloudwatch_metric_alarm.iterator_age.threshold == 300000 &&
      aws_cloudwatch_metric_alarm.freshness.threshold == 60000 &&
      length(aws_cloudwatch_metric_alarm.writer_down) == 1
    )
    error_message = "Service mode: an always-on reader, the original thresholds."
  }
}
