-- The predictions table's DDL, templated by schema and location ({marketing_schema}, {location}):
-- every cohort-week CSV that predictions wrote under the location, as one table (not partitioned).
-- Columns: instances_w1's, then the contract's prediction_retained, retain_probability and
-- model_version, then segment and top_reasons (churn_assets/ml/scoring.py).
-- top_reasons is free text with commas, so the CSV quotes it: a plain delimited table would split
-- it. OpenCSVSerde parses the quotes. Athena reads the declared types through it; Hive and Spark
-- SQL read every column as a string and ignore skip.header.line.count, so read through the view
-- below, which drops the header lines and casts to the declared types (a no-op in Athena).
CREATE DATABASE IF NOT EXISTS {marketing_schema};
DROP TABLE IF EXISTS {marketing_schema}.predictions;
CREATE EXTERNAL TABLE {marketing_schema}.predictions (
  instance             BIGINT
  ,eval_start_date     STRING
  ,number_of_projects  INT
  ,number_of_issues    INT
  ,number_of_invites   INT
  ,w1_active_users     INT
  ,w1_agg_active_users INT
  ,w1_max_active_users INT
  ,watchers_added      INT
  ,issues_updated      INT
  ,issues_commented    INT
  ,issues_assigned     INT
  ,at_mentions         INT
  ,issues_viewed       INT
  ,issues_completed    INT
  ,mobile_usage        INT
  ,sprint_started      INT
  ,sprint_finished     INT
  ,prediction_retained INT
  ,retain_probability  DOUBLE
  ,model_version       STRING
  ,segment             STRING
  ,top_reasons         STRING
)
ROW FORMAT SERDE 'org.apache.hadoop.hive.serde2.OpenCSVSerde'
WITH SERDEPROPERTIES ('separatorChar'=',', 'quoteChar'='"')
STORED AS TEXTFILE
LOCATION '{location}'
TBLPROPERTIES ('skip.header.line.count'='1');
CREATE OR REPLACE VIEW {marketing_schema}.predictions_rows AS
SELECT
  CAST(instance AS BIGINT) AS instance
  ,eval_start_date
  ,CAST(number_of_projects AS INT) AS number_of_projects
  ,CAST(number_of_issues AS INT) AS number_of_issues
  ,CAST(number_of_invites AS INT) AS number_of_invites
  ,CAST(w1_active_users AS INT) AS w1_active_users
  ,CAST(w1_agg_active_users AS INT) AS w1_agg_active_users
  ,CAST(w1_max_active_users AS INT) AS w1_max_active_users
  ,CAST(watchers_added AS INT) AS watchers_added
  ,CAST(issues_updated AS INT) AS issues_updated
  ,CAST(issues_commented AS INT) AS issues_commented
  ,CAST(issues_assigned AS INT) AS issues_assigned
  ,CAST(at_mentions AS INT) AS at_mentions
  ,CAST(issues_viewed AS INT) AS issues_viewed
  ,CAST(issues_completed AS INT) AS issues_completed
  ,CAST(mobile_usage AS INT) AS mobile_usage
  ,CAST(sprint_started AS INT) AS sprint_started
  ,CAST(sprint_finished AS INT) AS sprint_finished
  ,CAST(prediction_retained AS INT) AS prediction_retained
  ,CAST(retain_probability AS DOUBLE) AS retain_probability
  ,model_version
  ,segment
  ,top_reasons
FROM {marketing_schema}.predictions WHERE eval_start_date <> 'eval_start_date';
