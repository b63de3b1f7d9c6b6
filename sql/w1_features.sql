-- Week-1 usage features of every evaluator whose evaluation started in [{first_day}, {end_day}).
-- The one definition of the contract's features: instances_modeling.sql (training) and
-- instances_w1.sql (scoring) both select from the view this query is registered as (w1_features),
-- so training and scoring features can never diverge.
--
-- Reads the temp views w1_cohort (sql/w1_cohort.sql: who) and w1_events (sql/w1_events.sql: which
-- raw rows count), registered by churn_assets/features.py register_w1_views.
--
-- One pass, no shuffle of its own: w1_events arrives hash-partitioned by instance, and every
-- grouping below has instance among its keys, so Spark aggregates in place. The daily active-user
-- features come from user_days (one row per instance, user and day with activity):
--   w1_agg_active_users = sum over days of that day's distinct users = the number of user-days;
--   w1_max_active_users = max over days of that day's user-days;
--   w1_active_users     = distinct users over the user-days.
WITH user_days AS (
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
-- An evaluator with no week-1 events has all-zero features; it is never dropped.
SELECT c.instance,
       c.eval_start_date,
       CAST(COALESCE(s.number_of_projects, 0) AS INT)  AS number_of_projects,
       CAST(COALESCE(s.number_of_issues, 0) AS INT)    AS number_of_issues,
       CAST(COALESCE(s.number_of_invites, 0) AS INT)   AS number_of_invites,
       CAST(COALESCE(s.w1_active_users, 0) AS INT)     AS w1_active_users,
       CAST(COALESCE(s.w1_agg_active_users, 0) AS INT) AS w1_agg_active_users,
       CAST(COALESCE(s.w1_max_active_users, 0) AS INT) AS w1_max_active_users,
       CAST(COALESCE(s.watchers_added, 0) AS INT)      AS watchers_added,
       CAST(COALESCE(s.issues_updated, 0) AS INT)      AS issues_updated,
       CAST(COALESCE(s.issues_commented, 0) AS INT)    AS issues_commented,
       CAST(COALESCE(s.issues_assigned, 0) AS INT)     AS issues_assigned,
       CAST(COALESCE(s.at_mentions, 0) AS INT)         AS at_mentions,
       CAST(COALESCE(s.issues_viewed, 0) AS INT)       AS issues_viewed,
       CAST(COALESCE(s.issues_completed, 0) AS INT)    AS issues_completed,
       CAST(COALESCE(s.mobile_usage, 0) AS INT)        AS mobile_usage,
       CAST(COALESCE(s.sprint_started, 0) AS INT)      AS sprint_started,
       CAST(COALESCE(s.sprint_finished, 0) AS INT)     AS sprint_finished
FROM w1_cohort c
LEFT JOIN instance_sums s ON s.instance = c.instance
