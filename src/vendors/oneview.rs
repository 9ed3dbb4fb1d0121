//! PLACEHOLDER — being written.

use async_trait::async_trait;
use secrecy::SecretString;
use url::Url;

use super::{Backend, BackendError};
use crate::config::SystemConfig;
use crate::domain::{ServerName, ServerRecord, SystemKind};

pub struct OneView {
    name: String,
    endpoint: Url,
}

impl OneView {
    pub fn new(
        sys: &SystemConfig,
        _http: reqwest::Client,
        _password: SecretString,
    ) -> Result<Self, BackendError> {
        Ok(Self {
            name: sys.name.clone(),
            endpoint: sys.endpoint.clone(),
        })
    }
}

#[async_trait]
impl Backend for OneView {
    fn name(&self) -> &str {
        &self.name
    }
    fn kind(&self) -> SystemKind {
        SystemKind::Oneview
    }
    fn endpoint(&self) -> &Url {
        &self.endpoint
    }
    async fn find(&self, _name: &ServerName) -> Result<Vec<ServerRecord>, BackendError> {
        Err(BackendError::Protocol {
            system: self.name.clone(),
            endpoint: String::new(),
            detail: "not written yet".into(),
        })
    }
    async fn logout(&self) {}
}
