-- Week-1 usage day by day, of every evaluator whose evaluation started in [{first_day}, {end_day}):
-- one row per instance and day of week 1 with any usage (day_index 0 = the eval_start_date, .. 6).
-- Read by the behaviour report (churn_assets/report.py, DAILY_COLUMNS) for activation over week 1.
--
-- It reads the same temp views as w1_features.sql, w1_cohort and w1_events (same exclusions, same
-- de-duplication), so these days add up exactly to the contract's features: summed over the days,
-- new_users = w1_active_users, active_users = w1_agg_active_users (and its daily max =
-- w1_max_active_users), and each count column = the feature of the same name
-- (tests/test_report.py).
--
-- active_users: distinct users active that day; new_users: users whose first week-1 activity is
-- that day (their running total is the distinct users active so far, for activation rules).
-- Days without usage have no row: they count as zero. Unordered: a global ORDER BY costs Spark a
-- sampling job and a range shuffle; the caller sorts the few hundred thousand rows in pandas.
WITH user_first_days AS (
    SELECT instance, user_id, MIN(event_date) AS first_date
    FROM w1_events
    GROUP BY instance, user_id
),
new_users AS (
    SELECT instance, first_date AS event_date, COUNT(*) AS new_users
    FROM user_first_days
    GROUP BY instance, first_date
),
daily AS (
    SELECT instance, event_date,
           COUNT(DISTINCT user_id) AS active_users,
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
    GROUP BY instance, event_date
)
SELECT d.instance,
       CAST(datediff(d.event_date, c.eval_start_date) AS INT) AS day_index,
       CAST(d.active_users AS INT)                AS active_users,
       CAST(COALESCE(n.new_users, 0) AS INT)      AS new_users,
       CAST(d.number_of_projects AS INT)          AS number_of_projects,
       CAST(d.number_of_issues AS INT)            AS number_of_issues,
       CAST(d.number_of_invites AS INT)           AS number_of_invites,
       CAST(d.watchers_added AS INT)              AS watchers_added,
       CAST(d.issues_updated AS INT)              AS issues_updated,
       CAST(d.issues_commented AS INT)            AS issues_commented,
       CAST(d.issues_assigned AS INT)             AS issues_assigned,
       CAST(d.at_mentions AS INT)                 AS at_mentions,
       CAST(d.issues_viewed AS INT)               AS issues_viewed,
       CAST(d.issues_completed AS INT)            AS issues_completed,
       CAST(d.mobile_usage AS INT)                AS mobile_usage,
       CAST(d.sprint_started AS INT)              AS sprint_started,
       CAST(d.sprint_finished AS INT)             AS sprint_finished
FROM daily d
JOIN w1_cohort c ON c.instance = d.instance
LEFT JOIN new_users n ON n.instance = d.instance AND n.event_date = d.event_date
