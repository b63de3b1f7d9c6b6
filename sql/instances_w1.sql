-- Scoring table: the week-1 features (view w1_features, from w1_features.sql) without a label.
-- For the week in progress the features cover the events that have landed so far.
SELECT f.instance,
       date_format(f.eval_start_date, 'yyyy-MM-dd') AS eval_start_date,
       f.number_of_projects, f.number_of_issues, f.number_of_invites,
       f.w1_active_users, f.w1_agg_active_users, f.w1_max_active_users,
       f.watchers_added, f.issues_updated, f.issues_commented, f.issues_assigned,
       f.at_mentions, f.issues_viewed, f.issues_completed, f.mobile_usage,
       f.sprint_started, f.sprint_finished
FROM w1_features f
