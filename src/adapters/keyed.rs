//! A view of a store in which every read of one container carries a customer-provided key:
//! the pipeline hands it to the validator and the Hub upload, which only know `open`.
//! Writes and other containers pass through unchanged; the key lives only in memory.

use std::sync::Arc;

use crate::ports::{
    BlobError, BlobProperties, BlobReader, BlobStore, Condition, CustomerKey, LeaseId, read_all,
};
use async_trait::async_trait;

/// `inner`, with reads of `container` made with `key`.
#[derive(Debug, Clone)]
pub struct KeyedReads {
    inner: Arc<dyn BlobStore>,
    container: String,
    key: CustomerKey,
}

impl KeyedReads {
    /// Wraps `inner`.
    pub fn new(inner: Arc<dyn BlobStore>, container: &str, key: CustomerKey) -> Self {
        Self {
            inner,
            container: container.to_owned(),
            key,
        }
    }
}

#[async_trait]
impl BlobStore for KeyedReads {
    async fn get(
        &self,
        container: &str,
        name: &str,
    ) -> Result<(BlobProperties, Vec<u8>), BlobError> {
        if container != self.container {
            return self.inner.get(container, name).await;
        }
        read_all(self.open(container, name).await?, container, name).await
    }
    async fn open(
        &self,
        container: &str,
        name: &str,
    ) -> Result<(BlobProperties, BlobReader), BlobError> {
        if container == self.container {
            self.inner.open_with_key(container, name, &self.key).await
        } else {
            self.inner.open(container, name).await
        }
    }
    async fn open_with_key(
        &self,
        container: &str,
        name: &str,
        key: &CustomerKey,
    ) -> Result<(BlobProperties, BlobReader), BlobError> {
        self.inner.open_with_key(container, name, key).await
    }
    async fn properties(&self, container: &str, name: &str) -> Result<BlobProperties, BlobError> {
        self.inner.properties(container, name).await
    }
    async fn put(
        &self,
        container: &str,
        name: &str,
        bytes: &[u8],
        condition: Condition,
    ) -> Result<BlobProperties, BlobError> {
        self.inner.put(container, name, bytes, condition).await
    }
    async fn put_file(
        &self,
        container: &str,
        name: &str,
        file: &std::path::Path,
        condition: Condition,
    ) -> Result<BlobProperties, BlobError> {
        self.inner.put_file(container, name, file, condition).await
    }
    async fn list(&self, container: &str, prefix: &str) -> Result<Vec<BlobProperties>, BlobError> {
        self.inner.list(container, prefix).await
    }
    async fn delete(
        &self,
        container: &str,
        name: &str,
        condition: Condition,
    ) -> Result<bool, BlobError> {
        self.inner.delete(container, name, condition).await
    }
    async fn ensure_container(&self, container: &str) -> Result<(), BlobError> {
        self.inner.ensure_container(container).await
    }
    async fn acquire_lease(
        &self,
        container: &str,
        name: &str,
        seconds: u32,
    ) -> Result<Option<LeaseId>, BlobError> {
        self.inner.acquire_lease(container, name, seconds).await
    }
    async fn renew_lease(
        &self,
        container: &str,
        name: &str,
        lease: &LeaseId,
    ) -> Result<(), BlobError> {
        self.inner.renew_lease(container, name, lease).await
    }
    async fn release_lease(
        &self,
        container: &str,
        name: &str,
        lease: &LeaseId,
    ) -> Result<(), BlobError> {
        self.inner.release_lease(container, name, lease).await
    }
}
