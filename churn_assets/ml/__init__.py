"""Pure modelling logic of the churn platform: no Dagster, no Spark, pandas frames in.

- `preprocessing`: the talk's median imputation + max-abs scaling, fitted once and stored as JSON.
- `model`: the talk's XGBoost model, safe (pickle-free) persistence, decision threshold, model card.
- `metrics`: metric computations (classification, probability quality, lift) and the talk's table.
- `evaluation`: the talk's random-split comparison and an out-of-time backtest.
- `scoring`: the predictions table for `instances_w1`.
"""
