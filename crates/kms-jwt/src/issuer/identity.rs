//! What STS said about a proof: the caller's ARN and account, and the principal a policy
//! matches (an assumed-role session is its role).

use aws_smithy_xml::decode::{Document, try_data};

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
        match (arn, account, user_id) {
            (Some(arn), Some(account), Some(user_id)) if arn.starts_with("arn:") => {
                Ok(CallerIdentity { arn, account, user_id })
            }
            _ => Err(bad("no Arn, Account or UserId")),
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
        for body in ["", "not xml", "<ErrorResponse><Error/></ErrorResponse>", "<GetCallerIdentityResponse/>"] {
            assert!(CallerIdentity::from_sts_xml(body).is_err(), "{body:?}");
        }
    }
}
