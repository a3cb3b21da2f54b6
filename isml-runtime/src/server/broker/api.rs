//! The pub/sub methods of [`Server`]: the server process publishes,
//! subscribes and sends to devices through its own broker, without a
//! session. It is never checked by the ACL or the filters; its
//! publications show the publisher `""`.

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;

use super::store::AckTo;
use super::{BrokerStats, ChannelStats, Published, SubscriberStats, Who};
use crate::TopLevel;
use crate::pubsub::subscription::Owner;
use crate::pubsub::{
    Ack, Channel, PublishError, RawPublication, RawSubscription, Reason, Refusal, SubscribeError,
    Subscription, channel_label,
};
use crate::server::Server;
use crate::session::SendError;

const SERVER: Who<'static> = Who {
    device: "",
    principal: None,
    session: None,
};

fn encode<M: TopLevel>(msg: &M) -> Result<Bytes, SendError> {
    let mut buf = BytesMut::with_capacity(msg.encoded_len());
    msg.encode(&mut buf).map_err(|source| SendError::Encode {
        message: M::NAME,
        source,
    })?;
    Ok(buf.freeze())
}

impl Server {
    fn label(&self, channel: u32) -> String {
        channel_label(
            channel,
            self.inner.broker.info(channel).map(|i| i.name.as_str()),
        )
    }

    async fn publish_inner(
        &self,
        channel: u32,
        key: Option<&str>,
        payload: Bytes,
        wait: bool,
    ) -> Result<Ack, PublishError> {
        let (tx, rx) = oneshot::channel();
        let ack = if wait { AckTo::Local(tx) } else { AckTo::None };
        let refused = |refusal: Refusal| PublishError::Refused {
            what: "publication",
            channel: self.label(channel),
            refusal,
        };
        let outcome = match self
            .inner
            .broker
            .publish(&SERVER, channel, key, payload, ack)
        {
            Ok(Published::Now(p)) => return Ok(if p { Ack::Persisted } else { Ack::Accepted }),
            Ok(Published::Stored) => rx,
            Ok(Published::Wait(fut)) => {
                fut.await;
                rx
            }
            Err(refusal) => return Err(refused(refusal)),
        };
        if !wait {
            return Ok(Ack::Accepted);
        }
        match outcome.await {
            Ok(Ok(p)) => Ok(if p { Ack::Persisted } else { Ack::Accepted }),
            Ok(Err(refusal)) => Err(refused(refusal)),
            Err(_) => Err(refused(Refusal::new(
                Reason::Store,
                "the store's writer has stopped",
            ))),
        }
    }

    /// Publishes on channel `C` from the server process (publisher `""`);
    /// returns once the value is handed to the subscribers and, on a
    /// retained channel with a data directory, stored durably.
    pub async fn publish<C: Channel>(&self, value: &C::Message) -> Result<Ack, PublishError> {
        if C::KEYED {
            return Err(PublishError::Key {
                channel: C::NAME,
                keyed: true,
            });
        }
        self.publish_inner(C::ID, None, encode(value)?, true).await
    }

    /// Publishes on keyed channel `C` under `key`.
    pub async fn publish_keyed<C: Channel>(
        &self,
        key: &str,
        value: &C::Message,
    ) -> Result<Ack, PublishError> {
        if !C::KEYED {
            return Err(PublishError::Key {
                channel: C::NAME,
                keyed: false,
            });
        }
        self.publish_inner(C::ID, Some(key), encode(value)?, true)
            .await
    }

    /// Publishes on channel `C` without waiting for the store.
    pub fn try_publish<C: Channel>(&self, value: &C::Message) -> Result<(), PublishError> {
        if C::KEYED {
            return Err(PublishError::Key {
                channel: C::NAME,
                keyed: true,
            });
        }
        let payload = encode(value)?;
        match self
            .inner
            .broker
            .publish(&SERVER, C::ID, None, payload, AckTo::None)
        {
            Ok(Published::Wait(fut)) => {
                tokio::spawn(fut);
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(refusal) => Err(PublishError::Refused {
                what: "publication",
                channel: C::NAME.to_owned(),
                refusal,
            }),
        }
    }

    /// Publishes an encoded message on a channel known by id only.
    pub async fn publish_raw(
        &self,
        channel: u32,
        key: Option<&str>,
        payload: Bytes,
    ) -> Result<Ack, PublishError> {
        self.publish_inner(channel, key, payload, true).await
    }

    /// Subscribes the server process to channel `C`.
    pub async fn subscribe<C: Channel>(&self) -> Result<Subscription<C>, SubscribeError> {
        Ok(Subscription::new(self.subscribe_raw(C::ID, None).await?))
    }

    /// Subscribes the server process to one key of keyed channel `C`.
    pub async fn subscribe_key<C: Channel>(
        &self,
        key: &str,
    ) -> Result<Subscription<C>, SubscribeError> {
        Ok(Subscription::new(
            self.subscribe_raw(C::ID, Some(key)).await?,
        ))
    }

    /// Subscribes the server process to a channel known by id only.
    pub async fn subscribe_raw(
        &self,
        channel: u32,
        key: Option<&str>,
    ) -> Result<RawSubscription, SubscribeError> {
        let broker = &self.inner.broker;
        match broker.subscribe_local(channel, key.map(str::to_owned)) {
            Ok((peer, queue)) => Ok(RawSubscription::new(
                queue,
                Owner::Broker {
                    broker: broker.clone(),
                    peer,
                },
                channel,
            )),
            Err(refusal) => Err(SubscribeError::Refused {
                channel: self.label(channel),
                refusal,
            }),
        }
    }

    /// Ends every subscription of the server process.
    pub async fn unsubscribe_all(&self) -> Result<(), SubscribeError> {
        self.inner.broker.unsubscribe_all_local();
        Ok(())
    }

    /// Deletes the retained value of channel `C` (of `key` on a keyed channel).
    pub async fn delete_retained<C: Channel>(&self, key: Option<&str>) -> Result<(), PublishError> {
        if C::KEYED != key.is_some() {
            return Err(PublishError::Key {
                channel: C::NAME,
                keyed: C::KEYED,
            });
        }
        self.delete_retained_raw(C::ID, key).await
    }

    /// Deletes a retained value of a channel known by id only.
    pub async fn delete_retained_raw(
        &self,
        channel: u32,
        key: Option<&str>,
    ) -> Result<(), PublishError> {
        let (tx, rx) = oneshot::channel();
        let refused = |refusal: Refusal| PublishError::Refused {
            what: "delete",
            channel: self.label(channel),
            refusal,
        };
        let rx = match self
            .inner
            .broker
            .delete(&SERVER, channel, key, AckTo::Local(tx))
        {
            Ok(Published::Now(_)) => return Ok(()),
            Ok(Published::Stored) => rx,
            Ok(Published::Wait(fut)) => {
                fut.await;
                rx
            }
            Err(refusal) => return Err(refused(refusal)),
        };
        match rx.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(refusal)) => Err(refused(refusal)),
            Err(_) => Err(refused(Refusal::new(
                Reason::Store,
                "the store's writer has stopped",
            ))),
        }
    }

    /// Sends a message to a device from the server process (its handler
    /// sees the sender `""`).
    pub async fn send_to<M: TopLevel>(&self, device_id: &str, msg: &M) -> Result<(), PublishError> {
        let payload = encode(msg)?;
        let refused = |refusal| PublishError::Refused {
            what: "message",
            channel: device_id.to_owned(),
            refusal,
        };
        match self
            .inner
            .broker
            .send_to(&SERVER, device_id, M::TYPE_ID, &payload)
        {
            Ok(sent) => sent.finish().await.map_err(refused),
            Err(refusal) => Err(refused(refusal)),
        }
    }

    /// Statistics of the broker and of every channel.
    pub fn broker_stats(&self) -> BrokerStats {
        self.inner.broker.stats()
    }

    /// Statistics of one channel.
    pub fn channel_stats(&self, channel: u32) -> Option<ChannelStats> {
        self.inner.broker.channel_stats(channel)
    }

    /// The broker's statistics of a session as a subscriber (`None` when
    /// it never subscribed, or is gone).
    pub fn subscriber_stats(&self, session_id: u64) -> Option<SubscriberStats> {
        let s = self.session(session_id)?;
        s.pubsub().peer().map(|p| p.stats())
    }

    /// Every retained value of a channel (each key's, on a keyed channel),
    /// sorted by key.
    pub fn retained_all_raw(&self, channel: u32) -> Vec<RawPublication> {
        let mut all: Vec<RawPublication> = self
            .inner
            .broker
            .retained_values(channel)
            .into_iter()
            .map(|(key, v)| RawPublication {
                channel,
                key,
                publisher: v.publisher,
                timestamp_ms: v.timestamp_ms,
                retained: true,
                payload: v.payload,
            })
            .collect();
        all.sort_by(|a, b| a.key.cmp(&b.key));
        all
    }

    /// The retained value of a channel (and key), as the broker holds it.
    pub fn retained_raw(&self, channel: u32, key: Option<&str>) -> Option<RawPublication> {
        let v = self.inner.broker.retained_value(channel, key)?;
        Some(RawPublication {
            channel,
            key: key.map(str::to_owned),
            publisher: v.publisher,
            timestamp_ms: v.timestamp_ms,
            retained: true,
            payload: v.payload,
        })
    }
}
