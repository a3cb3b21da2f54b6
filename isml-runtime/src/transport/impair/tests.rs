//! The shaper on tokio's paused clock: what a reader on the other end sees,
//! and when.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::time::Instant;

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn config(f: impl FnOnce(&mut LinkConfig)) -> LinkConfig {
    let mut c = LinkConfig::default();
    f(&mut c);
    c
}

/// A link around one end of a pipe: the application's end and the far end.
fn pair(link: &Arc<Link>) -> (Impaired, DuplexStream) {
    let (near, far) = tokio::io::duplex(64 * 1024);
    (link.wrap(near).unwrap(), far)
}

fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(salt) ^ (i >> 8) as u8)
        .collect()
}

/// Writes `data` in uneven pieces.
async fn write_pieces(w: &mut (impl AsyncWriteExt + Unpin), data: &[u8]) {
    let mut at = 0;
    for size in [1usize, 700, 13, 5000, 64, 2].iter().cycle() {
        if at == data.len() {
            break;
        }
        let end = (at + size).min(data.len());
        w.write_all(&data[at..end]).await.unwrap();
        at = end;
    }
    w.flush().await.unwrap();
}

/// Reads exactly `len` bytes; gives them and when the first and last arrived.
async fn read_timed(
    r: &mut (impl AsyncReadExt + Unpin),
    len: usize,
) -> (Vec<u8>, Instant, Instant) {
    let mut got = Vec::with_capacity(len);
    let mut buf = [0u8; 4096];
    let mut first = None;
    while got.len() < len {
        let n = r.read(&mut buf).await.unwrap();
        assert!(n > 0, "ended after {} of {len} bytes", got.len());
        first.get_or_insert_with(Instant::now);
        got.extend_from_slice(&buf[..n]);
    }
    (got, first.unwrap(), Instant::now())
}

#[tokio::test(start_paused = true)]
async fn bytes_arrive_in_order_and_unchanged_both_ways() {
    let link = Link::new(config(|c| {
        c.latency = ms(40);
        c.jitter = ms(35);
        c.rate = Some(2_000_000);
    }));
    let (near, far) = pair(&link);
    let (mut near_r, mut near_w) = tokio::io::split(near);
    let (mut far_r, mut far_w) = tokio::io::split(far);
    let up = pattern(300_000, 1);
    let down = pattern(200_000, 2);
    let (up2, down2) = (up.clone(), down.clone());
    let writers = tokio::spawn(async move {
        tokio::join!(
            write_pieces(&mut near_w, &up2),
            write_pieces(&mut far_w, &down2)
        );
    });
    let ((got_up, ..), (got_down, ..)) = tokio::join!(
        read_timed(&mut far_r, up.len()),
        read_timed(&mut near_r, down.len())
    );
    writers.await.unwrap();
    assert!(got_up == up, "outbound bytes changed or reordered");
    assert!(got_down == down, "inbound bytes changed or reordered");
    let s = link.stats();
    assert_eq!((s.bytes_out, s.bytes_in), (300_000, 200_000));
    assert_eq!((s.connections, s.dropped, s.bits_flipped), (1, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn the_rate_holds_in_each_direction_independently() {
    // 20 kbit/s: 2,500 bytes/s each way; 50 kB take 20 s less the burst.
    let link = Link::new(config(|c| c.rate = Some(20_000)));
    let burst = link.config().burst_bytes().unwrap();
    let (near, far) = pair(&link);
    let (mut near_r, mut near_w) = tokio::io::split(near);
    let (mut far_r, mut far_w) = tokio::io::split(far);
    let data = pattern(50_000, 3);
    let d2 = data.clone();
    let start = Instant::now();
    let writers = tokio::spawn(async move {
        tokio::join!(
            write_pieces(&mut near_w, &d2),
            write_pieces(&mut far_w, &d2)
        );
    });
    let ((a, _, a_end), (b, _, b_end)) = tokio::join!(
        read_timed(&mut far_r, data.len()),
        read_timed(&mut near_r, data.len())
    );
    writers.await.unwrap();
    assert!(a == data && b == data);
    let expected = (50_000 - burst) as f64 / 2_500.0;
    for end in [a_end, b_end] {
        let took = (end - start).as_secs_f64();
        assert!(
            (took - expected).abs() / expected < 0.005,
            "50 kB took {took:.3} s, expected {expected:.3} s"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_byte_takes_the_latency() {
    let link = Link::new(config(|c| c.latency = ms(300)));
    let (mut near, mut far) = pair(&link);
    for _ in 0..3 {
        let sent = Instant::now();
        near.write_all(b"x").await.unwrap();
        let (_, first, _) = read_timed(&mut far, 1).await;
        assert_eq!(first - sent, ms(300));
        let sent = Instant::now();
        far.write_all(b"y").await.unwrap();
        let (_, first, _) = read_timed(&mut near, 1).await;
        assert_eq!(first - sent, ms(300));
    }
}

#[tokio::test(start_paused = true)]
async fn a_drop_cut_ends_the_connection_and_refuses_new_ones_until_it_is_over() {
    let link = Link::new(config(|c| {
        c.latency = ms(10);
        c.cuts = Some(Cuts {
            every: Duration::from_secs(1),
            duration: ms(300),
            mode: CutMode::Drop,
        });
    }));
    let start = Instant::now();
    let (mut near, mut far) = pair(&link);
    near.write_all(b"before").await.unwrap();
    let (got, ..) = read_timed(&mut far, 6).await;
    assert_eq!(got, b"before");
    // Both ends see the end of the stream when the cut starts.
    let mut buf = [0u8; 16];
    assert_eq!(far.read(&mut buf).await.unwrap(), 0);
    assert_eq!(Instant::now() - start, Duration::from_secs(1));
    assert_eq!(near.read(&mut buf).await.unwrap(), 0);
    assert!(near.write_all(b"lost").await.is_err());
    assert_eq!(link.stats().dropped, 1);
    // During the cut, connecting fails.
    tokio::time::sleep(ms(100)).await;
    let e = link.wrap(tokio::io::duplex(64).0).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NetworkUnreachable);
    assert!(e.to_string().contains("0.2 s"), "{e}");
    assert_eq!(link.stats().refused, 1);
    // After it, a new connection works, until the next cut.
    tokio::time::sleep(ms(200)).await;
    let (mut near, mut far) = pair(&link);
    near.write_all(b"after").await.unwrap();
    let (got, ..) = read_timed(&mut far, 5).await;
    assert_eq!(got, b"after");
    assert_eq!(far.read(&mut buf).await.unwrap(), 0);
    assert_eq!(Instant::now() - start, Duration::from_secs(2));
    assert_eq!(link.stats().dropped, 2);
}

#[tokio::test(start_paused = true)]
async fn a_stall_delays_bytes_and_loses_none() {
    let link = Link::new(config(|c| {
        c.latency = ms(50);
        c.rate = Some(800_000);
        c.cuts = Some(Cuts {
            every: Duration::from_secs(2),
            duration: ms(400),
            mode: CutMode::Stall,
        });
    }));
    let start = Instant::now();
    let (near, mut far) = pair(&link);
    let (_near_r, mut near_w) = tokio::io::split(near);
    tokio::time::sleep(ms(1900)).await;
    // 100 kB at 100 kB/s, starting 100 ms before the stall at 2 s.
    let data = pattern(100_000, 4);
    let d2 = data.clone();
    let writer = tokio::spawn(async move { write_pieces(&mut near_w, &d2).await });
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let mut arrivals = Vec::new();
    while got.len() < data.len() {
        let n = far.read(&mut buf).await.unwrap();
        assert!(n > 0);
        got.extend_from_slice(&buf[..n]);
        arrivals.push(Instant::now() - start);
    }
    writer.await.unwrap();
    assert!(got == data, "bytes lost or changed across the stall");
    assert!(
        arrivals.iter().all(|t| *t < ms(2000) || *t >= ms(2400)),
        "nothing arrives during the stall"
    );
    assert!(arrivals.iter().any(|t| *t < ms(2000)));
    // The bucket is full when sending starts and again when the stall
    // ends (it filled meanwhile): two bursts go at once, the rest at the
    // rate, plus the stall and the latency.
    let end = arrivals.last().unwrap().as_secs_f64();
    let burst = link.config().burst_bytes().unwrap() as f64;
    let expected = 1.9 + 0.4 + (100_000.0 - 2.0 * burst) / 100_000.0 + 0.05;
    assert!(
        (end - expected).abs() < 0.01,
        "{end} s, expected about {expected} s"
    );
    assert_eq!(link.stats().dropped, 0);
}

#[tokio::test(start_paused = true)]
async fn what_was_written_before_the_end_still_arrives() {
    let link = Link::new(config(|c| c.latency = ms(200)));
    let (mut near, mut far) = pair(&link);
    near.write_all(b"last words").await.unwrap();
    near.shutdown().await.unwrap();
    drop(near);
    let mut got = Vec::new();
    far.read_to_end(&mut got).await.unwrap();
    assert_eq!(got, b"last words");
}

#[tokio::test(start_paused = true)]
async fn bit_errors_flip_what_the_counters_say() {
    let link = Link::new(config(|c| {
        c.ber = 1e-3;
        c.seed = 11;
    }));
    let (near, far) = pair(&link);
    let (_near_r, mut near_w) = tokio::io::split(near);
    let (mut far_r, _far_w) = tokio::io::split(far);
    let data = pattern(100_000, 5);
    let d2 = data.clone();
    tokio::spawn(async move { write_pieces(&mut near_w, &d2).await });
    let (got, ..) = read_timed(&mut far_r, data.len()).await;
    let diff: u64 = got
        .iter()
        .zip(&data)
        .map(|(a, b)| u64::from((a ^ b).count_ones()))
        .sum();
    // 800,000 bits at 1e-3: 800 expected.
    assert!((650..=950).contains(&diff), "{diff}");
    assert_eq!(link.stats().bits_flipped, diff);
}
