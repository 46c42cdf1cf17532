output "sns_topic_arn" {
  description = "SNS topic receiving every alarm."
  value       = aws_sns_topic.alarms.arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "alarm_names" {
  description = "Names of the alarms."
  value = concat([
    aws_cloudwatch_metric_alarm.iterator_age.alarm_name,
    aws_cloudwatch_metric_alarm.rejected_spike.alarm_name,
    aws_cloudwatch_metric_alarm.commit_latency.alarm_name,
    aws_cloudwatch_metric_alarm.freshness.alarm_name,
    aws_cloudwatch_metric_alarm.compactor_failed.alarm_name,
    aws_cloudwatch_metric_alarm.compactor_not_succeeding.alarm_name,
    aws_cloudwatch_metric_alarm.compactor_schedule_failing.alarm_name,
    aws_cloudwatch_metric_alarm.shards_unread.alarm_name,
    aws_cloudwatch_metric_alarm.writer_errors.alarm_name,
    aws_cloudwatch_metric_alarm.kinesis_write_throttled.alarm_name,
    aws_cloudwatch_metric_alarm.no_commits.alarm_name,
  ], aws_cloudwatch_metric_alarm.writer_down[*].alarm_name)
}
