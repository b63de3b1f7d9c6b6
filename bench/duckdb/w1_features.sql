-- DuckDB translation of sql/w1_cohort.sql + sql/w1_events.sql + sql/w1_features.sql (the cohort
-- and w1_events views inlined as CTEs), for the benchmark only (DuckDB is a reference, not a
-- runtime dependency). Same views (raw_instances, raw_usage_events, registered by
-- bench/duckdb_features.py from the same Parquet files with the contract's types), same logic.
-- Spark -> DuckDB: date_add(d, 7) -> d + 7 (DATE + INTEGER is a DATE in DuckDB); INT -> INTEGER;
-- Spark's REPARTITION hint has no DuckDB counterpart (DuckDB plans its own parallelism).
WITH cohort AS (
    SELECT instance, MIN(eval_start_date) AS eval_start_date
    FROM raw_instances
    WHERE instance IS NOT NULL AND eval_start_date IS NOT NULL
    GROUP BY instance
    HAVING MIN(eval_start_date) >= DATE '{first_day}' AND MIN(eval_start_date) < DATE '{end_day}'
),
w1_events AS (
    SELECT e.instance, e.user_id, e.event_date, e.event_type, e.platform,
           MAX(e.event_count) AS event_count
    FROM raw_usage_events e
    JOIN cohort c ON e.instance = c.instance
    WHERE e.event_date >= c.eval_start_date
      AND e.event_date < c.eval_start_date + 7
      AND e.event_type IN ('project_created', 'issue_created', 'user_invited', 'issue_updated',
                           'issue_commented', 'issue_assigned', 'user_mentioned', 'issue_viewed',
                           'issue_completed', 'watcher_added', 'sprint_started', 'sprint_finished')
      AND e.user_id IS NOT NULL
      AND e.platform IS NOT NULL
      AND e.event_count >= 1
    GROUP BY e.instance, e.user_id, e.event_date, e.event_type, e.platform
),
user_days AS (
    SELECT instance, event_date, user_id,
           SUM(CASE WHEN event_type = 'project_created' THEN event_count ELSE 0 END) AS number_of_projects,
           SUM(CASE WHEN event_type = 'issue_created'   THEN event_count ELSE 0 END) AS number_of_issues,
           SUM(CASE WHEN event_type = 'user_invited'    THEN event_count ELSE 0 END) AS number_of_invites,
           SUM(CASE WHEN event_type = 'watcher_added'   THEN event_count ELSE 0 END) AS watchers_added,
           SUM(CASE WHEN event_type = 'issue_updated'   THEN event_count ELSE 0 END) AS issues_updated,
           SUM(CASE WHEN event_type = 'issue_commented' THEN event_count ELSE 0 END) AS issues_commented,
           SUM(CASE WHEN event_type = 'issue_assigned'  THEN event_count ELSE 0 END) AS issues_assigned,
           SUM(CASE WHEN event_type = 'user_mentioned'  THEN event_count ELSE 0 END) AS at_mentions,
           SUM(CASE WHEN event_type = 'issue_viewed'    THEN event_count ELSE 0 END) AS issues_viewed,
           SUM(CASE WHEN event_type = 'issue_completed' THEN event_count ELSE 0 END) AS issues_completed,
           SUM(CASE WHEN platform = 'mobile'            THEN event_count ELSE 0 END) AS mobile_usage,
           SUM(CASE WHEN event_type = 'sprint_started'  THEN event_count ELSE 0 END) AS sprint_started,
           SUM(CASE WHEN event_type = 'sprint_finished' THEN event_count ELSE 0 END) AS sprint_finished
    FROM w1_events
    GROUP BY instance, event_date, user_id
),
user_days_counted AS (
    SELECT *, COUNT(*) OVER (PARTITION BY instance, event_date) AS users_that_day
    FROM user_days
),
instance_sums AS (
    SELECT instance,
           SUM(number_of_projects) AS number_of_projects,
           SUM(number_of_issues)   AS number_of_issues,
           SUM(number_of_invites)  AS number_of_invites,
           COUNT(DISTINCT user_id) AS w1_active_users,
           COUNT(*)                AS w1_agg_active_users,
           MAX(users_that_day)     AS w1_max_active_users,
           SUM(watchers_added)     AS watchers_added,
           SUM(issues_updated)     AS issues_updated,
           SUM(issues_commented)   AS issues_commented,
           SUM(issues_assigned)    AS issues_assigned,
           SUM(at_mentions)        AS at_mentions,
           SUM(issues_viewed)      AS issues_viewed,
           SUM(issues_completed)   AS issues_completed,
           SUM(mobile_usage)       AS mobile_usage,
           SUM(sprint_started)     AS sprint_started,
           SUM(sprint_finished)    AS sprint_finished
    FROM user_days_counted
    GROUP BY instance
)
SELECT c.instance,
       c.eval_start_date,
       CAST(COALESCE(s.number_of_projects, 0) AS INTEGER)  AS number_of_projects,
       CAST(COALESCE(s.number_of_issues, 0) AS INTEGER)    AS number_of_issues,
       CAST(COALESCE(s.number_of_invites, 0) AS INTEGER)   AS number_of_invites,
       CAST(COALESCE(s.w1_active_users, 0) AS INTEGER)     AS w1_active_users,
       CAST(COALESCE(s.w1_agg_active_users, 0) AS INTEGER) AS w1_agg_active_users,
       CAST(COALESCE(s.w1_max_active_users, 0) AS INTEGER) AS w1_max_active_users,
       CAST(COALESCE(s.watchers_added, 0) AS INTEGER)      AS watchers_added,
       CAST(COALESCE(s.issues_updated, 0) AS INTEGER)      AS issues_updated,
       CAST(COALESCE(s.issues_commented, 0) AS INTEGER)    AS issues_commented,
       CAST(COALESCE(s.issues_assigned, 0) AS INTEGER)     AS issues_assigned,
       CAST(COALESCE(s.at_mentions, 0) AS INTEGER)         AS at_mentions,
       CAST(COALESCE(s.issues_viewed, 0) AS INTEGER)       AS issues_viewed,
       CAST(COALESCE(s.issues_completed, 0) AS INTEGER)    AS issues_completed,
       CAST(COALESCE(s.mobile_usage, 0) AS INTEGER)        AS mobile_usage,
       CAST(COALESCE(s.sprint_started, 0) AS INTEGER)      AS sprint_started,
       CAST(COALESCE(s.sprint_finished, 0) AS INTEGER)     AS sprint_finished
FROM cohort c
LEFT JOIN instance_sums s ON s.instance = c.instance
