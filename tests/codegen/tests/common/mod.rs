//! Helpers shared by the RPC tests.

use std::time::Duration;

use isml_runtime::TopLevel;
use isml_runtime::rpc::Streaming;

/// How many items a consumer that takes none holds once its sender has
/// stopped at the window: waits until the count stops growing (at most half
/// a second), then 50 ms more, and gives the count then.
pub(crate) async fn settled_buffer<T: TopLevel>(items: &Streaming<T>) -> usize {
    let mut buffered = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = items.buffered();
        if now > 0 && now == buffered {
            break;
        }
        buffered = now;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    items.buffered()
}
