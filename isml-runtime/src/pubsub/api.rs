//! The pub/sub methods of [`Session`] and [`Client`].

use std::time::Duration;

use bytes::{BufMut, Bytes};

use super::frames::{PublishHead, SubOp, SubscribeFrame, finish};
use super::subscription::Owner;
use super::{
    Ack, Channel, PublishError, RawSubscription, Refusal, SubscribeError, Subscription,
    channel_label,
};
use crate::TopLevel;
use crate::client::Client;
use crate::session::{CloseReason, ClosedBy, Delivered, Delivery, SendError, Session, codes};
use crate::wire::{EncodeError, Frame};

/// Why waiting for the broker's answer failed.
enum Failure {
    Send(SendError),
    Disconnected,
    Timeout(Duration),
}

struct Forget<'a>(&'a Session, u64);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.pubsub().forget_reply(self.1);
    }
}

fn check_key<C: Channel>(key: Option<&str>) -> Result<(), PublishError> {
    if C::KEYED != key.is_some() {
        return Err(PublishError::Key {
            channel: C::NAME,
            keyed: C::KEYED,
        });
    }
    Ok(())
}

fn publish_error(channel: String, f: Failure) -> PublishError {
    match f {
        Failure::Send(e) => PublishError::Send(e),
        Failure::Disconnected => PublishError::Disconnected { channel },
        Failure::Timeout(after) => PublishError::Timeout { channel, after },
    }
}

fn ack(persisted: bool) -> Ack {
    if persisted {
        Ack::Persisted
    } else {
        Ack::Accepted
    }
}

impl Session {
    /// A `publish` frame: the head, then `msg` encoded after it.
    fn publish_frame<M: TopLevel>(
        &self,
        head: &PublishHead<'_>,
        msg: &M,
    ) -> Result<Frame, SendError> {
        if let Some(&(type_id, name)) = self
            .refused_types()
            .iter()
            .find(|(id, _)| *id == M::TYPE_ID)
        {
            return Err(SendError::FingerprintMismatch {
                session: self.id(),
                type_id,
                name,
            });
        }
        let err = |source| SendError::Encode {
            message: M::NAME,
            source,
        };
        let len = msg.encoded_len();
        let max = self.max_payload();
        if head.len() + len > max {
            return Err(err(EncodeError::FrameTooLarge {
                len: head.len() + len,
                max,
            }));
        }
        let mut encoded = Ok(());
        let bytes = self.pubsub().frame_buffer(head.len() + len, |buf| {
            head.begin_in(buf, len);
            encoded = msg.encode(buf);
        });
        encoded.map_err(err)?;
        Ok(finish(bytes))
    }

    fn raw_publish_frame(
        &self,
        head: &PublishHead<'_>,
        payload: &[u8],
    ) -> Result<Frame, SendError> {
        let max = self.max_payload();
        if head.len() + payload.len() > max {
            return Err(SendError::Encode {
                message: "raw publication",
                source: EncodeError::FrameTooLarge {
                    len: head.len() + payload.len(),
                    max,
                },
            });
        }
        let bytes = self
            .pubsub()
            .frame_buffer(head.len() + payload.len(), |buf| {
                head.begin_in(buf, payload.len());
                buf.put_slice(payload);
            });
        Ok(finish(bytes))
    }

    /// Sends `frame` and waits for the broker's answer to `correlation`.
    /// Subscribes again, on this session, to every channel and key the
    /// subscriptions it took over hold (the server did not resume the
    /// session they were made on); gives how many pairs, and how many of
    /// them failed.
    pub(crate) async fn resubscribe(&self) -> (usize, usize) {
        let pairs = self.pubsub().resubscribe(|| self.next_correlation());
        let mut failed = 0;
        for (correlation, channel, key) in &pairs {
            let frame = SubscribeFrame {
                correlation: *correlation,
                op: SubOp::Subscribe {
                    channel: *channel,
                    key: key.clone(),
                },
            }
            .encode();
            if !matches!(self.pubsub_exchange(*correlation, frame).await, Ok(Ok(_))) {
                failed += 1;
            }
        }
        (pairs.len(), failed)
    }

    async fn pubsub_exchange(
        &self,
        correlation: u64,
        frame: Frame,
    ) -> Result<Result<bool, Refusal>, Failure> {
        let rx = self.pubsub().wait_reply(correlation);
        let _forget = Forget(self, correlation);
        self.send_frame(frame).await.map_err(Failure::Send)?;
        let timeout = self.request_timeout();
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(Failure::Disconnected),
            Err(_) => Err(Failure::Timeout(timeout)),
        }
    }

    async fn publish_exchange(
        &self,
        name: &str,
        correlation: u64,
        frame: Frame,
    ) -> Result<Ack, PublishError> {
        match self.pubsub_exchange(correlation, frame).await {
            Ok(Ok(persisted)) => Ok(ack(persisted)),
            Ok(Err(refusal)) => Err(PublishError::Refused {
                what: "publication",
                channel: name.to_owned(),
                refusal,
            }),
            Err(f) => Err(publish_error(name.to_owned(), f)),
        }
    }

    /// Publishes on channel `C` and waits until the broker has accepted the
    /// publication (and, on a retained channel with a data directory,
    /// stored it durably: [`Ack::Persisted`]), or refused it.
    pub async fn publish<C: Channel>(&self, value: &C::Message) -> Result<Ack, PublishError> {
        check_key::<C>(None)?;
        let correlation = self.next_correlation();
        let head = PublishHead::Publication {
            correlation,
            channel: C::ID,
            key: None,
        };
        let frame = self.publish_frame(&head, value)?;
        self.publish_exchange(C::NAME, correlation, frame).await
    }

    /// Publishes on keyed channel `C` under `key`, and waits as
    /// [`Session::publish`] does.
    pub async fn publish_keyed<C: Channel>(
        &self,
        key: &str,
        value: &C::Message,
    ) -> Result<Ack, PublishError> {
        check_key::<C>(Some(key))?;
        let correlation = self.next_correlation();
        let head = PublishHead::Publication {
            correlation,
            channel: C::ID,
            key: Some(key),
        };
        let frame = self.publish_frame(&head, value)?;
        self.publish_exchange(C::NAME, correlation, frame).await
    }

    /// Publishes on channel `C` with the given guarantee. At least once
    /// (`docs/reliability.md`): the publication is kept until the broker
    /// acknowledged it, written again after a reconnection that resumed the
    /// session, and accepted once (duplicates are dropped by sequence
    /// number); the handle resolves on the acknowledgement. A refusal
    /// (ACL, filters) is not answered on this path: it is counted by the
    /// broker; use [`Session::publish`] to hear it. At most once, this is
    /// [`Session::publish`] without its answer.
    pub async fn publish_with<C: Channel>(
        &self,
        value: &C::Message,
        delivery: Delivery,
    ) -> Result<Delivered, PublishError> {
        check_key::<C>(None)?;
        self.publish_delivered::<C>(None, value, delivery).await
    }

    /// [`Session::publish_with`] on keyed channel `C` under `key`.
    pub async fn publish_keyed_with<C: Channel>(
        &self,
        key: &str,
        value: &C::Message,
        delivery: Delivery,
    ) -> Result<Delivered, PublishError> {
        check_key::<C>(Some(key))?;
        self.publish_delivered::<C>(Some(key), value, delivery)
            .await
    }

    async fn publish_delivered<C: Channel>(
        &self,
        key: Option<&str>,
        value: &C::Message,
        delivery: Delivery,
    ) -> Result<Delivered, PublishError> {
        let head = PublishHead::Publication {
            correlation: 0,
            channel: C::ID,
            key,
        };
        let frame = self.publish_frame(&head, value)?;
        Ok(self.send_frame_with(frame, delivery).await?)
    }

    /// Publishes on channel `C` without waiting, neither for room in the
    /// outbound queue ([`SendError::QueueFull`] then) nor for the broker's
    /// answer (a refusal is not reported): for high rates.
    pub fn try_publish<C: Channel>(&self, value: &C::Message) -> Result<(), PublishError> {
        check_key::<C>(None)?;
        let head = PublishHead::Publication {
            correlation: 0,
            channel: C::ID,
            key: None,
        };
        let frame = self.publish_frame(&head, value)?;
        Ok(self.try_enqueue(frame)?)
    }

    /// [`Session::try_publish`] on a keyed channel.
    pub fn try_publish_keyed<C: Channel>(
        &self,
        key: &str,
        value: &C::Message,
    ) -> Result<(), PublishError> {
        check_key::<C>(Some(key))?;
        let head = PublishHead::Publication {
            correlation: 0,
            channel: C::ID,
            key: Some(key),
        };
        let frame = self.publish_frame(&head, value)?;
        Ok(self.try_enqueue(frame)?)
    }

    /// Publishes an encoded message on a channel known by id only (tools,
    /// dynamic messages), and waits for the broker's answer.
    pub async fn publish_raw(
        &self,
        channel: u32,
        key: Option<&str>,
        payload: Bytes,
    ) -> Result<Ack, PublishError> {
        let correlation = self.next_correlation();
        let head = PublishHead::Publication {
            correlation,
            channel,
            key,
        };
        let frame = self.raw_publish_frame(&head, &payload)?;
        self.publish_exchange(&channel_label(channel, None), correlation, frame)
            .await
    }

    /// [`Session::publish_raw`] without waiting.
    pub fn try_publish_raw(
        &self,
        channel: u32,
        key: Option<&str>,
        payload: Bytes,
    ) -> Result<(), PublishError> {
        let head = PublishHead::Publication {
            correlation: 0,
            channel,
            key,
        };
        let frame = self.raw_publish_frame(&head, &payload)?;
        Ok(self.try_enqueue(frame)?)
    }

    /// Subscribes to channel `C`. The retained value(s) come first, marked
    /// `retained`; then every publication, a publisher's in the order it
    /// published them.
    pub async fn subscribe<C: Channel>(&self) -> Result<Subscription<C>, SubscribeError> {
        let raw = self.subscribe_inner(C::ID, None, C::NAME).await?;
        Ok(Subscription::new(raw))
    }

    /// Subscribes to one key of keyed channel `C`.
    pub async fn subscribe_key<C: Channel>(
        &self,
        key: &str,
    ) -> Result<Subscription<C>, SubscribeError> {
        let raw = self
            .subscribe_inner(C::ID, Some(key.to_owned()), C::NAME)
            .await?;
        Ok(Subscription::new(raw))
    }

    /// Subscribes to a channel known by id only (to one key, or all).
    pub async fn subscribe_raw(
        &self,
        channel: u32,
        key: Option<&str>,
    ) -> Result<RawSubscription, SubscribeError> {
        self.subscribe_inner(
            channel,
            key.map(str::to_owned),
            &channel_label(channel, None),
        )
        .await
    }

    async fn subscribe_inner(
        &self,
        channel: u32,
        key: Option<String>,
        name: &str,
    ) -> Result<RawSubscription, SubscribeError> {
        let correlation = self.next_correlation();
        let capacity = self.config().subscription_queue;
        let (id, queue) =
            self.pubsub()
                .add_subscription(channel, key.clone(), correlation, capacity);
        let mut raw = RawSubscription::new(
            queue,
            Owner::Session {
                session: self.clone(),
                id,
            },
            channel,
        );
        let frame = SubscribeFrame {
            correlation,
            op: SubOp::Subscribe { channel, key },
        }
        .encode();
        let channel = name.to_owned();
        let outcome = self.pubsub_exchange(correlation, frame).await;
        let err = match outcome {
            Ok(Ok(_)) => return Ok(raw),
            Ok(Err(refusal)) => SubscribeError::Refused { channel, refusal },
            Err(Failure::Send(e)) => SubscribeError::Send(e),
            Err(Failure::Disconnected) => SubscribeError::Disconnected { channel },
            Err(Failure::Timeout(after)) => SubscribeError::Timeout { channel, after },
        };
        // Never subscribed: forget it without telling the broker.
        self.pubsub().remove_subscription(id);
        raw.owner = Owner::Done;
        Err(err)
    }

    /// Ends every subscription of this session, here and at the broker.
    pub async fn unsubscribe_all(&self) -> Result<(), SubscribeError> {
        self.pubsub().clear_subscriptions();
        let correlation = self.next_correlation();
        let frame = SubscribeFrame {
            correlation,
            op: SubOp::UnsubscribeAll,
        }
        .encode();
        let channel = "*".to_owned();
        match self.pubsub_exchange(correlation, frame).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(refusal)) => Err(SubscribeError::Refused { channel, refusal }),
            Err(Failure::Send(e)) => Err(SubscribeError::Send(e)),
            Err(Failure::Disconnected) => Err(SubscribeError::Disconnected { channel }),
            Err(Failure::Timeout(after)) => Err(SubscribeError::Timeout { channel, after }),
        }
    }

    /// Deletes the retained value of channel `C` (of `key`, on a keyed
    /// channel), in the broker's memory and store.
    pub async fn delete_retained<C: Channel>(&self, key: Option<&str>) -> Result<(), PublishError> {
        check_key::<C>(key)?;
        self.delete_inner(C::ID, key, C::NAME).await
    }

    /// [`Session::delete_retained`] on a channel known by id only.
    pub async fn delete_retained_raw(
        &self,
        channel: u32,
        key: Option<&str>,
    ) -> Result<(), PublishError> {
        self.delete_inner(channel, key, &channel_label(channel, None))
            .await
    }

    async fn delete_inner(
        &self,
        channel: u32,
        key: Option<&str>,
        name: &str,
    ) -> Result<(), PublishError> {
        let correlation = self.next_correlation();
        let frame = SubscribeFrame {
            correlation,
            op: SubOp::Delete {
                channel,
                key: key.map(str::to_owned),
            },
        }
        .encode();
        match self.pubsub_exchange(correlation, frame).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(refusal)) => Err(PublishError::Refused {
                what: "delete",
                channel: name.to_owned(),
                refusal,
            }),
            Err(f) => Err(publish_error(name.to_owned(), f)),
        }
    }

    /// Sends a message to another device through the server (the
    /// receiver's handler sees this device's id in
    /// [`Context::sender`](crate::dispatch::Context::sender)). Returns once
    /// the server has queued it for the device, or refused it (unknown or
    /// disconnected device: [`Reason::UnknownDevice`](super::Reason::UnknownDevice)).
    pub async fn send_to<M: TopLevel>(&self, device_id: &str, msg: &M) -> Result<(), PublishError> {
        let correlation = self.next_correlation();
        let head = PublishHead::Message {
            correlation,
            to: device_id,
            type_id: M::TYPE_ID,
        };
        let frame = self.publish_frame(&head, msg)?;
        self.send_to_with(device_id, correlation, frame).await
    }

    /// [`Session::send_to`] with an encoded message of type `type_id`
    /// (tools, dynamic messages, the text protocol's `MSG`).
    pub async fn send_to_raw(
        &self,
        device_id: &str,
        type_id: u32,
        payload: Bytes,
    ) -> Result<(), PublishError> {
        let correlation = self.next_correlation();
        let head = PublishHead::Message {
            correlation,
            to: device_id,
            type_id,
        };
        let frame = self.raw_publish_frame(&head, &payload)?;
        self.send_to_with(device_id, correlation, frame).await
    }

    async fn send_to_with(
        &self,
        device_id: &str,
        correlation: u64,
        frame: Frame,
    ) -> Result<(), PublishError> {
        match self.pubsub_exchange(correlation, frame).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(refusal)) => Err(PublishError::Refused {
                what: "message",
                channel: device_id.to_owned(),
                refusal,
            }),
            Err(f) => Err(publish_error(device_id.to_owned(), f)),
        }
    }
}

fn not_connected() -> SendError {
    SendError::Closed {
        session: 0,
        reason: CloseReason::new(ClosedBy::Local, codes::UNAVAILABLE, "not connected"),
    }
}

impl Client {
    fn now(&self) -> Result<Session, SendError> {
        self.session().ok_or_else(not_connected)
    }

    /// [`Session::publish`] on the current session.
    pub async fn publish<C: Channel>(&self, value: &C::Message) -> Result<Ack, PublishError> {
        self.now()?.publish::<C>(value).await
    }

    /// [`Session::publish_keyed`] on the current session.
    pub async fn publish_keyed<C: Channel>(
        &self,
        key: &str,
        value: &C::Message,
    ) -> Result<Ack, PublishError> {
        self.now()?.publish_keyed::<C>(key, value).await
    }

    /// [`Session::publish_with`]; at least once it works while the client
    /// reconnects (the publication leaves on the resumed session), and needs
    /// [`ClientBuilder::resume`](crate::client::ClientBuilder::resume).
    pub async fn publish_with<C: Channel>(
        &self,
        value: &C::Message,
        delivery: Delivery,
    ) -> Result<Delivered, PublishError> {
        self.delivering(delivery)?
            .publish_with::<C>(value, delivery)
            .await
    }

    /// [`Session::publish_keyed_with`], as [`Client::publish_with`].
    pub async fn publish_keyed_with<C: Channel>(
        &self,
        key: &str,
        value: &C::Message,
        delivery: Delivery,
    ) -> Result<Delivered, PublishError> {
        self.delivering(delivery)?
            .publish_keyed_with::<C>(key, value, delivery)
            .await
    }

    /// [`Session::try_publish`] on the current session.
    pub fn try_publish<C: Channel>(&self, value: &C::Message) -> Result<(), PublishError> {
        self.now()?.try_publish::<C>(value)
    }

    /// [`Session::try_publish_keyed`] on the current session.
    pub fn try_publish_keyed<C: Channel>(
        &self,
        key: &str,
        value: &C::Message,
    ) -> Result<(), PublishError> {
        self.now()?.try_publish_keyed::<C>(key, value)
    }

    /// [`Session::publish_raw`] on the current session.
    pub async fn publish_raw(
        &self,
        channel: u32,
        key: Option<&str>,
        payload: Bytes,
    ) -> Result<Ack, PublishError> {
        self.now()?.publish_raw(channel, key, payload).await
    }

    /// [`Session::subscribe`] on the current session. Subscriptions belong
    /// to a session: after a reconnection, subscribe again (in
    /// [`ClientBuilder::on_connect`](crate::client::ClientBuilder::on_connect)
    /// or when [`Subscription::next`] returns `None`).
    pub async fn subscribe<C: Channel>(&self) -> Result<Subscription<C>, SubscribeError> {
        self.now()?.subscribe::<C>().await
    }

    /// [`Session::subscribe_key`] on the current session.
    pub async fn subscribe_key<C: Channel>(
        &self,
        key: &str,
    ) -> Result<Subscription<C>, SubscribeError> {
        self.now()?.subscribe_key::<C>(key).await
    }

    /// [`Session::subscribe_raw`] on the current session.
    pub async fn subscribe_raw(
        &self,
        channel: u32,
        key: Option<&str>,
    ) -> Result<RawSubscription, SubscribeError> {
        self.now()?.subscribe_raw(channel, key).await
    }

    /// [`Session::unsubscribe_all`] on the current session.
    pub async fn unsubscribe_all(&self) -> Result<(), SubscribeError> {
        self.now()?.unsubscribe_all().await
    }

    /// [`Session::delete_retained`] on the current session.
    pub async fn delete_retained<C: Channel>(&self, key: Option<&str>) -> Result<(), PublishError> {
        self.now()?.delete_retained::<C>(key).await
    }

    /// [`Session::delete_retained_raw`] on the current session.
    pub async fn delete_retained_raw(
        &self,
        channel: u32,
        key: Option<&str>,
    ) -> Result<(), PublishError> {
        self.now()?.delete_retained_raw(channel, key).await
    }

    /// [`Session::send_to`] on the current session.
    pub async fn send_to<M: TopLevel>(&self, device_id: &str, msg: &M) -> Result<(), PublishError> {
        self.now()?.send_to(device_id, msg).await
    }

    /// [`Session::send_to_raw`] on the current session.
    pub async fn send_to_raw(
        &self,
        device_id: &str,
        type_id: u32,
        payload: Bytes,
    ) -> Result<(), PublishError> {
        self.now()?.send_to_raw(device_id, type_id, payload).await
    }
}
