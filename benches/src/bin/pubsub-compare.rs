//! isml's broker against mosquitto and rumqttd, measured in one run by one
//! load generator, and the SVG plot of throughput against payload size
//! (`docs/pubsub-throughput.svg`).
//!
//! Each broker runs in a child process of its own: mosquitto (Debian's
//! package, `apt-get install -y mosquitto`) with a generated configuration,
//! rumqttd and the isml broker embedded in this binary and re-executed with
//! `--broker NAME --port N`. The load generator (rumqttc for MQTT, isml's
//! client for isml, two tokio worker threads) runs in this process, so each
//! broker's RSS is its own. All listen on free loopback ports; the children
//! are killed when the bench ends, fails or panics.
//!
//! Rows, each for 16 B and 256 B payloads, at QoS 0 and QoS 1: 1->1, 1->100
//! (fan-out) and 100->1 (fan-in) delivered msgs/s; p50 and p99
//! publish-to-delivery latency at 10 % load (one rate for all three brokers:
//! a tenth of the slowest broker's 1->1 rate); broker RSS with 10,000 idle
//! subscribers. The last line sums it up:
//!
//! `pubsub: 1to1 isml/mosquitto X.XXx, isml/rumqttd Y.YYx, fanout isml/mosquitto Z.ZZx, p50 isml/mosquitto W.WWx`
//!
//! (throughput ratios are the minimum over payload sizes and QoS levels; the
//! p50 ratio, isml's latency over mosquitto's, lower is better, is the
//! maximum).
//!
//! `cargo run --release -p isml-benches --bin pubsub-compare [-- --brokers mosquitto,rumqttd]`
//!
//! For profiling, one throughput row alone, repeated:
//! `pubsub-compare --row fanin,16,qos0 [--repeat 3] [--measure-ms 1000]
//! [--brokers isml] [--broker-stats]` prints each broker's pid (for
//! `perf record -p`), then the row's rate run by run; `--broker-stats` has
//! the isml broker print its counters on stderr every second.

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use isml_benches::pubsub::plot::{self, Series};
use isml_benches::pubsub::{Broker, BrokerProcess, Qos, Target, child_main};

/// Payload sizes of the table rows.
const SIZES: [usize; 2] = [16, 256];
/// Payload sizes of the plot (the table's and two more).
const PLOT_SIZES: [usize; 4] = [16, 64, 256, 1024];
const IDLE_SUBSCRIBERS: usize = 10_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Shape {
    OneToOne,
    FanOut,
    FanIn,
}

impl Shape {
    const ALL: [Shape; 3] = [Shape::OneToOne, Shape::FanOut, Shape::FanIn];

    /// The name `--row` takes.
    fn parse(name: &str) -> Option<Shape> {
        match name {
            "1to1" => Some(Shape::OneToOne),
            "fanout" => Some(Shape::FanOut),
            "fanin" => Some(Shape::FanIn),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Shape::OneToOne => "1->1",
            Shape::FanOut => "1->100 fan-out",
            Shape::FanIn => "100->1 fan-in",
        }
    }

    /// (publishers, subscribers)
    fn peers(self) -> (usize, usize) {
        match self {
            Shape::OneToOne => (1, 1),
            Shape::FanOut => (1, 100),
            Shape::FanIn => (100, 1),
        }
    }
}

type Key = (Shape, usize, Qos, Broker);

/// One throughput row (`--row SHAPE,SIZE,QOS`), run `repeat` times.
struct Row {
    shape: Shape,
    size: usize,
    qos: Qos,
    repeat: usize,
}

fn value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter()
        .position(|a| a == flag)
        .map(|i| args.get(i + 1).map_or("", String::as_str))
}

fn usage(message: String) -> ! {
    eprintln!("pubsub-compare: {message}");
    std::process::exit(2);
}

fn parse_row(args: &[String]) -> Option<Row> {
    let spec = value(args, "--row")?;
    let parts: Vec<&str> = spec.split(',').collect();
    let [shape, size, qos] = parts[..] else {
        usage(format!(
            "--row takes SHAPE,SIZE,QOS (1to1|fanout|fanin, bytes, qos0|qos1), not `{spec}`"
        ));
    };
    let shape = Shape::parse(shape).unwrap_or_else(|| usage(format!("unknown shape `{shape}`")));
    let size = size
        .parse()
        .unwrap_or_else(|_| usage(format!("bad payload size `{size}`")));
    let qos = Qos::ALL
        .into_iter()
        .find(|q| q.name() == qos)
        .unwrap_or_else(|| usage(format!("unknown qos `{qos}`")));
    let repeat = value(args, "--repeat").map_or(3, |r| {
        r.parse()
            .unwrap_or_else(|_| usage(format!("bad --repeat `{r}`")))
    });
    Some(Row {
        shape,
        size,
        qos,
        repeat,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if child_main(&args).is_some() {
        return;
    }
    let brokers = match args.iter().position(|a| a == "--brokers") {
        Some(i) => {
            let list = args.get(i + 1).map(String::as_str).unwrap_or("");
            let mut out = Vec::new();
            for name in list.split(',') {
                match Broker::ALL.iter().find(|b| b.name() == name) {
                    Some(b) => out.push(*b),
                    None => {
                        eprintln!("pubsub-compare: unknown broker `{name}` in --brokers");
                        std::process::exit(2);
                    }
                }
            }
            out
        }
        None => Broker::ALL.to_vec(),
    };
    if let Some(ms) = value(&args, "--measure-ms") {
        let ms: u64 = ms
            .parse()
            .unwrap_or_else(|_| usage(format!("bad --measure-ms `{ms}`")));
        isml_benches::pubsub::set_measure(std::time::Duration::from_millis(ms));
    }
    if args.iter().any(|a| a == "--broker-stats") {
        isml_benches::pubsub::process::set_broker_stats(true);
    }
    let row = parse_row(&args);
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pubsub-compare: cannot start tokio: {e}");
            std::process::exit(1);
        }
    };
    let result = match row {
        Some(row) => rt.block_on(run_row(&brokers, row)),
        None => rt.block_on(run(&brokers)),
    };
    if let Err(e) = result {
        eprintln!("pubsub-compare: {e}");
        std::process::exit(1);
    }
}

/// `--row`: one throughput row, the brokers taking turns, `repeat` times.
async fn run_row(brokers: &[Broker], row: Row) -> Result<(), String> {
    let mut procs = Vec::new();
    for &b in brokers {
        let p = BrokerProcess::start(b)?;
        println!("{} broker: pid {}", b.name(), p.pid());
        procs.push(p);
    }
    let targets: Vec<Target> = procs.iter().map(Target::of).collect();
    let mut run_id = 0;
    // The discarded runs are short whatever --measure-ms says: a profiler
    // attached after a few seconds sees the row.
    let measure = isml_benches::pubsub::measure();
    isml_benches::pubsub::set_measure(isml_benches::pubsub::MEASURE);
    for t in &targets {
        run_id += 1;
        t.throughput(run_id, 1, 1, 16, Qos::AtMostOnce).await?;
    }
    isml_benches::pubsub::set_measure(measure);
    println!("row starts");
    let (pubs, subs) = row.shape.peers();
    for _ in 0..row.repeat {
        for t in &targets {
            run_id += 1;
            let r = t.throughput(run_id, pubs, subs, row.size, row.qos).await?;
            println!(
                "{} {} {} B {}: {r:.0} msgs/s",
                t.broker.name(),
                row.shape.name(),
                row.size,
                row.qos.name()
            );
        }
    }
    Ok(())
}

async fn run(brokers: &[Broker]) -> Result<(), String> {
    let started = Instant::now();
    println!(
        "pub/sub brokers, one load generator (rumqttc for MQTT 3.1.1, isml's client for isml), \
         each broker a child process on loopback; {} ms per run after {} ms of warm-up\n",
        isml_benches::pubsub::measure().as_millis(),
        isml_benches::pubsub::WARM_UP.as_millis()
    );
    let mut tput: HashMap<Key, f64> = HashMap::new();
    let mut lat: HashMap<(usize, Qos, Broker), (f64, f64)> = HashMap::new();
    let mut run_id = 0u32;
    let rss_only = std::env::args().any(|a| a == "--rss-only");
    if !rss_only {
        let mut procs = Vec::new();
        for &b in brokers {
            procs.push(BrokerProcess::start(b)?);
        }
        let targets: Vec<Target> = procs.iter().map(Target::of).collect();
        // One discarded run each: the first connections of a fresh broker
        // and of the load generator are slower than the rest.
        for t in &targets {
            run_id += 1;
            t.throughput(run_id, 1, 1, 16, Qos::AtMostOnce).await?;
        }
        // Throughput: the brokers take turns run by run, so that all see the
        // same machine load.
        for &size in &PLOT_SIZES {
            for q in Qos::ALL {
                for shape in Shape::ALL {
                    let in_table = SIZES.contains(&size);
                    let in_plot = q == Qos::AtMostOnce && shape != Shape::FanIn;
                    if !in_table && !in_plot {
                        continue;
                    }
                    let (pubs, subs) = shape.peers();
                    for t in &targets {
                        run_id += 1;
                        let r = t.throughput(run_id, pubs, subs, size, q).await?;
                        progress(format_args!(
                            "{} {} {size} B {}: {r:.0} msgs/s",
                            t.broker.name(),
                            shape.name(),
                            q.name()
                        ));
                        tput.insert((shape, size, q, t.broker), r);
                    }
                }
            }
        }
        // Latency at a tenth of the slowest broker's 1->1 rate.
        for &size in &SIZES {
            for q in Qos::ALL {
                let slowest = targets
                    .iter()
                    .filter_map(|t| tput.get(&(Shape::OneToOne, size, q, t.broker)))
                    .copied()
                    .fold(f64::INFINITY, f64::min);
                let rate = (slowest / 10.0).max(100.0);
                for t in &targets {
                    run_id += 1;
                    let r = t.latency(run_id, size, q, rate).await?;
                    progress(format_args!(
                        "{} latency {size} B {} at {rate:.0}/s: p50 {:.0} µs, p99 {:.0} µs",
                        t.broker.name(),
                        q.name(),
                        r.0,
                        r.1
                    ));
                    lat.insert((size, q, t.broker), r);
                }
            }
        }
    }
    // RSS: a fresh broker each, before and with the idle subscribers.
    let mut rss: HashMap<Broker, (u64, u64)> = HashMap::new();
    for &b in brokers {
        let p = BrokerProcess::start(b)?;
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        let before = p.rss()?;
        run_id += 1;
        let subs = Target::of(&p)
            .idle_subscribers(run_id, IDLE_SUBSCRIBERS)
            .await?;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let with = p.rss()?;
        progress(format_args!(
            "{} RSS {:.1} MiB -> {:.1} MiB with {IDLE_SUBSCRIBERS} idle subscribers",
            b.name(),
            before as f64 / 1048576.0,
            with as f64 / 1048576.0
        ));
        drop(subs);
        drop(p);
        rss.insert(b, (before, with));
    }

    print_tables(brokers, &tput, &lat, &rss);

    let svg = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/pubsub-throughput.svg");
    let mut series = Vec::new();
    for shape in [Shape::OneToOne, Shape::FanOut] {
        for &b in brokers {
            series.push(Series {
                label: format!("{} {}", b.name(), shape.name()),
                points: PLOT_SIZES
                    .iter()
                    .filter_map(|&s| {
                        tput.get(&(shape, s, Qos::AtMostOnce, b))
                            .map(|r| (s as f64, *r))
                    })
                    .collect(),
            });
        }
    }
    plot::write_svg(
        &svg,
        "Delivered msgs/s against payload size (QoS 0, loopback)",
        &series,
    )?;
    println!(
        "\nplot: {} ({:.0} s in all)",
        svg.display(),
        started.elapsed().as_secs_f64()
    );

    let ratio = |shape: Shape, other: Broker| {
        let mut min = f64::INFINITY;
        for &size in &SIZES {
            for q in Qos::ALL {
                if let (Some(a), Some(b)) = (
                    tput.get(&(shape, size, q, Broker::Isml)),
                    tput.get(&(shape, size, q, other)),
                ) {
                    min = min.min(a / b);
                }
            }
        }
        min
    };
    let mut p50_max = f64::NAN;
    for &size in &SIZES {
        for q in Qos::ALL {
            if let (Some(a), Some(b)) = (
                lat.get(&(size, q, Broker::Isml)),
                lat.get(&(size, q, Broker::Mosquitto)),
            ) {
                p50_max = if p50_max.is_nan() {
                    a.0 / b.0
                } else {
                    p50_max.max(a.0 / b.0)
                };
            }
        }
    }
    println!(
        "pubsub: 1to1 isml/mosquitto {:.2}x, isml/rumqttd {:.2}x, fanout isml/mosquitto {:.2}x, p50 isml/mosquitto {:.2}x",
        ratio(Shape::OneToOne, Broker::Mosquitto),
        ratio(Shape::OneToOne, Broker::Rumqttd),
        ratio(Shape::FanOut, Broker::Mosquitto),
        p50_max
    );
    Ok(())
}

/// One line on stderr per run, so a slow or stuck run shows where it is.
fn progress(line: std::fmt::Arguments<'_>) {
    eprintln!(
        "  .. {:5.1} s  {line}",
        isml_benches::pubsub::epoch().elapsed().as_secs_f64()
    );
}

fn print_tables(
    brokers: &[Broker],
    tput: &HashMap<Key, f64>,
    lat: &HashMap<(usize, Qos, Broker), (f64, f64)>,
    rss: &HashMap<Broker, (u64, u64)>,
) {
    let has = |b: Broker| brokers.contains(&b);
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".to_owned(),
    };
    let cell = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0}"));
    println!(
        "{:<16} {:>7} {:>5} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "delivered msgs/s", "payload", "qos", "isml", "mosquitto", "rumqttd", "/mosq", "/rumqttd"
    );
    for shape in Shape::ALL {
        for &size in &SIZES {
            for q in Qos::ALL {
                let get = |b: Broker| tput.get(&(shape, size, q, b)).copied();
                println!(
                    "{:<16} {:>5} B {:>5} {:>12} {:>12} {:>12} {:>10} {:>10}",
                    shape.name(),
                    size,
                    q.name(),
                    cell(get(Broker::Isml)),
                    cell(get(Broker::Mosquitto)),
                    cell(get(Broker::Rumqttd)),
                    ratio(get(Broker::Isml), get(Broker::Mosquitto)),
                    ratio(get(Broker::Isml), get(Broker::Rumqttd)),
                );
            }
        }
    }
    println!(
        "\n{:<16} {:>7} {:>5} {:>17} {:>17} {:>17} {:>10}",
        "latency µs",
        "payload",
        "qos",
        "isml p50/p99",
        "mosquitto p50/p99",
        "rumqttd p50/p99",
        "p50 /mosq"
    );
    for &size in &SIZES {
        for q in Qos::ALL {
            let get = |b: Broker| lat.get(&(size, q, b)).copied();
            let pair = |b: Broker| {
                get(b).map_or("-".to_owned(), |(p50, p99)| format!("{p50:.0} / {p99:.0}"))
            };
            println!(
                "{:<16} {:>5} B {:>5} {:>17} {:>17} {:>17} {:>10}",
                "10 % load",
                size,
                q.name(),
                pair(Broker::Isml),
                pair(Broker::Mosquitto),
                pair(Broker::Rumqttd),
                ratio(
                    get(Broker::Isml).map(|v| v.0),
                    get(Broker::Mosquitto).map(|v| v.0)
                ),
            );
        }
    }
    println!(
        "\n{:<16} {:>12} {:>14} {:>14}",
        "broker RSS", "at start", "10,000 idle", "per subscriber"
    );
    for b in Broker::ALL {
        if !has(b) {
            continue;
        }
        if let Some(&(before, with)) = rss.get(&b) {
            println!(
                "{:<16} {:>9.1} MiB {:>10.1} MiB {:>12} B",
                b.name(),
                before as f64 / 1048576.0,
                with as f64 / 1048576.0,
                with.saturating_sub(before) / IDLE_SUBSCRIBERS as u64
            );
        }
    }
}
