# Writer autoscaling (Application Auto Scaling on the ECS service). The scalable target always
# exists and owns the task count: min = writer_desired_count, max = writer_max_count (Terraform
# caps it at the shard count of a provisioned stream: a writer without a shard only stands by).
# With max == min nothing scales and the count is fixed. Scaling out: CPU target tracking, and a
# step on Kinesis iterator age (the writer falls behind although CPU is fine, e.g. waiting on S3).
# writer_mode = "scheduled" has no service, hence none of this.

locals {
  writer_autoscaling = !local.writer_scheduled && var.writer_max_count > var.writer_desired_count
}

moved {
  from = aws_appautoscaling_target.writer
  to   = aws_appautoscaling_target.writer[0]
}

resource "aws_appautoscaling_target" "writer" {
  count              = local.writer_scheduled ? 0 : 1
  service_namespace  = "ecs"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.writer[0].name}"
  scalable_dimension = "ecs:service:DesiredCount"
  min_capacity       = var.writer_desired_count
  max_capacity       = max(var.writer_max_count, var.writer_desired_count)
  tags               = var.tags
}

resource "aws_appautoscaling_policy" "writer_cpu" {
  count              = local.writer_autoscaling ? 1 : 0
  name               = "${var.name_prefix}-writer-cpu"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.writer[0].service_namespace
  resource_id        = aws_appautoscaling_target.writer[0].resource_id
  scalable_dimension = aws_appautoscaling_target.writer[0].scalable_dimension

  target_tracking_scaling_policy_configuration {
    target_value = var.writer_cpu_target_percent
    predefined_metric_specification {
      predefined_metric_type = "ECSServiceAverageCPUUtilization"
    }
    # Scale in slowly: moving shards between writers costs a lease takeover each.
    scale_in_cooldown  = 900
    scale_out_cooldown = 120
  }
}

resource "aws_appautoscaling_policy" "writer_lag" {
  count              = local.writer_autoscaling ? 1 : 0
  name               = "${var.name_prefix}-writer-lag"
  policy_type        = "StepScaling"
  service_namespace  = aws_appautoscaling_target.writer[0].service_namespace
  resource_id        = aws_appautoscaling_target.writer[0].resource_id
  scalable_dimension = aws_appautoscaling_target.writer[0].scalable_dimension

  step_scaling_policy_configuration {
    adjustment_type         = "ChangeInCapacity"
    cooldown                = 300
    metric_aggregation_type = "Maximum"
    step_adjustment {
      metric_interval_lower_bound = 0
      scaling_adjustment          = 1
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "writer_lag_scale_out" {
  count               = local.writer_autoscaling ? 1 : 0
  alarm_name          = "${var.name_prefix}-writer-lag-scale-out"
  alarm_description   = "Scaling trigger (not a page): the writers fall behind ${var.stream_name}; add a writer task."
  namespace           = "AWS/Kinesis"
  metric_name         = "GetRecords.IteratorAgeMilliseconds"
  dimensions          = { StreamName = var.stream_name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.writer_scale_out_iterator_age_ms
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_appautoscaling_policy.writer_lag[0].arn]
  tags                = var.tags
}
