//! Acceptance of the serial link (issue 15, "Serial link"): on a real
//! pseudo-terminal pair shaped to 115,200 baud by `impair+serial://`, the
//! sender keeps the line at least 95 % full, each 16-byte message takes its
//! payload plus 7 bytes of framing, and at a bit-error rate of 1e-4 no
//! corrupt frame reaches the application (CRC-32C drops them, counted).

use isml_benches::serial_link::{MESSAGE_SIZE, Options, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shaped_115200_baud_line_stays_full() {
    let report = run(&Options::for_seconds(115_200, 4.0, 0.0)).await.unwrap();
    println!("{report}");
    assert_eq!(report.delivered, report.sent, "{report}");
    assert_eq!((report.wrong, report.dropped_frames), (0, 0), "{report}");
    assert!(report.utilisation() >= 0.95, "{report}");
    // Lead byte, CRC-32C (4), COBS code byte, delimiter: 7 bytes per frame.
    assert_eq!(
        report.wire_bytes,
        report.sent * (MESSAGE_SIZE as u64 + 7),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_corrupt_frame_reaches_the_application_at_a_bit_error_rate_of_1e4() {
    let report = run(&Options::for_seconds(115_200, 6.0, 1e-4))
        .await
        .unwrap();
    println!("{report}");
    assert_eq!(report.wrong, 0, "{report}");
    // 23-byte frames at 1e-4: about 1.8 % are hit; each hit frame is
    // dropped (a flipped delimiter can merge two frames into one drop).
    let lost = report.sent - report.delivered;
    assert!(lost > 0 && report.dropped_frames > 0, "{report}");
    assert!(
        report.dropped_frames <= lost + lost / 4 && lost <= 2 * report.dropped_frames,
        "{report}"
    );
    assert!(lost * 100 < report.sent * 5, "{report}");
}
