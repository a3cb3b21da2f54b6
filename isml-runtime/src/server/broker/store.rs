//! Where retained values live. With a data directory (feature `store`),
//! in a redb database, `retained.redb`: one writer thread takes what the
//! broker submits, commits it in batches with durability, and only then
//! answers the publishers, so that a publication acknowledged as persisted
//! survives a crash of the server. Without one, the broker's own map is the
//! only copy, and a restart loses it.
//!
//! Records: the key is the channel id (4 bytes, big endian), a byte that
//! says whether a key follows, and the key's UTF-8; the value is the
//! publisher (`uvarint` length + UTF-8), the timestamp in milliseconds
//! (`uvarint`) and the encoded message.

use std::path::Path;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::sync::{mpsc, oneshot};

use super::{BrokerError, Published, Retained};
use crate::pubsub::frames::Reply;
use crate::pubsub::{Reason, Refusal};
use crate::session::{SendError, Session};
use crate::wire::{Reader, varint};

/// Store operations waiting for the writer: beyond it, the publishing
/// session stops reading until there is room (backpressure, no loss).
const STORE_QUEUE: usize = 4096;
/// Operations committed in one transaction at most.
#[cfg(feature = "store")]
const BATCH: usize = 1024;

pub(crate) enum StoreOp {
    Put {
        channel: u32,
        key: Option<String>,
        value: Retained,
    },
    Delete {
        channel: u32,
        key: Option<String>,
    },
    /// Write what came before, close the database, then answer.
    Close(oneshot::Sender<()>),
}

/// Who waits for the store's answer.
pub(crate) enum AckTo {
    None,
    Session { session: Session, correlation: u64 },
    Local(oneshot::Sender<Result<bool, Refusal>>),
}

impl AckTo {
    pub(crate) fn of(session: Option<&Session>, correlation: u64) -> AckTo {
        match session {
            Some(s) if correlation != 0 => AckTo::Session {
                session: s.clone(),
                correlation,
            },
            _ => AckTo::None,
        }
    }

    fn send(self, outcome: Result<bool, Refusal>, rt: &tokio::runtime::Handle) {
        match self {
            AckTo::None => {}
            AckTo::Local(tx) => {
                let _ = tx.send(outcome);
            }
            AckTo::Session {
                session,
                correlation,
            } => {
                let frame = Reply {
                    correlation,
                    outcome,
                }
                .encode();
                if let Err(SendError::QueueFull { .. }) = session.try_enqueue(frame.clone()) {
                    rt.spawn(async move {
                        let _ = session.send_frame(frame).await;
                    });
                }
            }
        }
    }
}

type Loaded = Vec<((u32, Option<String>), Retained)>;

pub(crate) struct Store {
    tx: Option<mpsc::Sender<(StoreOp, AckTo)>>,
}

impl Store {
    /// Opens the store in `dir` (memory only without one) and reads what it holds.
    pub(crate) fn open(dir: Option<&Path>) -> Result<(Store, Loaded), BrokerError> {
        let Some(dir) = dir else {
            return Ok((Store { tx: None }, Vec::new()));
        };
        open_disk(dir)
    }

    /// Writes what is queued, closes the database (so that it can be
    /// opened again, by this process or another) and stops the writer.
    pub(crate) async fn close(&self) {
        let Some(tx) = &self.tx else {
            return;
        };
        let (done, wait) = oneshot::channel();
        if tx.send((StoreOp::Close(done), AckTo::None)).await.is_ok() {
            let _ = wait.await;
        }
    }

    pub(crate) fn is_persistent(&self) -> bool {
        self.tx.is_some()
    }

    /// Hands an operation to the writer.
    pub(crate) fn submit(&self, op: StoreOp, ack: AckTo) -> Published {
        let Some(tx) = &self.tx else {
            return Published::Now(false);
        };
        match tx.try_send((op, ack)) {
            Ok(()) => Published::Stored,
            Err(mpsc::error::TrySendError::Full(item)) => {
                let tx = tx.clone();
                Published::Wait(Box::pin(async move {
                    if let Err(mpsc::error::SendError((_, ack))) = tx.send(item).await {
                        ack.send(Err(stopped()), &tokio::runtime::Handle::current());
                    }
                }))
            }
            Err(mpsc::error::TrySendError::Closed((_, ack))) => {
                ack.send(Err(stopped()), &tokio::runtime::Handle::current());
                Published::Stored
            }
        }
    }
}

fn stopped() -> Refusal {
    Refusal::new(Reason::Store, "the store's writer has stopped")
}

pub(crate) fn record_key(channel: u32, key: Option<&str>) -> Vec<u8> {
    let mut k = Vec::with_capacity(5 + key.map_or(0, str::len));
    k.extend_from_slice(&channel.to_be_bytes());
    match key {
        Some(key) => {
            k.push(1);
            k.extend_from_slice(key.as_bytes());
        }
        None => k.push(0),
    }
    k
}

pub(crate) fn record_value(v: &Retained) -> Vec<u8> {
    let mut b = BytesMut::with_capacity(v.publisher.len() + 12 + v.payload.len());
    varint::put(&mut b, v.publisher.len() as u64);
    b.put_slice(v.publisher.as_bytes());
    varint::put(&mut b, v.timestamp_ms);
    b.put_slice(&v.payload);
    b.to_vec()
}

/// A record back; `None` when it is corrupt.
pub(crate) fn parse_record(key: &[u8], value: &[u8]) -> Option<((u32, Option<String>), Retained)> {
    let channel = u32::from_be_bytes(key.get(..4)?.try_into().ok()?);
    let k = match key.get(4)? {
        0 if key.len() == 5 => None,
        1 => Some(std::str::from_utf8(&key[5..]).ok()?.to_owned()),
        _ => return None,
    };
    let mut r = Reader::new(value);
    let publisher = r.str().ok()?.to_owned();
    let timestamp_ms = r.uvarint().ok()?;
    let payload = Bytes::copy_from_slice(r.rest());
    Some((
        (channel, k),
        Retained {
            publisher,
            timestamp_ms,
            payload,
        },
    ))
}

#[cfg(not(feature = "store"))]
fn open_disk(dir: &Path) -> Result<(Store, Loaded), BrokerError> {
    Err(BrokerError::Store {
        path: dir.to_owned(),
        message: "built without the `store` feature".into(),
    })
}

#[cfg(feature = "store")]
const TABLE: redb::TableDefinition<'static, &'static [u8], &'static [u8]> =
    redb::TableDefinition::new("retained");

#[cfg(feature = "store")]
fn open_disk(dir: &Path) -> Result<(Store, Loaded), BrokerError> {
    use redb::{ReadableDatabase, ReadableTable};

    let path = dir.join("retained.redb");
    let err = |e: &dyn std::fmt::Display| BrokerError::Store {
        path: path.clone(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(dir).map_err(|e| err(&e))?;
    let db = redb::Database::create(&path).map_err(|e| err(&e))?;
    {
        // The table exists from the start, so that reads never miss it.
        let txn = db.begin_write().map_err(|e| err(&e))?;
        txn.open_table(TABLE).map_err(|e| err(&e))?;
        txn.commit().map_err(|e| err(&e))?;
    }
    let mut loaded = Vec::new();
    {
        let txn = db.begin_read().map_err(|e| err(&e))?;
        let table = txn.open_table(TABLE).map_err(|e| err(&e))?;
        for item in table.iter().map_err(|e| err(&e))? {
            let (k, v) = item.map_err(|e| err(&e))?;
            match parse_record(k.value(), v.value()) {
                Some(record) => loaded.push(record),
                None => tracing::warn!(path = %path.display(), "corrupt retained record skipped"),
            }
        }
    }
    let (tx, rx) = mpsc::channel(STORE_QUEUE);
    let rt = tokio::runtime::Handle::current();
    std::thread::Builder::new()
        .name("isml-store".into())
        .spawn(move || writer(db, rx, rt))
        .map_err(|e| err(&e))?;
    Ok((Store { tx: Some(tx) }, loaded))
}

/// The writer thread: batches, commits with durability, then answers.
#[cfg(feature = "store")]
fn writer(
    db: redb::Database,
    mut rx: mpsc::Receiver<(StoreOp, AckTo)>,
    rt: tokio::runtime::Handle,
) {
    let mut closing = None;
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(item) => batch.push(item),
                Err(_) => break,
            }
        }
        if let Some(at) = batch
            .iter()
            .position(|(op, _)| matches!(op, StoreOp::Close(_)))
        {
            // Nothing after the close is written: refused below.
            for (_, ack) in batch.drain(at + 1..) {
                ack.send(Err(stopped()), &rt);
            }
            if let Some((StoreOp::Close(done), _)) = batch.pop() {
                closing = Some(done);
            }
        }
        let result = (|| -> Result<(), redb::Error> {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(TABLE)?;
                for (op, _) in &batch {
                    match op {
                        StoreOp::Put {
                            channel,
                            key,
                            value,
                        } => {
                            table.insert(
                                record_key(*channel, key.as_deref()).as_slice(),
                                record_value(value).as_slice(),
                            )?;
                        }
                        StoreOp::Delete { channel, key } => {
                            table.remove(record_key(*channel, key.as_deref()).as_slice())?;
                        }
                        StoreOp::Close(_) => {}
                    }
                }
            }
            txn.commit()?;
            Ok(())
        })();
        let outcome = match result {
            Ok(()) => Ok(true),
            Err(e) => {
                tracing::error!(error = %e, "retained values not stored");
                Err(Refusal::new(Reason::Store, format!("not stored: {e}")))
            }
        };
        for (_, ack) in batch {
            ack.send(outcome.clone(), &rt);
        }
        if let Some(done) = closing {
            rx.close();
            while let Ok((_, ack)) = rx.try_recv() {
                ack.send(Err(stopped()), &rt);
            }
            drop(db);
            let _ = done.send(());
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_corrupt_ones_are_refused() {
        let v = Retained {
            publisher: "cab-1".into(),
            timestamp_ms: 1_700_000_000_123,
            payload: Bytes::from_static(&[1, 2, 3]),
        };
        for key in [None, Some("door"), Some("")] {
            let k = record_key(9, key);
            let back = parse_record(&k, &record_value(&v)).unwrap();
            assert_eq!(back, ((9, key.map(str::to_owned)), v.clone()));
        }
        assert!(parse_record(&[0, 0, 0], &[]).is_none());
        assert!(parse_record(&[0, 0, 0, 1, 2], &[0, 0]).is_none());
        assert!(parse_record(&[0, 0, 0, 1, 0], &[5, b'a']).is_none());
        assert!(parse_record(&[0, 0, 0, 1, 1, 0xff], &[0, 0]).is_none());
    }
}
