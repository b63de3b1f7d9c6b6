-- The week-1 usage events of the w1_cohort evaluators: the one definition of which raw rows count.
-- Registered as the temp view w1_events; sql/w1_features.sql (the contract's features) and
-- sql/w1_daily.sql (the same usage day by day, for the behaviour report) both read it.
--
-- Excluded by definition (and counted by usage_exclusions.sql): unknown event types, events before
-- the evaluation started or after day 6, events of unknown instances, rows with nulls or a
-- non-positive event_count. Duplicated rows (same instance, user, day, event type and platform)
-- count once, with the largest event_count: a re-delivered daily aggregate supersedes, never adds.
--
-- The usage rows are shuffled once, by instance (the REPARTITION hint, below the GROUP BY): every
-- query over this view groups by keys that include instance, so Spark plans no further exchange
-- of them. Without it Spark shuffles by this GROUP BY's five keys, then again by instance for each
-- aggregation downstream, and scans the usage once per downstream branch.
SELECT instance, user_id, event_date, event_type, platform, MAX(event_count) AS event_count
FROM (
    SELECT /*+ REPARTITION(instance) */ e.instance, e.user_id, e.event_date, e.event_type, e.platform, e.event_count
    FROM raw_usage_events e
    JOIN w1_cohort c ON e.instance = c.instance
    WHERE e.event_date >= c.eval_start_date
      AND e.event_date < date_add(c.eval_start_date, 7)
      AND e.event_type IN ('project_created', 'issue_created', 'user_invited', 'issue_updated',
                           'issue_commented', 'issue_assigned', 'user_mentioned', 'issue_viewed',
                           'issue_completed', 'watcher_added', 'sprint_started', 'sprint_finished')
      AND e.user_id IS NOT NULL
      AND e.platform IS NOT NULL
      AND e.event_count >= 1
)
GROUP BY instance, user_id, event_date, event_type, platform
