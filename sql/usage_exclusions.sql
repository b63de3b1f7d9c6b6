-- Raw rows that the features leave out by definition, counted per cohort week of [{first_day}, {end_day}).
-- Events are attributed to the cohort week of their instance; events of instances missing from
-- raw_instances (orphans) have no cohort and are attributed to the week of their event_date.
WITH known AS (
    SELECT instance, MIN(eval_start_date) AS eval_start_date
    FROM raw_instances
    WHERE instance IS NOT NULL AND eval_start_date IS NOT NULL
    GROUP BY instance
),
instance_rows AS (
    SELECT date_trunc('week', eval_start_date) AS cohort_week,
           COUNT(*) AS instance_rows,
           COUNT(DISTINCT instance) AS distinct_instances
    FROM raw_instances
    WHERE eval_start_date >= DATE '{first_day}' AND eval_start_date < DATE '{end_day}'
    GROUP BY 1
),
events AS (
    SELECT e.*, k.eval_start_date,
           COALESCE(date_trunc('week', k.eval_start_date), date_trunc('week', e.event_date)) AS cohort_week,
           COUNT(*) OVER (PARTITION BY e.instance, e.user_id, e.event_date, e.event_type, e.platform) AS key_rows
    FROM raw_usage_events e
    LEFT JOIN known k ON k.instance = e.instance
    -- usage after week 1 is simply not a feature, not an exclusion
    WHERE k.eval_start_date IS NULL OR e.event_date IS NULL OR e.event_date < date_add(k.eval_start_date, 7)
),
event_counts AS (
    SELECT cohort_week,
           COUNT_IF(eval_start_date IS NULL AND instance IS NOT NULL) AS orphan_events,
           COUNT_IF(instance IS NULL OR user_id IS NULL OR event_date IS NULL OR event_type IS NULL
                    OR platform IS NULL OR event_count IS NULL OR event_count < 1) AS invalid_events,
           COUNT_IF(eval_start_date IS NOT NULL AND event_date < eval_start_date) AS events_before_eval_start,
           COUNT_IF(eval_start_date IS NOT NULL AND event_type IS NOT NULL AND event_type NOT IN (
                    'project_created', 'issue_created', 'user_invited', 'issue_updated',
                    'issue_commented', 'issue_assigned', 'user_mentioned', 'issue_viewed',
                    'issue_completed', 'watcher_added', 'sprint_started', 'sprint_finished'))
               AS unknown_event_type_events,
           -- every row of a duplicated key but one
           SUM(CASE WHEN key_rows > 1 THEN 1 ELSE 0 END)
               - COUNT(DISTINCT CASE WHEN key_rows > 1
                        THEN struct(instance, user_id, event_date, event_type, platform) END)
               AS duplicate_events,
           COUNT(*) AS event_rows_to_day_6
    FROM events
    GROUP BY cohort_week
)
SELECT date_format(i.cohort_week, 'yyyy-MM-dd') AS cohort_week,
       i.instance_rows,
       i.instance_rows - i.distinct_instances AS duplicate_instance_rows,
       COALESCE(e.event_rows_to_day_6, 0) AS event_rows_to_day_6,
       COALESCE(e.orphan_events, 0) AS orphan_events,
       COALESCE(e.invalid_events, 0) AS invalid_events,
       COALESCE(e.events_before_eval_start, 0) AS events_before_eval_start,
       COALESCE(e.unknown_event_type_events, 0) AS unknown_event_type_events,
       COALESCE(e.duplicate_events, 0) AS duplicate_events
FROM instance_rows i
LEFT JOIN event_counts e ON e.cohort_week = i.cohort_week
