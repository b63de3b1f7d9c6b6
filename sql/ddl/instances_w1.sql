-- The scoring table's DDL, the talk's instances_modeling DDL without `retained`, templated by
-- schema and location ({marketing_schema}, {location}). It reads every cohort-week CSV that
-- instances_w1 wrote under the location as one table (not partitioned: a new week's file is in
-- the table as soon as it lands, with no partition to add).
-- `instance` is BIGINT, the contract's int64 (the talk declared INT).
CREATE DATABASE IF NOT EXISTS {marketing_schema};
DROP TABLE IF EXISTS {marketing_schema}.instances_w1;
CREATE EXTERNAL TABLE {marketing_schema}.instances_w1 (
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
)
ROW FORMAT DELIMITED
FIELDS TERMINATED BY ','
LINES TERMINATED BY '\n'
STORED AS INPUTFORMAT 'org.apache.hadoop.mapred.TextInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION '{location}'
TBLPROPERTIES ('skip.header.line.count'='1');
-- Athena and Hive honour skip.header.line.count; Spark SQL ignores it and reads each file's header
-- line as a row (eval_start_date = 'eval_start_date', numbers NULL). Read through this view.
CREATE OR REPLACE VIEW {marketing_schema}.instances_w1_rows AS
SELECT * FROM {marketing_schema}.instances_w1 WHERE eval_start_date <> 'eval_start_date';
