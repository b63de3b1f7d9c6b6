-- The evaluators whose evaluation started in [{first_day}, {end_day}): one row per instance, at its
-- earliest start date (an instance listed twice counts once). Registered as the temp view
-- w1_cohort (churn_assets/features.py register_w1_views) over the temp view raw_instances.
SELECT instance, MIN(eval_start_date) AS eval_start_date
FROM raw_instances
WHERE instance IS NOT NULL AND eval_start_date IS NOT NULL
GROUP BY instance
HAVING MIN(eval_start_date) >= DATE '{first_day}' AND MIN(eval_start_date) < DATE '{end_day}'
