//! rumqttd embedded: the crate's broker on one MQTT 3.1.1 loopback listener,
//! configured for the comparison's 10,000 idle subscribers.

use std::collections::HashMap;
use std::net::SocketAddr;

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

/// Runs rumqttd on `127.0.0.1:port` until the process exits.
pub(crate) fn run(port: u16) {
    let connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: 64 * 1024,
        // rumqttd's sample configuration.
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = ServerSettings {
        name: "v4-bench".to_owned(),
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        tls: None,
        // The sample configuration waits 1 ms between accepts: 10 s for the
        // idle-subscriber row alone.
        next_connection_delay_ms: 0,
        connections,
    };
    let config = Config {
        router: RouterConfig {
            max_connections: 20_000,
            // The sample configuration's values.
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            ..RouterConfig::default()
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        ..Config::default()
    };
    let mut broker = Broker::new(config);
    if let Err(e) = broker.start() {
        eprintln!("rumqttd: {e}");
        std::process::exit(1);
    }
}
