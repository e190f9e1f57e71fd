//! KMS's errors as the crate's typed [`Error`]: what a caller acts on (not found, disabled,
//! access denied, throttled, timed out, unreachable, 5xx), with the SDK's error kept as the
//! source.

use std::time::Duration;

use aws_sdk_kms::config::http::HttpResponse;
use aws_sdk_kms::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::{BoxError, Error};

/// What error messages need from the client's configuration.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorContext {
    pub(crate) timeout: Duration,
    pub(crate) max_attempts: u32,
}

/// Turns an SDK error into the crate's typed error, keeping it as the source.
pub(crate) fn map_sdk_error<E>(err: SdkError<E, HttpResponse>, key: &str, ctx: ErrorContext) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (code, message) = match &err {
        SdkError::ServiceError(service) => {
            (service.err().code().map(str::to_owned), service.err().message().unwrap_or("").to_owned())
        }
        _ => (None, String::new()),
    };
    let timeout = matches!(&err, SdkError::TimeoutError(_))
        || matches!(&err, SdkError::DispatchFailure(failure) if failure.is_timeout());
    let dispatch = matches!(&err, SdkError::DispatchFailure(_));
    let status = err.raw_response().map_or(0, |r| r.status().as_u16());
    let construction = matches!(&err, SdkError::ConstructionFailure(_));
    let source: BoxError = Box::new(err);
    if status >= 500 && code.as_deref() != Some("ThrottlingException") {
        return Error::Unavailable { status, code: code.unwrap_or_default(), message, source };
    }
    match code.as_deref() {
        Some("NotFoundException") => Error::KeyNotFound(key.to_owned()),
        Some("DisabledException") => Error::KeyDisabled(key.to_owned()),
        Some("KMSInvalidStateException") if message.to_ascii_lowercase().contains("pending deletion") => {
            Error::KeyPendingDeletion(key.to_owned())
        }
        Some("KMSInvalidStateException") => Error::KeyUnavailable { key: key.to_owned(), state: message },
        Some("AccessDeniedException") => Error::AccessDenied { message, source },
        Some("ThrottlingException" | "LimitExceededException") => {
            Error::Throttled { attempts: ctx.max_attempts, source }
        }
        Some(code) => Error::Kms { code: code.to_owned(), message, source },
        None if timeout => Error::Timeout { after: ctx.timeout, source },
        None if dispatch => Error::Transport { reason: root_cause(&*source), source },
        None if construction => Error::Request { reason: root_cause(&*source), source },
        // A service error without a code, or a response the SDK could not read at all.
        None => Error::InvalidResponse(format!("{}", DisplayErrorContext(&*source))),
    }
}

/// The innermost cause: "Connection refused (os error 111)" rather than "dispatch failure".
pub(crate) fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
