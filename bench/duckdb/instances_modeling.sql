-- DuckDB translation of sql/instances_modeling.sql (benchmark only).
-- Spark -> DuckDB: date_add(d, n) -> d + n; date_format(d, 'yyyy-MM-dd') -> strftime(d, '%Y-%m-%d').
WITH converted AS (
    SELECT DISTINCT f.instance
    FROM w1_features f
    JOIN raw_conversions v ON v.instance = f.instance
    WHERE v.converted_date >= f.eval_start_date
      AND v.converted_date < f.eval_start_date + {label_window_days}
)
SELECT f.instance,
       strftime(f.eval_start_date, '%Y-%m-%d') AS eval_start_date,
       CASE WHEN c.instance IS NULL THEN 0 ELSE 1 END AS retained,
       f.number_of_projects, f.number_of_issues, f.number_of_invites,
       f.w1_active_users, f.w1_agg_active_users, f.w1_max_active_users,
       f.watchers_added, f.issues_updated, f.issues_commented, f.issues_assigned,
       f.at_mentions, f.issues_viewed, f.issues_completed, f.mobile_usage,
       f.sprint_started, f.sprint_finished
FROM w1_features f
LEFT JOIN converted c ON c.instance = f.instance
