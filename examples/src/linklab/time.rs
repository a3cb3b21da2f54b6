//! Link time: when the link was cut, and when a session was up.

use std::time::Duration;

use isml_runtime::transport::impair::{CutMode, LinkConfig};

/// The cuts that end connections (`cut_mode=drop`), if any.
fn drops(link: &LinkConfig) -> Option<(Duration, Duration)> {
    link.cuts
        .filter(|c| c.mode == CutMode::Drop && !c.every.is_zero())
        .map(|c| (c.every, c.duration))
}

/// Link time the link was cut between `from` and `to` (cut `k` lasts from
/// `k × every` to `k × every + duration`, for `k` from 1).
pub fn cut_between(link: &LinkConfig, from: Duration, to: Duration) -> Duration {
    let Some((every, duration)) = drops(link) else {
        return Duration::ZERO;
    };
    let mut total = Duration::ZERO;
    let mut k = (from.as_nanos() / every.as_nanos()).max(1) as u32;
    while every * k < to {
        let (start, end) = (every * k, every * k + duration);
        let (a, b) = (start.max(from), end.min(to));
        if b > a {
            total += b - a;
        }
        k += 1;
    }
    total
}

/// Link time a session was up between `from` and `to`: each session from
/// its start (`starts`, in order) to the next cut, the next session's start
/// or `to`, whichever comes first.
pub fn session_between(
    link: &LinkConfig,
    starts: &[Duration],
    from: Duration,
    to: Duration,
) -> Duration {
    let next_cut = |t: Duration| {
        drops(link).map(|(every, _)| every * ((t.as_nanos() / every.as_nanos()) as u32 + 1))
    };
    let mut total = Duration::ZERO;
    for (i, &start) in starts.iter().enumerate() {
        let mut end = to;
        if let Some(&next) = starts.get(i + 1) {
            end = end.min(next);
        }
        if let Some(cut) = next_cut(start) {
            end = end.min(cut);
        }
        let a = start.max(from);
        if end > a {
            total += end - a;
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use isml_runtime::transport::impair::Profile;

    const fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn cut_time_counts_every_overlap_with_the_schedule() {
        let link = Profile::TwoG.config();
        // No cut in the first period; then 3 s in every 10 s.
        assert_eq!(cut_between(&link, s(0), s(10)), s(0));
        assert_eq!(cut_between(&link, s(0), s(11)), s(1));
        assert_eq!(cut_between(&link, s(0), s(35)), s(9));
        assert_eq!(cut_between(&link, s(12), s(21)), s(2));
        assert_eq!(cut_between(&link, s(5), s(5)), s(0));
        assert_eq!(cut_between(&Profile::Rs485.config(), s(0), s(100)), s(0));
    }

    #[test]
    fn a_session_lasts_until_the_next_cut_or_the_next_session() {
        let link = Profile::TwoG.config();
        let starts = [s(0), s(14), s(23), s(25)];
        // 0..10, 14..20, 23..25, 25..27 (the end).
        assert_eq!(session_between(&link, &starts, s(0), s(27)), s(20));
        // From 5: 5..10, 14..20, 23..27.
        assert_eq!(session_between(&link, &starts, s(5), s(27)), s(15));
        let no_cuts = Profile::Rs485.config();
        assert_eq!(session_between(&no_cuts, &[s(1)], s(0), s(9)), s(8));
    }
}
