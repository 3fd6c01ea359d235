//! `WebhookBook`: endpoints and deliveries in latchd's side records
//! (`EventStore::put_webhook_record`). Keys: `e<endpoint id>` for an
//! endpoint, `d<endpoint id><position>` for a delivery, and
//! `p<endpoint id><position>` (empty) for each delivery still pending, so
//! the dispatcher finds an endpoint's next delivery without reading its
//! history. Positions are big-endian: key order is log order.

use std::sync::Arc;

use latch_store::{EventStore, StoreError};
use uuid::Uuid;

use super::delivery::{Delivery, DeliveryStatus};
use super::webhook_endpoint::WebhookEndpoint;

#[derive(Clone)]
pub struct WebhookBook {
    store: Arc<EventStore>,
}

fn key(kind: u8, id: Uuid, position: Option<u64>) -> Vec<u8> {
    let mut key = vec![kind];
    key.extend_from_slice(id.as_bytes());
    if let Some(position) = position {
        key.extend_from_slice(&position.to_be_bytes());
    }
    key
}

fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Corrupt {
        position: latch_core::Position::ZERO,
        problem: format!("a webhook record does not decode: {e}"),
    })
}

impl WebhookBook {
    pub fn new(store: Arc<EventStore>) -> Self {
        Self { store }
    }

    pub fn put_endpoint(&self, endpoint: &WebhookEndpoint) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(endpoint).expect("an endpoint serialises");
        self.store.put_webhook_record(&key(b'e', endpoint.id, None), &bytes)
    }

    pub fn endpoints(&self) -> Result<Vec<WebhookEndpoint>, StoreError> {
        self.store
            .webhook_records(b"e")?
            .iter()
            .map(|(_, value)| decode(value))
            .collect()
    }

    pub fn endpoint(&self, id: Uuid) -> Result<Option<WebhookEndpoint>, StoreError> {
        self.exact(&key(b'e', id, None))
    }

    /// The record stored under exactly `wanted`.
    fn exact<T: serde::de::DeserializeOwned>(&self, wanted: &[u8]) -> Result<Option<T>, StoreError> {
        match self.store.webhook_records(wanted)?.into_iter().next() {
            Some((k, value)) if k == wanted => Ok(Some(decode(&value)?)),
            _ => Ok(None),
        }
    }

    /// Removes the endpoint and everything about its deliveries.
    pub fn remove_endpoint(&self, id: Uuid) -> Result<(), StoreError> {
        self.store.delete_webhook_record(&key(b'e', id, None))?;
        for kind in [b'd', b'p'] {
            for (k, _) in self.store.webhook_records(&key(kind, id, None))? {
                self.store.delete_webhook_record(&k)?;
            }
        }
        Ok(())
    }

    /// Writes the delivery, and keeps the pending index in step.
    pub fn put_delivery(&self, delivery: &Delivery) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(delivery).expect("a delivery serialises");
        self.store
            .put_webhook_record(&key(b'd', delivery.webhook_id, Some(delivery.position)), &bytes)?;
        let pending = key(b'p', delivery.webhook_id, Some(delivery.position));
        if delivery.status == DeliveryStatus::Pending {
            self.store.put_webhook_record(&pending, &[])
        } else {
            self.store.delete_webhook_record(&pending)
        }
    }

    pub fn delivery(&self, id: Uuid, position: u64) -> Result<Option<Delivery>, StoreError> {
        self.exact(&key(b'd', id, Some(position)))
    }

    /// The endpoint's earliest pending delivery: the next to attempt
    /// (deliveries go in log order; a redelivered one goes first).
    pub fn next_pending(&self, id: Uuid) -> Result<Option<Delivery>, StoreError> {
        let Some((k, _)) = self.store.webhook_records(&key(b'p', id, None))?.into_iter().next() else {
            return Ok(None);
        };
        let position = u64::from_be_bytes(k[17..25].try_into().expect("8 bytes"));
        self.delivery(id, position)
    }

    /// The endpoint's deliveries, newest first.
    pub fn deliveries(&self, id: Uuid) -> Result<Vec<Delivery>, StoreError> {
        let mut all: Vec<Delivery> = self
            .store
            .webhook_records(&key(b'd', id, None))?
            .iter()
            .map(|(_, value)| decode(value))
            .collect::<Result<_, _>>()?;
        all.reverse();
        Ok(all)
    }
}
