//! What STS said about a proof: the caller's ARN and account, and the principal a policy
//! matches (an assumed-role session is its role); or, when it refused, its error code.

use aws_smithy_xml::decode::{Document, try_data};

use super::arn::Arn;
use super::proof::Rejected;

/// The caller `sts:GetCallerIdentity` named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// The ARN STS returned, for example `arn:aws:sts::111122223333:assumed-role/ci/session`.
    pub arn: String,
    /// The AWS account id.
    pub account: String,
    /// The unique id (`AROA...:session` for a role session).
    pub user_id: String,
}

impl CallerIdentity {
    /// Reads STS's XML answer to `GetCallerIdentity`.
    pub fn from_sts_xml(body: &str) -> Result<CallerIdentity, Rejected> {
        let bad = |what: &str| Rejected(format!("sts returned an unreadable answer ({what})"));
        let mut doc = Document::new(body);
        let mut root = doc.root_element().map_err(|_| bad("no root element"))?;
        if !root.start_el().matches("GetCallerIdentityResponse") {
            return Err(bad("not a GetCallerIdentityResponse"));
        }
        let (mut arn, mut account, mut user_id) = (None, None, None);
        while let Some(mut result) = root.next_tag() {
            if !result.start_el().matches("GetCallerIdentityResult") {
                continue;
            }
            while let Some(mut field) = result.next_tag() {
                let slot = match field.start_el().local() {
                    "Arn" => &mut arn,
                    "Account" => &mut account,
                    "UserId" => &mut user_id,
                    _ => continue,
                };
                *slot = Some(try_data(&mut field).map_err(|_| bad("bad text"))?.into_owned());
            }
        }
        let (Some(arn), Some(account), Some(user_id)) = (arn, account, user_id) else {
            return Err(bad("no Arn, Account or UserId"));
        };
        // An answer whose parts disagree is not STS's: trust none of it.
        match Arn::parse(&arn) {
            Some(parsed) if parsed.account == account && matches!(parsed.service, "iam" | "sts") => {
                Ok(CallerIdentity { arn, account, user_id })
            }
            _ => Err(bad("its Account is not its Arn's")),
        }
    }

    /// The principal a policy matches: the ARN, except that an assumed-role session
    /// (`arn:P:sts::A:assumed-role/ROLE/SESSION`) is its role (`arn:P:iam::A:role/ROLE`).
    /// A role's path is not in a session's ARN, so patterns name roles without one.
    #[must_use]
    pub fn principal(&self) -> String {
        let parts: Vec<&str> = self.arn.splitn(6, ':').collect();
        if let [_, partition, "sts", "", account, resource] = parts.as_slice()
            && let Some(rest) = resource.strip_prefix("assumed-role/")
            && let Some((role, _session)) = rest.split_once('/')
        {
            return format!("arn:{partition}:iam::{account}:role/{role}");
        }
        self.arn.clone()
    }
}

/// The error code of an STS error answer (`<ErrorResponse><Error><Code>`), if it is one.
#[must_use]
pub fn sts_error_code(body: &str) -> Option<String> {
    let mut doc = Document::new(body);
    let mut root = doc.root_element().ok()?;
    if !root.start_el().matches("ErrorResponse") {
        return None;
    }
    while let Some(mut error) = root.next_tag() {
        if !error.start_el().matches("Error") {
            continue;
        }
        while let Some(mut field) = error.next_tag() {
            if field.start_el().matches("Code") {
                return try_data(&mut field).ok().map(std::borrow::Cow::into_owned);
            }
        }
    }
    None
}

/// Whether an STS error code says "slow down" rather than "no".
#[must_use]
pub fn is_throttling(code: &str) -> bool {
    matches!(code, "Throttling" | "ThrottlingException" | "RequestLimitExceeded" | "TooManyRequestsException")
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:sts::111122223333:assumed-role/ci-build/session-1</Arn>
    <UserId>AROAEXAMPLE:session-1</UserId>
    <Account>111122223333</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"#;

    #[test]
    fn a_role_session_is_its_role() {
        let id = CallerIdentity::from_sts_xml(ANSWER).unwrap();
        assert_eq!(id.account, "111122223333");
        assert_eq!(id.user_id, "AROAEXAMPLE:session-1");
        assert_eq!(id.principal(), "arn:aws:iam::111122223333:role/ci-build");
        for arn in ["arn:aws:iam::111122223333:root", "arn:aws:iam::111122223333:user/alice"] {
            let id = CallerIdentity { arn: arn.into(), account: "111122223333".into(), user_id: "x".into() };
            assert_eq!(id.principal(), arn);
        }
        let gov = CallerIdentity {
            arn: "arn:aws-us-gov:sts::1:assumed-role/r/s".into(),
            account: "1".into(),
            user_id: "x".into(),
        };
        assert_eq!(gov.principal(), "arn:aws-us-gov:iam::1:role/r");
    }

    #[test]
    fn anything_else_is_unreadable() {
        let other_account = ANSWER.replace("<Account>111122223333</Account>", "<Account>444455556666</Account>");
        let other_service = ANSWER.replace("arn:aws:sts::", "arn:aws:s3::");
        for body in
            ["", "not xml", "<ErrorResponse><Error/></ErrorResponse>", "<GetCallerIdentityResponse/>", &other_account]
        {
            let err = CallerIdentity::from_sts_xml(body).unwrap_err().to_string();
            assert!(err.starts_with("sts returned an unreadable answer ("), "{body:?}: {err}");
        }
        let err = CallerIdentity::from_sts_xml(&other_account).unwrap_err().to_string();
        assert!(err.contains("Account is not its Arn's"), "{err}");
        assert!(
            CallerIdentity::from_sts_xml(&other_service).unwrap_err().to_string().contains("Account is not its Arn's")
        );
    }

    #[test]
    fn sts_errors_are_read_by_code() {
        let throttled = "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>\
                         <Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>";
        assert_eq!(sts_error_code(throttled).as_deref(), Some("Throttling"));
        assert!(is_throttling("Throttling") && !is_throttling("InvalidClientTokenId"));
        assert_eq!(sts_error_code(ANSWER), None);
        assert_eq!(sts_error_code("junk"), None);
    }
}
