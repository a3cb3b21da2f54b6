//! Subscriptions: the receiving end of a channel.

use std::collections::VecDeque;
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;

use super::frames::{Delivered, SubOp, SubscribeFrame, into_rest};
use super::local::SubQueue;
use super::{Channel, Publication, RawPublication, SubscribeError};
use crate::server::broker::{Broker, Peer, SubscriberStats};
use crate::session::Session;

pub(crate) enum Owner {
    /// A subscription through a session: `id` in its local table.
    Session { session: Session, id: u64 },
    /// A subscription of the server process.
    Broker {
        broker: Arc<Broker>,
        peer: Arc<Peer>,
    },
    /// Unsubscribed.
    Done,
}

/// A subscription to a channel, not decoded: yields [`RawPublication`]s.
///
/// Its queue is bounded (1,024 deliveries by default,
/// `subscription_queue` on the client's or server's builder). When it is
/// full, the session stops reading until the application takes from it, so
/// a reader that is slower for a moment loses nothing here; one that takes
/// nothing for 250 ms (`subscription_patience`) counts as not read, and
/// until it reads again the oldest delivery is dropped and counted
/// ([`RawSubscription::dropped`]). Reading takes everything queued at once
/// and hands it out one by one, so up to as many again may wait here.
/// Dropping the subscription unsubscribes.
pub struct RawSubscription {
    pub(crate) queue: Arc<SubQueue>,
    /// Deliveries taken from the queue in one go, handed out one by one.
    pub(crate) taken: VecDeque<Bytes>,
    pub(crate) owner: Owner,
    pub(crate) channel: u32,
}

impl fmt::Debug for RawSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RawSubscription")
            .field("channel", &self.channel)
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl RawSubscription {
    /// The channel id.
    pub fn channel(&self) -> u32 {
        self.channel
    }

    /// Deliveries dropped because this subscription was read too slowly.
    pub fn dropped(&self) -> u64 {
        self.queue.dropped()
    }

    /// The broker's statistics of this subscriber (subscriptions of the
    /// server process only; `None` through a session).
    pub fn stats(&self) -> Option<SubscriberStats> {
        match &self.owner {
            Owner::Broker { peer, .. } => Some(peer.stats()),
            _ => None,
        }
    }

    /// The next publication; `None` once unsubscribed or the session ended.
    pub async fn next(&mut self) -> Option<RawPublication> {
        std::future::poll_fn(|cx| self.poll_raw(cx)).await
    }

    pub(crate) fn new(queue: Arc<SubQueue>, owner: Owner, channel: u32) -> Self {
        RawSubscription {
            queue,
            taken: VecDeque::new(),
            owner,
            channel,
        }
    }

    fn poll_raw(&mut self, cx: &mut Context<'_>) -> Poll<Option<RawPublication>> {
        loop {
            let payload = match self.taken.pop_front() {
                Some(payload) => payload,
                None => {
                    if !std::task::ready!(self.queue.poll_take(cx, &mut self.taken)) {
                        return Poll::Ready(None);
                    }
                    continue;
                }
            };
            let (mut publication, at) = match Delivered::decode(&payload) {
                Ok(Delivered::Publication(h, at)) => (
                    RawPublication {
                        channel: h.channel,
                        key: h.key.map(str::to_owned),
                        publisher: h.publisher.to_owned(),
                        timestamp_ms: h.timestamp_ms,
                        retained: h.retained,
                        payload: Bytes::new(),
                    },
                    at,
                ),
                // Routed here only after a successful decode.
                _ => continue,
            };
            publication.payload = into_rest(payload, at);
            return Poll::Ready(Some(publication));
        }
    }

    /// Unsubscribes, telling the broker when this was the session's last
    /// subscription to the channel and key.
    pub async fn unsubscribe(mut self) -> Result<(), SubscribeError> {
        match std::mem::replace(&mut self.owner, Owner::Done) {
            Owner::Session { session, id } => {
                // The session that resumed the subscribing one, if any.
                let session = session.current();
                if let Some((channel, key)) = session.pubsub().remove_subscription(id) {
                    let frame = SubscribeFrame {
                        correlation: 0,
                        op: SubOp::Unsubscribe { channel, key },
                    }
                    .encode();
                    session.send_frame(frame).await?;
                }
            }
            Owner::Broker { broker, peer } => broker.unsubscribe_local(&peer),
            Owner::Done => {}
        }
        self.queue.close();
        Ok(())
    }
}

impl Drop for RawSubscription {
    fn drop(&mut self) {
        self.queue.close();
        match std::mem::replace(&mut self.owner, Owner::Done) {
            Owner::Session { session, id } => {
                // The session that resumed the subscribing one, if any.
                let session = session.current();
                if let Some((channel, key)) = session.pubsub().remove_subscription(id) {
                    let frame = SubscribeFrame {
                        correlation: 0,
                        op: SubOp::Unsubscribe { channel, key },
                    }
                    .encode();
                    // Without waiting; when the queue is full, a task waits.
                    if session.try_enqueue(frame.clone()).is_err()
                        && !session.is_closed()
                        && let Ok(rt) = tokio::runtime::Handle::try_current()
                    {
                        rt.spawn(async move {
                            let _ = session.send_frame(frame).await;
                        });
                    }
                }
            }
            Owner::Broker { broker, peer } => broker.unsubscribe_local(&peer),
            Owner::Done => {}
        }
    }
}

impl Stream for RawSubscription {
    type Item = RawPublication;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<RawPublication>> {
        self.get_mut().poll_raw(cx)
    }
}

/// A subscription to channel `C`: yields its values decoded.
///
/// Values that do not decode as `C::Message` are skipped and counted
/// ([`Subscription::undecodable`]). Dropping the subscription unsubscribes.
pub struct Subscription<C: Channel> {
    raw: RawSubscription,
    undecodable: u64,
    _channel: PhantomData<fn() -> C>,
}

impl<C: Channel> fmt::Debug for Subscription<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("channel", &C::NAME)
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl<C: Channel> Subscription<C> {
    pub(crate) fn new(raw: RawSubscription) -> Self {
        Subscription {
            raw,
            undecodable: 0,
            _channel: PhantomData,
        }
    }

    /// The next publication; `None` once unsubscribed or the session ended.
    pub async fn next(&mut self) -> Option<Publication<C::Message>> {
        std::future::poll_fn(|cx| self.poll_typed(cx)).await
    }

    fn poll_typed(&mut self, cx: &mut Context<'_>) -> Poll<Option<Publication<C::Message>>> {
        loop {
            let Some(p) = std::task::ready!(self.raw.poll_raw(cx)) else {
                return Poll::Ready(None);
            };
            match <C::Message as crate::Message>::decode(p.payload) {
                Ok(value) => {
                    return Poll::Ready(Some(Publication {
                        value,
                        key: p.key,
                        publisher: p.publisher,
                        timestamp_ms: p.timestamp_ms,
                        retained: p.retained,
                    }));
                }
                Err(e) => {
                    self.undecodable += 1;
                    tracing::debug!(channel = C::NAME, message = <C::Message as crate::Message>::NAME, error = %e, "publication skipped: it does not decode");
                }
            }
        }
    }

    /// Deliveries dropped because this subscription was read too slowly.
    pub fn dropped(&self) -> u64 {
        self.raw.dropped()
    }

    /// Publications skipped because they did not decode.
    pub fn undecodable(&self) -> u64 {
        self.undecodable
    }

    /// The broker's statistics of this subscriber (see [`RawSubscription::stats`]).
    pub fn stats(&self) -> Option<SubscriberStats> {
        self.raw.stats()
    }

    /// Unsubscribes (dropping the subscription does the same without waiting).
    pub async fn unsubscribe(self) -> Result<(), SubscribeError> {
        self.raw.unsubscribe().await
    }

    /// The untyped subscription.
    pub fn into_raw(self) -> RawSubscription {
        self.raw
    }
}

impl<C: Channel> Stream for Subscription<C> {
    type Item = Publication<C::Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_typed(cx)
    }
}
