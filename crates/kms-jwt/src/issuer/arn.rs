//! ARNs and the principal patterns a token policy names, matched field by field.
//!
//! An ARN is `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`, and only the first five `:`
//! separate fields: IAM paths may contain `:`, so `arn:aws:iam::999999999999:user/x:iam::1:role/r`
//! is a user of account 999999999999. A pattern's `*` therefore matches within one field, never
//! across a `:` (in the resource either) nor across the resource's type (`role/`, `user/`), and
//! the account is always a literal 12-digit id.

/// An ARN split into its fields; the resource keeps any `:` it contains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    /// `aws`, `aws-cn`, `aws-us-gov`, ...
    pub partition: &'a str,
    /// `iam`, `sts`, ...
    pub service: &'a str,
    /// Empty for IAM and STS principals.
    pub region: &'a str,
    /// The 12-digit account id.
    pub account: &'a str,
    /// `root`, `role/NAME`, `user/PATH/NAME`, `assumed-role/ROLE/SESSION`, ...
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// Splits `text` at its first five `:`; `None` if it is not `arn:` and five more fields.
    #[must_use]
    pub fn parse(text: &'a str) -> Option<Arn<'a>> {
        let mut fields = text.splitn(6, ':');
        if fields.next()? != "arn" {
            return None;
        }
        let (partition, service, region, account, resource) =
            (fields.next()?, fields.next()?, fields.next()?, fields.next()?, fields.next()?);
        Some(Arn { partition, service, region, account, resource })
    }
}

/// A principal pattern of a token policy, checked when the policy is loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArnPattern(String);

/// The longest pattern or ARN considered (IAM's own limit on an ARN is 2048).
const MAX_LEN: usize = 2048;

impl ArnPattern {
    /// Checks `text`: `arn:` and five fields, no whitespace, and a literal 12-digit account.
    /// The error says what is wrong, for the policy's error line.
    pub fn parse(text: &str) -> Result<ArnPattern, String> {
        if text.len() > MAX_LEN || text.chars().any(char::is_whitespace) {
            return Err(format!("{text:?} is not an IAM ARN or ARN pattern (arn:aws:iam::ACCOUNT:...)"));
        }
        let arn = Arn::parse(text)
            .ok_or_else(|| format!("{text:?} is not an IAM ARN or ARN pattern (arn:aws:iam::ACCOUNT:...)"))?;
        if !is_account_id(arn.account) {
            return Err(format!(
                "{text:?}: the account must be a 12-digit account id, not {:?} (a pattern never spans accounts)",
                arn.account
            ));
        }
        if arn.resource.is_empty() {
            return Err(format!("{text:?} names no resource (root, role/NAME, user/NAME, ...)"));
        }
        Ok(ArnPattern(text.to_owned()))
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `arn` matches, field by field.
    #[must_use]
    pub fn matches(&self, arn: &str) -> bool {
        let (Some(p), Some(a)) = (Arn::parse(&self.0), Arn::parse(arn)) else { return false };
        arn.len() <= MAX_LEN
            && glob(p.partition, a.partition)
            && glob(p.service, a.service)
            && glob(p.region, a.region)
            && p.account == a.account
            && resource_matches(p.resource, a.resource)
    }
}

fn is_account_id(field: &str) -> bool {
    field.len() == 12 && field.bytes().all(|b| b.is_ascii_digit())
}

/// The resource's type (before the first `/`) and the rest match separately, and within the
/// rest a `*` stops at each `:`.
fn resource_matches(pattern: &str, resource: &str) -> bool {
    match (pattern.split_once('/'), resource.split_once('/')) {
        (Some((p_type, p_rest)), Some((r_type, r_rest))) => glob(p_type, r_type) && segments_match(p_rest, r_rest),
        (None, None) => segments_match(pattern, resource),
        _ => false,
    }
}

fn segments_match(pattern: &str, text: &str) -> bool {
    let (mut p, mut t) = (pattern.split(':'), text.split(':'));
    loop {
        match (p.next(), t.next()) {
            (Some(p), Some(t)) if glob(p, t) => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// `*` matches any run of characters; everything else matches itself. The caller splits at
/// the characters a `*` must not cross.
fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // The last `*` seen: where the pattern resumes after it, and where its match ends so far.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi + 1, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((after, end)) = star {
            star = Some((after, end + 1));
            pi = after;
            ti = end + 1;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(text: &str) -> ArnPattern {
        ArnPattern::parse(text).unwrap()
    }

    #[test]
    fn a_star_stays_within_its_field() {
        let p = pattern("arn:*:iam::000000000000:role/deployer");
        assert!(p.matches("arn:aws:iam::000000000000:role/deployer"));
        assert!(p.matches("arn:aws-cn:iam::000000000000:role/deployer"));
        // The review's attack: a user of another account whose path spells the role.
        assert!(!p.matches("arn:aws:iam::999999999999:user/x:iam::000000000000:role/deployer"));
        // A star in the partition cannot swallow the service, region and account.
        assert!(!pattern("arn:*:iam::000000000000:root").matches("arn:a:b:c:iam::000000000000:root"));
    }

    #[test]
    fn a_star_in_the_resource_never_crosses_its_type_or_a_colon() {
        let p = pattern("arn:aws:iam::111122223333:role/ci-*");
        assert!(p.matches("arn:aws:iam::111122223333:role/ci-build"));
        assert!(p.matches("arn:aws:iam::111122223333:role/ci-"));
        assert!(p.matches("arn:aws:iam::111122223333:role/ci-team/x"), "a path within the name");
        assert!(!p.matches("arn:aws:iam::111122223333:role/ci-a:b"), "a star stops at ':'");
        assert!(!p.matches("arn:aws:iam::111122223333:user/ci-build"));
        let any_type = pattern("arn:aws:iam::111122223333:*");
        assert!(any_type.matches("arn:aws:iam::111122223333:root"));
        assert!(!any_type.matches("arn:aws:iam::111122223333:role/x"), "the type's / is not crossed");
        let users = pattern("arn:aws:iam::111122223333:user/*");
        assert!(users.matches("arn:aws:iam::111122223333:user/ops/alice"));
        // Strict: a path with ':' is matched only by a pattern that spells its ':'.
        assert!(!users.matches("arn:aws:iam::111122223333:user/x:iam::1:role/deployer"));
        assert!(
            pattern("arn:aws:iam::111122223333:user/x:*:*:role/*")
                .matches("arn:aws:iam::111122223333:user/x:iam::role/d")
        );
        assert!(!pattern("arn:aws:iam::111122223333:*/x").matches("arn:aws:iam::111122223333:role/a/x"));
    }

    #[test]
    fn whole_arns_and_literal_text() {
        assert!(pattern("arn:aws:iam::111122223333:root").matches("arn:aws:iam::111122223333:root"));
        assert!(!pattern("arn:aws:iam::111122223333:role/x").matches("arn:aws:iam::111122223333:role/x2"));
        assert!(!pattern("arn:aws:iam::111122223333:role/*-prod").matches("arn:aws:iam::111122223333:role/a-prod-no"));
        assert!(pattern("arn:aws:iam::111122223333:role/*-*-prod").matches("arn:aws:iam::111122223333:role/a-b-prod"));
        assert!(!pattern("arn:aws:iam::111122223333:role/a*a").matches("arn:aws:iam::111122223333:role/a"));
        for not_arn in ["", "arn:aws:iam::111122223333", "urn:aws:iam::111122223333:root", "arn:aws"] {
            assert!(!pattern("arn:*:*:*:111122223333:*").matches(not_arn), "{not_arn:?}");
        }
    }

    #[test]
    fn the_account_is_a_literal_twelve_digit_id() {
        for bad in [
            "arn:aws:iam::*:role/x",
            "arn:aws:iam::11112222333*:role/x",
            "arn:aws:iam::1:root",
            "arn:aws:iam:::root",
            "arn:aws:iam::111122223333",
            "arn:aws:iam::111122223333:",
            "root",
            "arn:aws:iam::111122223333:role/a b",
        ] {
            let err = ArnPattern::parse(bad).unwrap_err();
            assert!(!err.is_empty() && !err.contains('\n'), "{bad}: {err}");
        }
        assert!(ArnPattern::parse("arn:aws:iam::*:role/x").unwrap_err().contains("12-digit account id"));
    }
}
