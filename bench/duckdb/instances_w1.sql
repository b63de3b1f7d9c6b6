-- DuckDB translation of sql/instances_w1.sql (benchmark only).
SELECT f.instance,
       strftime(f.eval_start_date, '%Y-%m-%d') AS eval_start_date,
       f.number_of_projects, f.number_of_issues, f.number_of_invites,
       f.w1_active_users, f.w1_agg_active_users, f.w1_max_active_users,
       f.watchers_added, f.issues_updated, f.issues_commented, f.issues_assigned,
       f.at_mentions, f.issues_viewed, f.issues_completed, f.mobile_usage,
       f.sprint_started, f.sprint_finished
FROM w1_features f
