//! The redis backend (work in progress).

use std::sync::Arc;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::url::ConnectUrl;

pub(crate) async fn connect(url: &ConnectUrl) -> Result<Arc<dyn Backend>> {
    Err(Error::validation(format!(
        "the redis backend is not implemented yet ({url})"
    )))
}
