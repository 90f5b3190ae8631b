//! The backend state machine. Health checks (and the proxies' own failures)
//! move a backend between up, falling, down and rising by its pool's `rise`
//! and `fall`; an operator may set it draining or disabled on top. What the
//! data planes may do with the backend follows from the pair.

use std::fmt;

/// What the checks say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// Serving.
    Up,
    /// Serving, with this many consecutive failures (fewer than `fall`).
    Falling(u32),
    /// Out of rotation.
    Down,
    /// Out of rotation, with this many consecutive successes (fewer than
    /// `rise`).
    Rising(u32),
}

/// What the operator says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Admin {
    /// Follow the checks.
    #[default]
    Enabled,
    /// No new flows; established ones carry on.
    Draining,
    /// Out of rotation, whatever the checks say.
    Disabled,
}

/// The state shown to operators and exported as a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Serving.
    Up,
    /// Serving, but failing checks.
    Falling,
    /// Out of rotation: checks failed `fall` times.
    Down,
    /// Out of rotation, passing checks.
    Rising,
    /// No new flows, by the operator.
    Draining,
    /// Out of rotation, by the operator.
    Disabled,
}

impl State {
    /// Every state, in metric order.
    pub const ALL: [State; 6] = [
        State::Up,
        State::Falling,
        State::Down,
        State::Rising,
        State::Draining,
        State::Disabled,
    ];

    /// Lower-case name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            State::Up => "up",
            State::Falling => "falling",
            State::Down => "down",
            State::Rising => "rising",
            State::Draining => "draining",
            State::Disabled => "disabled",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `rise` and `fall` of a pool.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    /// Consecutive successes that bring a down backend up.
    pub rise: u32,
    /// Consecutive failures that take an up backend down.
    pub fall: u32,
}

impl Health {
    /// The next state after one check result.
    #[must_use]
    pub fn step(self, ok: bool, t: Thresholds) -> Health {
        match (self, ok) {
            (Health::Up | Health::Falling(_), true) => Health::Up,
            (Health::Down | Health::Rising(_), false) => Health::Down,
            (Health::Up, false) => Health::Falling(1).settle(t),
            (Health::Falling(n), false) => Health::Falling(n + 1).settle(t),
            (Health::Down, true) => Health::Rising(1).settle(t),
            (Health::Rising(n), true) => Health::Rising(n + 1).settle(t),
        }
    }

    fn settle(self, t: Thresholds) -> Health {
        match self {
            Health::Falling(n) if n >= t.fall => Health::Down,
            Health::Rising(n) if n >= t.rise => Health::Up,
            other => other,
        }
    }

    /// Whether the backend serves, as far as the checks go.
    #[must_use]
    pub const fn serving(self) -> bool {
        matches!(self, Health::Up | Health::Falling(_))
    }
}

/// Health and admin state of one backend, as the planes read it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// What the checks say.
    pub health: Health,
    /// What the operator says.
    pub admin: Admin,
    /// A weight the operator set at run time, over the configured one.
    pub weight: Option<u32>,
    /// Slow start: the share of its weight the backend gets now, in
    /// thousandths (1000 = all of it).
    pub ramp: u16,
}

/// [`Status::ramp`] of a backend at full weight.
pub const FULL: u16 = 1000;

impl Default for Status {
    fn default() -> Self {
        Self {
            health: Health::Up,
            admin: Admin::Enabled,
            weight: None,
            ramp: FULL,
        }
    }
}

impl Status {
    /// The weight for new flows: the operator's or `configured`, and 0
    /// while the backend takes no new flows.
    #[must_use]
    pub fn new_flow_weight(self, configured: u32) -> u32 {
        if !self.takes_new_flows() {
            return 0;
        }
        let full = self.weight.unwrap_or(configured);
        if self.ramp >= FULL || full == 0 {
            return full;
        }
        // At least 1, so a backend starting its ramp is reachable at all.
        (u64::from(full) * u64::from(self.ramp) / u64::from(FULL)).max(1) as u32
    }

    /// The state to show.
    #[must_use]
    pub const fn state(self) -> State {
        match (self.admin, self.health) {
            (Admin::Disabled, _) => State::Disabled,
            (Admin::Draining, h) if h.serving() => State::Draining,
            (_, Health::Up) => State::Up,
            (_, Health::Falling(_)) => State::Falling,
            (_, Health::Down) => State::Down,
            (_, Health::Rising(_)) => State::Rising,
        }
    }

    /// Whether new flows may go to the backend.
    #[must_use]
    pub const fn takes_new_flows(self) -> bool {
        matches!(self.admin, Admin::Enabled) && self.health.serving()
    }

    /// Whether established flows stay on the backend. A drained backend
    /// keeps them; a down or disabled one loses them, and the XDP plane
    /// places them again.
    #[must_use]
    pub const fn keeps_flows(self) -> bool {
        !matches!(self.admin, Admin::Disabled) && self.health.serving()
    }
}

#[cfg(test)]
mod tests {
    use super::{Admin, Health, State, Status, Thresholds};

    const T: Thresholds = Thresholds { rise: 2, fall: 3 };

    fn run(from: Health, results: &[bool]) -> Vec<Health> {
        let mut h = from;
        results
            .iter()
            .map(|&ok| {
                h = h.step(ok, T);
                h
            })
            .collect()
    }

    #[test]
    fn falls_after_fall_failures_and_rises_after_rise_successes() {
        assert_eq!(
            run(Health::Up, &[false, false, false]),
            [Health::Falling(1), Health::Falling(2), Health::Down]
        );
        assert_eq!(
            run(Health::Down, &[true, true]),
            [Health::Rising(1), Health::Up]
        );
    }

    #[test]
    fn one_contrary_result_resets_the_count() {
        assert_eq!(
            run(Health::Up, &[false, false, true, false]),
            [
                Health::Falling(1),
                Health::Falling(2),
                Health::Up,
                Health::Falling(1)
            ]
        );
        assert_eq!(
            run(Health::Down, &[true, false, true]),
            [Health::Rising(1), Health::Down, Health::Rising(1)]
        );
    }

    #[test]
    fn fall_of_one_goes_down_at_the_first_failure() {
        let t = Thresholds { rise: 1, fall: 1 };
        assert_eq!(Health::Up.step(false, t), Health::Down);
        assert_eq!(Health::Down.step(true, t), Health::Up);
    }

    #[test]
    fn slow_start_scales_the_weight_and_never_to_zero() {
        let s = |ramp| Status {
            ramp,
            ..Status::default()
        };
        assert_eq!(s(super::FULL).new_flow_weight(200), 200);
        assert_eq!(s(500).new_flow_weight(200), 100);
        assert_eq!(s(0).new_flow_weight(200), 1);
        assert_eq!(s(0).new_flow_weight(0), 0);
    }

    #[test]
    fn admin_state_overrides_what_the_planes_may_do() {
        let s = |health, admin| Status {
            health,
            admin,
            ..Status::default()
        };
        let up = s(Health::Up, Admin::Enabled);
        assert!(up.takes_new_flows() && up.keeps_flows());
        assert_eq!(up.state(), State::Up);
        let falling = s(Health::Falling(1), Admin::Enabled);
        assert!(falling.takes_new_flows() && falling.keeps_flows());
        let draining = s(Health::Up, Admin::Draining);
        assert!(!draining.takes_new_flows() && draining.keeps_flows());
        assert_eq!(draining.state(), State::Draining);
        let down_draining = s(Health::Down, Admin::Draining);
        assert!(!down_draining.keeps_flows());
        assert_eq!(down_draining.state(), State::Down);
        let disabled = s(Health::Up, Admin::Disabled);
        assert!(!disabled.takes_new_flows() && !disabled.keeps_flows());
        assert_eq!(disabled.state(), State::Disabled);
        let rising = s(Health::Rising(1), Admin::Enabled);
        assert!(!rising.takes_new_flows());
        assert_eq!(rising.state(), State::Rising);
    }
}
