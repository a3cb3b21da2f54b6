//! The 2G acceptance run of the link lab (docs/reliability.md, "Link lab"):
//! 100,000 at-least-once messages device -> server and 10,000 server ->
//! device over the `2g` profile (20 kbit/s, 300 ± 200 ms each way, the link
//! cut every 10 s for 3 s), on tokio's paused clock: about half an hour of
//! link time, a few seconds of real time.

use isml_examples::linklab::{self, Budget, LabConfig, LabTransport};
use isml_runtime::transport::impair::Profile;

#[tokio::test(start_paused = true)]
async fn two_g_profile_loses_nothing_duplicates_nothing_and_fills_the_link() {
    let mut config = LabConfig::new(Profile::TwoG, 1, 0);
    config.transport = LabTransport::Mem;
    config.up = Budget::Messages(100_000);
    config.down = Budget::Messages(10_000);
    let r = linklab::run(&config).await.expect("the lab runs");
    println!("{r}\n{}", r.summary());

    // Everything sent was acknowledged, every acknowledged message reached
    // its handler, none twice.
    assert_eq!((r.up.sent, r.up.acked), (100_000, 100_000), "{r}");
    assert_eq!((r.down.sent, r.down.acked), (10_000, 10_000), "{r}");
    assert_eq!(
        (r.lost(), r.duplicated(), r.unacknowledged()),
        (0, 0, 0),
        "{r}"
    );
    assert_eq!((r.up.delivered, r.down.delivered), (100_000, 10_000), "{r}");

    // The link was really cut, and every reconnection resumed the session.
    let cuts = (r.elapsed.as_secs() / 10) as u64;
    assert!(r.dropped + 1 >= cuts && r.dropped >= 150, "{r}");
    assert_eq!((r.resumes, r.new_states), (r.dropped, 0), "{r}");

    // The paused clock really shapes: neither direction carried more than
    // the link's rate allows while it was up (plus a full bucket per
    // connection), so the simulated time is the time the link needed.
    let rate = config.link.bytes_per_second().unwrap();
    let burst = config.link.burst_bytes().unwrap() as f64;
    let bound = rate * (r.elapsed - r.cut_time).as_secs_f64() + burst * r.connections as f64;
    for (way, bytes) in [("up", r.up.link_bytes), ("down", r.down.link_bytes)] {
        assert!(
            (bytes as f64) <= bound,
            "{way}: {bytes} bytes > {bound:.0} the link allows"
        );
    }
    assert!(
        r.up.goodput() <= 1.0 && r.up.session_goodput() <= 1.0,
        "{r}"
    );

    // Goodput (docs/reliability.md): delivered message frames over what the
    // link could carry while a session was up, at least 90 % each way; over
    // what it could carry while it was up (reconnections included: the
    // wait for the next attempt and the handshake's round trip, about
    // 0.8 s of every 7 s), 80 % on this profile, checked with a margin.
    assert!(r.up.session_goodput() >= 0.90, "{r}");
    assert!(r.down.session_goodput() >= 0.90, "{r}");
    assert!(r.up.goodput() >= 0.75, "{r}");
    assert!(r.down.goodput() >= 0.80, "{r}");
}
