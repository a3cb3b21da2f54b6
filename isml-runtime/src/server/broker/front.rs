//! The server's handler of received frames: the filter chain first, then
//! the dispatcher (messages, requests) or the broker (pub/sub frames).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use super::filter::Target;
use super::{Broker, Who};
use crate::dispatch::{Dispatcher, HandlerError};
use crate::session::{Inbound, Outcome, PRINCIPAL, Session};

pub(crate) struct Front {
    pub(crate) dispatcher: Arc<Dispatcher>,
    pub(crate) broker: Arc<Broker>,
}

impl Front {
    fn check(
        &self,
        session: &Session,
        target: Target<'_>,
        type_id: u32,
        payload: &[u8],
    ) -> Result<(), HandlerError> {
        let who = Who {
            device: session.device_id(),
            principal: session.get(&PRINCIPAL),
            session: Some(session),
        };
        self.broker
            .filter(&who, target, type_id, payload)
            .map_err(|r| HandlerError::new(r.reason.error_code(), r.to_string()))
    }
}

impl Inbound for Front {
    fn one_way(&self, session: &Session, type_id: u32, payload: Bytes) -> Option<Outcome<()>> {
        if let Err(e) = self.check(session, Target::Message, type_id, &payload) {
            return Some(Box::pin(std::future::ready(Err(e))));
        }
        self.dispatcher.one_way(session, type_id, payload)
    }

    fn request(
        &self,
        session: &Session,
        correlation: u64,
        type_id: u32,
        payload: Bytes,
    ) -> Option<Outcome<(u32, Bytes)>> {
        if let Err(e) = self.check(session, Target::Request, type_id, &payload) {
            return Some(Box::pin(std::future::ready(Err(e))));
        }
        self.dispatcher
            .request(session, correlation, type_id, payload)
    }

    fn direct(
        &self,
        session: &Session,
        from: &str,
        type_id: u32,
        payload: Bytes,
    ) -> Option<BoxFuture<'static, ()>> {
        self.dispatcher.direct(session, from, type_id, payload)
    }

    fn broker(&self) -> Option<&Arc<Broker>> {
        Some(&self.broker)
    }
}

/// Calls: the ACL (action `call` on `package.Service/method`) and the
/// filter chain (as a request) before the service runs.
impl crate::session::Calls for Front {
    fn call(
        &self,
        session: &Session,
        frame: crate::wire::Frame,
        inline: bool,
    ) -> crate::session::Started {
        let h = frame.header;
        let refuse = |code: u64, message: String| {
            crate::session::Started::Done(Some(crate::session::error_frame(
                h.correlation,
                code,
                &message,
            )))
        };
        let method = h.call.and_then(|addr| {
            let index = (addr.service as usize).checked_sub(1)?;
            self.dispatcher
                .services()
                .nth(index)?
                .method(addr.method)
                .map(|m| m.full_name)
        });
        if let Some(name) = method {
            let who = Who {
                device: session.device_id(),
                principal: session.get(&PRINCIPAL),
                session: Some(session),
            };
            if let Err(r) = self.broker.allowed(&who, super::Action::Call, name) {
                return refuse(crate::session::codes::PERMISSION_DENIED, r.to_string());
            }
        }
        if let Err(e) = self.check(session, Target::Request, h.type_id, &frame.payload) {
            return refuse(e.code, e.message);
        }
        self.dispatcher.call(session, frame, inline)
    }
}
