"""Raw-usage simulator: writes the contract's raw tables (and the hidden truth) for a storage root.

It stands in for the product's telemetry, which this project does not own. The data follow
`CONTRACT.md` exactly and are calibrated so that the contract's week-1 features reproduce the
source talk (about 23.7 % retained; XGBoost accuracy 0.88, precision 0.80, recall 0.64; logistic
regression more precise and less sensitive; the talk's ranking of feature correlations).

The behavioural model, per evaluator instance (a site that started an evaluation):

* a latent **intent** ``z ~ N(0, 1)``, a **team size** (1 + a lognormal draw correlated with
  intent), a product, a region and a per-instance **engagement** deviation ``u`` (behaviour that
  intent does not explain);
* a share (about a quarter, more among low intent) are **ghosts**: they sign up and never come
  back (half of them leave a few day-0 events, the others nothing at all);
* the admin (user 0) is active on day 0; other team members are invited by the admin on some day
  (the admin's ``user_invited`` events; a few admins also invite a list of addresses that never
  join), most accept and join; every day each joined member is active with a probability that
  rises with intent and engagement, varies by user, falls on weekends and fades over the days;
* an active user-day yields event counts per event type (Poisson with type-specific rates that
  depend on intent and engagement, times an instance-level spread; the rarer features are only
  adopted by some instances); ``issue_viewed`` is always there, the admin creates the first
  project on day 0, sprints only happen in Jira Software, a few users also work on ``mobile``;
* the **true probability** that the instance converts inside the label window (``retained``) is
  ``sigmoid(b0 + softplus(c0 + c_z * intent + c_b * log1p(w1 user-days) + c_t * log(team)))``
  (w1 user-days: the sum over week 1 of each day's active users),
  drawn once week 1 has been simulated (the team acts through the active user-days); the
  softplus levels the odds off at ``sigmoid(b0)`` for evaluators whose usage says nothing
  (purchases decided elsewhere). A retained instance converts on a day inside the window; some of
  the others convert later (outside the window, so not retained);
* usage goes on after week 1 (days 7 to 34), fading, and more for converters. It carries no
  information into week 1: week-1 behaviour is drawn before the outcome.

Noise, at low rates and counted in the summary: unknown event types, events dated 1-5 days before
the evaluation started, exact duplicate rows and events of instances missing from
``raw/instances`` (orphans). No nulls.

Everything is vectorised with numpy (loops run over days, weeks and event types only) and
deterministic for a seed: the same arguments write byte-identical Parquet files.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from churn_assets import contract
from churn_assets.weeks import latest_labelled_week, week_key, week_of

__all__ = ["SimulationSummary", "BehaviourModel", "EventTypeRate", "NOISE_KINDS", "simulate"]

_EPOCH = date(1970, 1, 1)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_MONDAY_OFFSET = 4  # 1970-01-01 was a Thursday: day 4 since the epoch is the first Monday

#: The noise kinds the summary counts (rows of usage_events).
NOISE_KINDS: tuple[str, ...] = (
    "unknown_event_type",
    "pre_start_event",
    "duplicate_row",
    "orphan_event",
)

UNKNOWN_EVENT_TYPES: tuple[str, ...] = ("page_loaded", "app_opened", "session_started")
PRODUCTS: tuple[str, ...] = ("jira-software", "jira-core", "jira-service-desk", "confluence")
REGIONS: tuple[str, ...] = ("amer", "emea", "apac", "other")
SOFTWARE = 0  # index of jira-software in PRODUCTS: the only product with sprints


@dataclass(frozen=True)
class EventTypeRate:
    """Poisson rate of one event type on an active user-day.

    rate = base * exp(intent * z + engagement * u) * spread_i * (admin if the user is the admin),
    where spread_i is an instance-level lognormal factor with log-sd `spread` (mean 1), for the
    instances that adopt the feature at all (probability sigmoid(adopt + adopt_intent * z)).
    """

    base: float
    intent: float
    engagement: float
    spread: float
    admin: float = 1.0
    adopt: float = 20.0  # logit of the share of instances that use the feature (default: all)
    adopt_intent: float = 0.0
    mobile: bool = False  # whether the event also happens on the mobile app
    software_only: bool = False  # sprints exist in Jira Software only


@dataclass(frozen=True)
class BehaviourModel:
    """Parameters of the behavioural model (calibrated against the talk; see the module doc)."""

    # instance level
    engagement_sd: float = 0.6
    team_mu: float = 0.55
    team_intent: float = 0.35
    team_sd: float = 0.95
    team_cap: int = 60
    ghost_logit: float = -1.45
    ghost_intent: float = 1.1
    ghost_day0_share: float = 0.5
    product_p: tuple[float, ...] = (0.55, 0.15, 0.12, 0.18)
    region_p: tuple[float, ...] = (0.46, 0.33, 0.17, 0.04)
    weekday_p: tuple[float, ...] = (1.15, 1.2, 1.15, 1.1, 1.0, 0.55, 0.5)  # Monday .. Sunday
    orphan_share: float = 0.01  # extra instances whose rows in raw/instances are missing
    # invitations
    invite_logit: float = 0.4
    invite_intent: float = 0.6
    invite_scale_days: float = 2.0
    invite_speed: float = 0.35
    accept_p: float = 0.85
    bulk_invite_p: float = 0.06  # admins who invite a list of addresses, few of whom ever join
    bulk_invite_mean: float = 4.0
    # daily activity of a joined member
    horizon_days: int = 35
    active_logit: float = -0.3
    active_intent: float = 1.1
    active_engagement: float = 1.0
    active_user_sd: float = 1.6
    active_admin: float = 0.7
    active_weekend: float = -1.2
    active_fade: float = 0.07  # per day
    post_fade: float = 0.15  # extra, per day after week 1
    post_converted: float = 0.4
    post_other: float = -2.5
    mobile_user_p: float = 0.08
    mobile_share_a: float = 1.5
    mobile_share_b: float = 4.0
    # conversion
    conv_base_logit: float = -3.3  # the odds of an evaluator whose usage says nothing
    conv_logit: float = -6.75
    conv_intent: float = 1.9
    conv_behaviour: float = 3.6
    conv_team: float = 0.0
    window_delay_a: float = 1.6
    window_delay_b: float = 2.4
    late_share: float = 0.35  # of the non-retained, times their probability, convert later
    late_scale_days: float = 20.0
    # noise rates, relative to the clean event rows
    unknown_rate: float = 0.015
    pre_start_rate: float = 0.008
    duplicate_rate: float = 0.01
    event_types: dict[str, EventTypeRate] = field(
        default_factory=lambda: {
            "project_created": EventTypeRate(0.05, 0.5, 0.5, 0.6, admin=3.0),
            "issue_created": EventTypeRate(0.9, 0.3, 0.3, 0.45, admin=1.3),
            "issue_updated": EventTypeRate(1.3, 0.3, 0.3, 0.4),
            "issue_commented": EventTypeRate(1.0, 0.3, 0.3, 0.5, mobile=True, adopt=-0.3),
            "issue_assigned": EventTypeRate(1.0, 0.3, 0.3, 0.5, admin=1.4, adopt=0.0),
            "user_mentioned": EventTypeRate(0.5, 0.1, 0.3, 0.6, mobile=True, adopt=-1.5),
            "issue_viewed": EventTypeRate(3.0, 0.2, 0.3, 0.8, mobile=True),
            "issue_completed": EventTypeRate(
                0.4, -0.5, 0.0, 0.6, mobile=True, adopt=-1.0, adopt_intent=-0.5
            ),
            "watcher_added": EventTypeRate(0.4, 0.3, 0.3, 0.4),
            "sprint_started": EventTypeRate(
                0.2, 0.6, 0.4, 0.4, admin=2.0, software_only=True, adopt=0.0, adopt_intent=1.3
            ),
            "sprint_finished": EventTypeRate(
                0.1, -0.2, 0.2, 0.6, admin=2.0, software_only=True, adopt=-1.2
            ),
        }
    )


#: The model `simulate` uses (calibration scripts may swap it for a `dataclasses.replace`d copy).
MODEL = BehaviourModel()


@dataclass(frozen=True)
class SimulationSummary:
    root: str
    as_of: date
    seed: int
    instances: int  # rows written to raw/instances (labelled + recent cohorts)
    labelled_instances: int
    recent_instances: int  # cohorts after the last labelled week: labels not in yet
    orphan_instances: int  # simulated instances left out of raw/instances (their events remain)
    event_rows: int  # rows written to raw/usage_events, noise included
    conversions: int  # rows written to raw/conversions
    noise_rows: dict[str, int]  # kind (NOISE_KINDS) -> usage_events rows
    seconds: float
    week_keys: dict[str, tuple[str, ...]]  # table (contract path, or TRUTH) -> week keys written
    first_labelled_week: date
    last_labelled_week: date


# --------------------------------------------------------------------------------------------
# helpers


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _day_number(day: date) -> int:
    return day.toordinal() - _EPOCH_ORDINAL


def _day_to_date(n: int) -> date:
    return date.fromordinal(int(n) + _EPOCH_ORDINAL)


def _monday_number(days: np.ndarray) -> np.ndarray:
    return (days - _MONDAY_OFFSET) // 7 * 7 + _MONDAY_OFFSET


def _strings(codes: np.ndarray, names: tuple[str, ...] | list[str]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(
        pa.array(codes.astype(np.int32)), pa.array(list(names), pa.string())
    ).cast(pa.string())


def _dates(days: np.ndarray) -> pa.Array:
    return pa.array(days.astype(np.int32), pa.int32()).view(pa.date32())


def _unique_ids(rng: np.random.Generator, n: int, start: int) -> np.ndarray:
    """n increasing unique int64 ids with small random gaps."""
    return start + np.cumsum(1 + rng.geometric(0.6, size=n)).astype(np.int64)


# --------------------------------------------------------------------------------------------
# cohorts


def _cohort_start_days(
    rng: np.random.Generator, instances: int, weeks: int, as_of: date, label_window_days: int,
    model: BehaviourModel,
) -> tuple[np.ndarray, int, date, date]:
    """Eval start days (days since the epoch) of labelled then recent cohorts, and their split."""
    last = latest_labelled_week(as_of, label_window_days)
    first = last - timedelta(weeks=weeks - 1)
    weekday_p = np.asarray(model.weekday_p, dtype=float)
    weekday_p = weekday_p / weekday_p.sum()
    per_week = np.full(weeks, instances // weeks, dtype=np.int64)
    per_week[: instances % weeks] += 1
    chunks = []
    for i, n in enumerate(per_week):
        monday = _day_number(first + timedelta(weeks=i))
        chunks.append(monday + rng.choice(7, size=int(n), p=weekday_p))
    labelled = int(per_week.sum())
    rate = int(round(instances / weeks))
    as_of_day = _day_number(as_of)
    monday = _day_number(last) + 7
    while monday <= _day_number(week_of(as_of)):
        days = monday + rng.choice(7, size=rate, p=weekday_p)
        chunks.append(days[days < as_of_day])
        monday += 7
    return np.concatenate(chunks).astype(np.int64), labelled, first, last


# --------------------------------------------------------------------------------------------
# the behavioural model


def _generate(
    rng: np.random.Generator,
    start: np.ndarray,
    as_of_day: int,
    label_window_days: int,
    model: BehaviourModel,
) -> dict[str, np.ndarray]:
    """Simulate every instance; returns column arrays (instance-level and event-level)."""
    m = model
    n = len(start)
    z = rng.standard_normal(n)
    eng = rng.standard_normal(n) * m.engagement_sd
    product = rng.choice(len(PRODUCTS), size=n, p=np.asarray(m.product_p) / sum(m.product_p))
    region = rng.choice(len(REGIONS), size=n, p=np.asarray(m.region_p) / sum(m.region_p))
    team = 1 + np.minimum(
        np.floor(np.exp(m.team_mu + m.team_intent * z + m.team_sd * rng.standard_normal(n))),
        m.team_cap - 1,
    ).astype(np.int64)
    ghost = rng.random(n) < _sigmoid(m.ghost_logit - m.ghost_intent * z)
    ghost_day0 = ghost & (rng.random(n) < m.ghost_day0_share)
    horizon = np.clip(as_of_day - start, 0, m.horizon_days)  # simulated days: d < horizon

    # users: the admin (rank 0) and, unless a ghost, the rest of the team
    n_users = np.where(ghost, 1, team)
    first_user = np.concatenate([[0], np.cumsum(n_users)[:-1]])
    user_inst = np.repeat(np.arange(n), n_users)
    n_u = len(user_inst)
    rank = np.arange(n_u) - first_user[user_inst]
    admin = rank == 0
    zu, eu = z[user_inst], eng[user_inst]
    never = np.iinfo(np.int64).max // 4

    invited = (~admin) & (
        rng.random(n_u) < _sigmoid(m.invite_logit + m.invite_intent * zu + eu)
    )
    invite_day = np.floor(
        rng.exponential(m.invite_scale_days * np.exp(-m.invite_speed * zu))
    ).astype(np.int64)
    invite_day = np.where(invited, invite_day, never)
    accepted = invited & (rng.random(n_u) < m.accept_p)
    join_day = np.where(accepted, invite_day + (rng.random(n_u) < 0.4), never)
    admin_join = np.where(ghost[user_inst] & ~ghost_day0[user_inst], never, 0)
    join_day = np.where(admin, admin_join, join_day)

    # the admin's invitations, per instance and day (the admin is active on those days)
    inv = invited & (invite_day < horizon[user_inst])
    inv_key = user_inst[inv] * m.horizon_days + invite_day[inv]
    inv_per_day = np.bincount(inv_key, minlength=n * m.horizon_days).reshape(n, m.horizon_days)
    bulk = ~ghost & (rng.random(n) < m.bulk_invite_p)
    bulk_day = rng.integers(0, 3, size=n)
    bulk_size = rng.geometric(1.0 / m.bulk_invite_mean, size=n)
    bulk &= bulk_day < horizon
    inv_per_day[np.flatnonzero(bulk), bulk_day[bulk]] += bulk_size[bulk]

    user_effect = rng.standard_normal(n_u) * m.active_user_sd
    base_logit = (
        m.active_logit + m.active_intent * zu + m.active_engagement * eu + user_effect
        + m.active_admin * admin
    )
    start_u = start[user_inst]
    horizon_u = horizon[user_inst]
    ghost_u = ghost[user_inst]
    mobile_share = np.where(
        rng.random(n_u) < m.mobile_user_p, rng.beta(m.mobile_share_a, m.mobile_share_b, n_u), 0.0
    )

    ud_user: list[np.ndarray] = []
    ud_day: list[np.ndarray] = []

    def simulate_day(d: int, extra: np.ndarray | float) -> None:
        weekday = (start_u + d - _MONDAY_OFFSET) % 7
        logit = base_logit - m.active_fade * d + m.active_weekend * (weekday >= 5) + extra
        draw = rng.random(n_u) < _sigmoid(logit)
        can = (join_day <= d) & (d < horizon_u) & ~ghost_u
        active = can & (draw | (join_day == d))
        if d < m.horizon_days:
            active |= admin & (inv_per_day[user_inst, d] > 0) & (d < horizon_u)
        if d == 0:
            active |= admin & (join_day == 0) & (horizon_u > 0)  # ghosts' day-0 visit too
        idx = np.flatnonzero(active)
        ud_user.append(idx)
        ud_day.append(np.full(len(idx), d, dtype=np.int64))

    for d in range(contract.W1_DAYS):
        simulate_day(d, 0.0)

    # the outcome, drawn once week 1 is known
    w1_users = np.concatenate(ud_user)
    agg_w1 = np.bincount(user_inst[w1_users], minlength=n)
    score = (
        m.conv_logit + m.conv_intent * z + m.conv_behaviour * np.log1p(agg_w1)
        + m.conv_team * np.log(team)
    )
    # softplus: below the score's range the odds level off at the baseline (sales-led purchases)
    p = _sigmoid(m.conv_base_logit + np.logaddexp(0.0, score))
    retained = rng.random(n) < p
    late = ~retained & (rng.random(n) < m.late_share * p)
    in_window = np.minimum(
        np.floor(rng.beta(m.window_delay_a, m.window_delay_b, n) * label_window_days),
        label_window_days - 1,
    )
    later = label_window_days + np.floor(rng.exponential(m.late_scale_days, n))
    delay = np.where(retained, in_window, later).astype(np.int64)
    converted = retained | late

    post = np.where(converted, m.post_converted, m.post_other)[user_inst]
    for d in range(contract.W1_DAYS, m.horizon_days):
        simulate_day(d, post - m.post_fade * (d - contract.W1_DAYS))

    ud_u = np.concatenate(ud_user)
    ud_d = np.concatenate(ud_day)
    ud_i = user_inst[ud_u]
    n_ud = len(ud_u)

    # event counts per active user-day and event type
    rows_ud: list[np.ndarray] = []
    rows_type: list[np.ndarray] = []
    rows_platform: list[np.ndarray] = []
    rows_count: list[np.ndarray] = []
    type_code = {t: k for k, t in enumerate(contract.EVENT_TYPES)}
    z_ud, e_ud, admin_ud = z[ud_i], eng[ud_i], admin[ud_u]
    software_ud = product[ud_i] == SOFTWARE
    mob_ud = mobile_share[ud_u]
    has_mob = mob_ud > 0
    for name, spec in m.event_types.items():
        spread = np.exp(spec.spread * rng.standard_normal(n) - spec.spread**2 / 2)
        spread *= rng.random(n) < _sigmoid(spec.adopt + spec.adopt_intent * z)
        lam = spec.base * np.exp(spec.intent * z_ud + spec.engagement * e_ud) * spread[ud_i]
        lam = np.where(admin_ud, lam * spec.admin, lam)
        if spec.software_only:
            lam = np.where(software_ud, lam, 0.0)
        count = rng.poisson(lam)
        if name == "issue_viewed":
            count = count + 1  # an active user-day always views something
        elif name == "project_created":
            count = count + (admin_ud & (ud_d == 0))  # the evaluation starts with a project
        mobile = np.zeros(n_ud, dtype=np.int64)
        if spec.mobile:
            mobile[has_mob] = rng.binomial(count[has_mob], mob_ud[has_mob])
        web = count - mobile
        code = type_code[name]
        for platform, c in ((0, web), (1, mobile)):
            keep = np.flatnonzero(c > 0)
            rows_ud.append(keep)
            rows_type.append(np.full(len(keep), code, dtype=np.int64))
            rows_platform.append(np.full(len(keep), platform, dtype=np.int64))
            rows_count.append(c[keep])

    ev_ud = np.concatenate(rows_ud)
    ev_user = ud_u[ev_ud]
    ev_day = ud_d[ev_ud]
    ev_type = np.concatenate(rows_type)
    ev_platform = np.concatenate(rows_platform)
    ev_count = np.concatenate(rows_count)

    # the admin's user_invited rows: one per day with invitations
    inv_inst, inv_d = np.divmod(np.flatnonzero(inv_per_day.ravel()), m.horizon_days)
    inv_count = inv_per_day[inv_inst, inv_d]
    ev_user = np.concatenate([ev_user, first_user[inv_inst]])
    ev_day = np.concatenate([ev_day, inv_d])
    ev_type = np.concatenate([ev_type, np.full(len(inv_inst), type_code["user_invited"])])
    ev_platform = np.concatenate([ev_platform, np.zeros(len(inv_inst), dtype=np.int64)])
    ev_count = np.concatenate([ev_count, inv_count])

    return {
        "z": z,
        "product": product,
        "region": region,
        "team": team,
        "ghost": ghost,
        "p": p,
        "retained": retained,
        "converted": converted,
        "delay": delay,
        "user_inst": user_inst,
        "join_day": join_day,
        "admin": admin,
        "first_user": first_user,
        "ev_user": ev_user,
        "ev_day": ev_day,
        "ev_type": ev_type,
        "ev_platform": ev_platform,
        "ev_count": ev_count,
    }


# --------------------------------------------------------------------------------------------
# the tables


def _build_tables(
    instances: int,
    weeks: int,
    as_of: date,
    seed: int,
    label_window_days: int,
    model: BehaviourModel,
) -> tuple[dict[str, pa.Table], dict[str, int], dict[str, int | date]]:
    if instances < weeks or weeks < 1:
        raise ValueError(f"need weeks >= 1 and instances >= weeks, got {instances=} {weeks=}")
    if label_window_days < 1:
        raise ValueError(f"label_window_days must be >= 1, got {label_window_days}")
    rng = np.random.default_rng(seed)
    as_of_day = _day_number(as_of)

    real_start, labelled, first, last = _cohort_start_days(
        rng, instances, weeks, as_of, label_window_days, model
    )
    n_real = len(real_start)
    n_orphan = int(round(model.orphan_share * n_real))
    orphan_start = rng.choice(real_start, size=n_orphan) if n_orphan else real_start[:0]
    start_all = np.concatenate([real_start, orphan_start])
    orphan_all = np.concatenate([np.zeros(n_real, bool), np.ones(n_orphan, bool)])
    order = np.lexsort((rng.random(len(start_all)), start_all))  # by start day, shuffled within
    start = start_all[order]
    orphan = orphan_all[order]
    n = len(start)

    g = _generate(rng, start, as_of_day, label_window_days, model)
    instance_id = _unique_ids(rng, n, 10_000_000)
    user_id = _unique_ids(rng, len(g["user_inst"]), 500_000_000)

    # clean events
    ev_inst = g["user_inst"][g["ev_user"]]
    ev_date = start[ev_inst] + g["ev_day"]
    ev_user = g["ev_user"]
    ev_type = g["ev_type"]
    ev_platform = g["ev_platform"]
    ev_count = g["ev_count"]
    n_clean = len(ev_inst)
    noise = dict.fromkeys(NOISE_KINDS, 0)
    noise["orphan_event"] = int(orphan[ev_inst].sum())
    n_types = len(contract.EVENT_TYPES)

    # unknown event types: on any day of a user's first two weeks, active or not
    joined = np.flatnonzero((g["join_day"] < model.horizon_days) & ~orphan[g["user_inst"]])
    k = int(round(model.unknown_rate * n_clean))
    u_user = rng.choice(joined, size=k) if len(joined) and k else np.zeros(0, np.int64)
    u_day = g["join_day"][u_user] + rng.integers(0, 14, size=len(u_user))
    u_type = n_types + rng.integers(0, len(UNKNOWN_EVENT_TYPES), size=len(u_user))
    u_platform = (rng.random(len(u_user)) < 0.2).astype(np.int64)
    u_key = np.unique(((u_user * 64 + u_day) * 16 + u_type) * 2 + u_platform)
    u_platform, u_key = u_key % 2, u_key // 2
    u_type, u_key = u_key % 16, u_key // 16
    u_day, u_user = u_key % 64, u_key // 64
    u_inst = g["user_inst"][u_user]
    u_date = start[u_inst] + u_day
    keep = u_date < as_of_day
    u_user, u_inst, u_date, u_type, u_platform = (
        a[keep] for a in (u_user, u_inst, u_date, u_type, u_platform)
    )
    noise["unknown_event_type"] = len(u_user)

    # events dated 1-5 days before the evaluation started (the admin's, contract types)
    real_idx = np.flatnonzero(~orphan)
    k = int(round(model.pre_start_rate * n_clean))
    p_inst = rng.choice(real_idx, size=k) if k else np.zeros(0, np.int64)
    p_back = rng.integers(1, 6, size=k)
    p_type = rng.choice(
        [
            contract.EVENT_TYPES.index(t)
            for t in ("issue_viewed", "issue_created", "project_created", "issue_updated")
        ],
        size=k,
    )
    p_key = np.unique((p_inst * 8 + p_back) * 16 + p_type)
    p_type, p_key = p_key % 16, p_key // 16
    p_back, p_inst = p_key % 8, p_key // 8
    p_user = g["first_user"][p_inst]
    p_date = start[p_inst] - p_back
    p_count = 1 + rng.poisson(1.5, size=len(p_inst))
    noise["pre_start_event"] = len(p_inst)

    ev_inst = np.concatenate([ev_inst, u_inst, p_inst])
    ev_user = np.concatenate([ev_user, u_user, p_user])
    ev_date = np.concatenate([ev_date, u_date, p_date])
    ev_type = np.concatenate([ev_type, u_type, p_type])
    ev_platform = np.concatenate([ev_platform, u_platform, np.zeros(len(p_inst), np.int64)])
    ev_count = np.concatenate([ev_count, 1 + rng.poisson(2.0, size=len(u_user)), p_count])

    # exact duplicates of random rows
    k = int(round(model.duplicate_rate * n_clean))
    dup = rng.choice(len(ev_inst), size=k, replace=False) if k else np.zeros(0, np.int64)
    noise["duplicate_row"] = len(dup)
    ev_inst, ev_user, ev_date, ev_type, ev_platform, ev_count = (
        np.concatenate([a, a[dup]])
        for a in (ev_inst, ev_user, ev_date, ev_type, ev_platform, ev_count)
    )

    keep = ev_date < as_of_day
    if not keep.all():  # by construction nothing is dropped; kept as a guard
        raise AssertionError("simulated an event on or after as_of")
    order = np.lexsort((ev_platform, ev_type, ev_user, ev_inst, ev_date))
    type_names = (*contract.EVENT_TYPES, *UNKNOWN_EVENT_TYPES)
    events = pa.table(
        {
            "instance": pa.array(instance_id[ev_inst[order]], pa.int64()),
            "user_id": pa.array(user_id[ev_user[order]], pa.int64()),
            "event_date": _dates(ev_date[order]),
            "event_type": _strings(ev_type[order], type_names),
            "platform": _strings(ev_platform[order], contract.PLATFORMS),
            "event_count": pa.array(ev_count[order].astype(np.int32), pa.int32()),
        }
    )

    # instances (orphans left out), truth, conversions
    real = np.flatnonzero(~orphan)
    instances_t = pa.table(
        {
            "instance": pa.array(instance_id[real], pa.int64()),
            "eval_start_date": _dates(start[real]),
            "product": _strings(g["product"][real], PRODUCTS),
            "region": _strings(g["region"][real], REGIONS),
        }
    )
    truth = pa.table(
        {
            "instance": pa.array(instance_id[real], pa.int64()),
            "eval_start_date": _dates(start[real]),
            "true_probability": pa.array(g["p"][real].astype(np.float64), pa.float64()),
        }
    )
    conv_day = start + g["delay"]
    conv = np.flatnonzero(~orphan & g["converted"] & (conv_day < as_of_day))
    conv = conv[np.lexsort((instance_id[conv], conv_day[conv]))]
    conversions = pa.table(
        {
            "instance": pa.array(instance_id[conv], pa.int64()),
            "converted_date": _dates(conv_day[conv]),
        }
    )
    tables = {
        contract.RAW_INSTANCES: instances_t,
        contract.RAW_USAGE_EVENTS: events,
        contract.RAW_CONVERSIONS: conversions,
        contract.TRUTH: truth,
    }
    info = {
        "labelled": labelled,
        "recent": n_real - labelled,
        "orphans": n_orphan,
        "first": first,
        "last": last,
    }
    return tables, noise, info


# --------------------------------------------------------------------------------------------
# writing


_PART = "part-0.parquet"


def _write_weeks(
    root: pathlib.Path, rel: str, table: pa.Table, date_column: str
) -> tuple[str, ...]:
    """Write `table` (sorted by `date_column`) as one file per week folder; returns the week keys.

    Each file is written to a hidden temp name in its folder and moved into place with os.replace;
    anything else the folder held (an older run's files) is then removed, so a re-run replaces.
    """
    days = table.column(date_column).cast(pa.int32()).to_numpy()
    if len(days) and np.any(np.diff(days) < 0):
        raise AssertionError(f"{rel}: rows are not sorted by {date_column}")
    mondays = _monday_number(days)
    cuts = np.concatenate([[0], np.flatnonzero(np.diff(mondays)) + 1, [len(days)]])
    keys = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        if b <= a:
            continue
        key = week_key(_day_to_date(mondays[a]))
        folder = root / rel / f"week={key}"
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{_PART}.{os.getpid()}.tmp"
        pq.write_table(table.slice(a, b - a), tmp, compression="snappy")
        os.replace(tmp, folder / _PART)
        for entry in folder.iterdir():
            if entry.name != _PART:
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    entry.unlink()
        keys.append(key)
    return tuple(keys)


def _write_tables(root: pathlib.Path, tables: dict[str, pa.Table]) -> dict[str, tuple[str, ...]]:
    return {
        rel: _write_weeks(root, rel, table, contract.PARTITION_DATE_COLUMN.get(rel, "eval_start_date"))
        for rel, table in tables.items()
    }


def simulate(
    root: str | pathlib.Path,
    instances: int = 57_700,
    weeks: int = 13,
    as_of: date | None = None,
    seed: int = 27,
    label_window_days: int = contract.DEFAULT_LABEL_WINDOW_DAYS,
) -> SimulationSummary:
    """Write the raw tables and the truth for `instances` labelled evaluators under `root`.

    The labelled cohorts are the `weeks` weeks ending at `latest_labelled_week(as_of)`; the weeks
    after them, up to the week of `as_of`, get evaluators at the same weekly rate but their labels
    are not in yet. Every date written is before `as_of` (default: today, UTC).
    """
    t0 = time.perf_counter()
    if as_of is None:
        as_of = datetime.now(timezone.utc).date()
    elif isinstance(as_of, datetime):
        as_of = as_of.date()
    tables, noise, info = _build_tables(instances, weeks, as_of, seed, label_window_days, MODEL)
    if str(root).startswith("s3://"):
        # Written locally, then uploaded through the storage resource (one atomic PUT per file).
        from resources.storage import StorageRoot

        with tempfile.TemporaryDirectory(prefix="churn-simulate-") as staging:
            week_keys = _write_tables(pathlib.Path(staging), tables)
            StorageRoot(root=str(root)).upload_folder(staging)
    else:
        week_keys = _write_tables(pathlib.Path(root), tables)
    return SimulationSummary(
        root=str(root),
        as_of=as_of,
        seed=seed,
        instances=tables[contract.RAW_INSTANCES].num_rows,
        labelled_instances=int(info["labelled"]),
        recent_instances=int(info["recent"]),
        orphan_instances=int(info["orphans"]),
        event_rows=tables[contract.RAW_USAGE_EVENTS].num_rows,
        conversions=tables[contract.RAW_CONVERSIONS].num_rows,
        noise_rows=noise,
        seconds=time.perf_counter() - t0,
        week_keys=week_keys,
        first_labelled_week=info["first"],
        last_labelled_week=info["last"],
    )
