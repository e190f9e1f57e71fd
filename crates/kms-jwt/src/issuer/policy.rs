//! The issuer's token policy: which AWS principals may have tokens, for which audiences, for
//! how long, with which extra claims. Deny by default; the first rule that matches decides.
//!
//! ```toml
//! [[rule]]
//! principals = ["arn:aws:iam::123456789012:role/ci-*"]   # exact ARNs or * patterns (see `arn`)
//! audiences  = ["api"]
//! max_ttl    = "1h"
//! claims     = { team = "platform" }                      # optional, static
//! ```

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::arn::ArnPattern;
use crate::{Error, Result};

/// Claims the issuer sets itself: a rule cannot name them.
pub const RESERVED_CLAIMS: [&str; 8] = ["iss", "sub", "aud", "iat", "nbf", "exp", "jti", super::ACCOUNT_CLAIM];

/// A parsed, validated policy file.
#[derive(Debug, Clone, Default)]
pub struct TokenPolicy {
    rules: Vec<Rule>,
}

/// The shortest lifetime a rule may allow or a caller ask for.
pub const MIN_TTL: Duration = Duration::from_secs(60);

/// One `[[rule]]`.
#[derive(Debug, Clone)]
pub struct Rule {
    principals: Vec<ArnPattern>,
    audiences: Vec<String>,
    max_ttl: Duration,
    claims: Map<String, Value>,
}

/// What the policy says about one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<'a> {
    /// Issue a token with this lifetime and these extra claims.
    Allow {
        /// The rule that allowed it (0 for the first `[[rule]]`).
        rule: usize,
        /// The lifetime: the one asked for, or the rule's `max_ttl`.
        ttl: Duration,
        /// The rule's static claims.
        claims: &'a Map<String, Value>,
    },
    /// Refuse, for this reason (safe to show the caller).
    Deny(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    rule: Vec<toml::Spanned<RuleFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    principals: Vec<toml::Spanned<String>>,
    audiences: Vec<String>,
    max_ttl: toml::Spanned<String>,
    #[serde(default)]
    claims: Map<String, Value>,
}

impl TokenPolicy {
    /// Parses a policy file. `longest` is the key set's lifetime policy: no rule may allow
    /// more. Errors name the line that is wrong.
    pub fn from_toml(text: &str, longest: Option<Duration>) -> Result<TokenPolicy> {
        let line = |offset: usize| text[..offset.min(text.len())].matches('\n').count() + 1;
        let file: File = toml::from_str(text).map_err(|e| Error::InvalidPolicy {
            line: e.span().map_or(1, |s| line(s.start)),
            reason: e.message().trim_end().replace('\n', "; "),
        })?;
        let mut rules = Vec::with_capacity(file.rule.len());
        for spanned in file.rule {
            let at = line(spanned.span().start);
            let rule = spanned.into_inner();
            let bad = |line: usize, reason: String| Error::InvalidPolicy { line, reason };
            if rule.principals.is_empty() {
                return Err(bad(at, "a rule needs at least one principal".into()));
            }
            let principals = rule
                .principals
                .iter()
                .map(|p| ArnPattern::parse(p.get_ref()).map_err(|reason| bad(line(p.span().start), reason)))
                .collect::<Result<Vec<_>>>()?;
            if let Some(p) = rule.principals.iter().find(|p| p.get_ref().contains(":assumed-role/")) {
                // A session is matched as its role: this pattern could never match.
                return Err(bad(
                    line(p.span().start),
                    format!("{:?}: name the role (arn:...:iam::ACCOUNT:role/NAME), not its sessions", p.get_ref()),
                ));
            }
            if rule.audiences.is_empty() || rule.audiences.iter().any(String::is_empty) {
                return Err(bad(at, "a rule needs at least one non-empty audience".into()));
            }
            let ttl_line = line(rule.max_ttl.span().start);
            let max_ttl = humantime::parse_duration(rule.max_ttl.get_ref())
                .map_err(|e| bad(ttl_line, format!("max_ttl {:?}: {e}", rule.max_ttl.get_ref())))?;
            if max_ttl < MIN_TTL {
                return Err(bad(ttl_line, format!("max_ttl must be at least {}", humantime::format_duration(MIN_TTL))));
            }
            if let Some(longest) = longest
                && max_ttl > longest
            {
                return Err(bad(
                    ttl_line,
                    format!(
                        "max_ttl {} is longer than the key set's max-token-ttl of {}",
                        rule.max_ttl.get_ref(),
                        humantime::format_duration(longest)
                    ),
                ));
            }
            if let Some(name) = rule.claims.keys().find(|k| RESERVED_CLAIMS.contains(&k.as_str())) {
                return Err(bad(at, format!("claim {name:?} is set by the issuer, not by a rule")));
            }
            rules.push(Rule { principals, audiences: rule.audiences, max_ttl, claims: rule.claims });
        }
        Ok(TokenPolicy { rules })
    }

    /// The number of rules.
    #[must_use]
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// The longest lifetime any rule allows.
    #[must_use]
    pub fn longest_ttl(&self) -> Option<Duration> {
        self.rules.iter().map(|r| r.max_ttl).max()
    }

    /// Whether the policy has no rule (and so denies everything).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Decides a request: the first rule whose principals match decides; a longer `ttl` than
    /// the rule allows is refused, not shortened, so that a caller never holds a token that
    /// lives less than it asked for without knowing.
    #[must_use]
    pub fn decide(&self, principal: &str, audience: &str, ttl: Option<Duration>) -> Decision<'_> {
        let Some((index, rule)) =
            self.rules.iter().enumerate().find(|(_, r)| r.principals.iter().any(|p| p.matches(principal)))
        else {
            return Decision::Deny("no rule allows this principal".into());
        };
        if !rule.audiences.iter().any(|a| a == audience) {
            return Decision::Deny(format!("audience {audience:?} is not allowed for this principal"));
        }
        match ttl {
            Some(ttl) if ttl > rule.max_ttl => Decision::Deny(format!(
                "ttl {} is longer than this principal's max_ttl of {}",
                humantime::format_duration(ttl),
                humantime::format_duration(rule.max_ttl)
            )),
            Some(ttl) if ttl < MIN_TTL => {
                Decision::Deny(format!("ttl must be at least {}", humantime::format_duration(MIN_TTL)))
            }
            Some(ttl) => Decision::Allow { rule: index, ttl, claims: &rule.claims },
            None => Decision::Allow { rule: index, ttl: rule.max_ttl, claims: &rule.claims },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"
[[rule]]
principals = ["arn:aws:iam::111122223333:role/ci-*"]
audiences  = ["api", "deploy"]
max_ttl    = "15m"
claims     = { team = "platform" }

[[rule]]
principals = ["arn:aws:iam::111122223333:root"]
audiences  = ["api"]
max_ttl    = "1h"
"#;

    #[test]
    fn the_first_matching_rule_decides_and_everything_else_is_denied() {
        let policy = TokenPolicy::from_toml(POLICY, Some(Duration::from_secs(3600))).unwrap();
        let role = "arn:aws:iam::111122223333:role/ci-build";
        let Decision::Allow { rule, ttl, claims } = policy.decide(role, "deploy", None) else { panic!("denied") };
        assert_eq!(rule, 0);
        assert_eq!(ttl, Duration::from_secs(900));
        assert_eq!(claims["team"], "platform");
        assert!(matches!(policy.decide(role, "other", None), Decision::Deny(r) if r.contains("audience")));
        assert!(
            matches!(policy.decide(role, "api", Some(Duration::from_secs(901))), Decision::Deny(r) if r.contains("max_ttl"))
        );
        let root = "arn:aws:iam::111122223333:root";
        assert_eq!(
            policy.decide(root, "api", Some(Duration::from_secs(60))),
            Decision::Allow { rule: 1, ttl: Duration::from_secs(60), claims: &Map::new() }
        );
        for stranger in ["arn:aws:iam::444455556666:role/ci-build", "arn:aws:iam::111122223333:role/deploy", ""] {
            assert!(matches!(policy.decide(stranger, "api", None), Decision::Deny(_)), "{stranger}");
        }
        assert!(matches!(TokenPolicy::default().decide(root, "api", None), Decision::Deny(_)));
    }

    #[test]
    fn a_bad_policy_names_its_line() {
        let cases = [
            (
                "[[rule]]\nprincipals = [\"arn:aws:iam::111122223333:root\"]\naudiences = [\"a\"]\nmax_ttl = \"soon\"\n",
                "line 4: max_ttl",
            ),
            ("[[rule]]\nprincipals = [\"root\"]\naudiences = [\"a\"]\nmax_ttl = \"1h\"\n", "line 2: \"root\""),
            (
                "[[rule]]\naudiences = [\"a\"]\nmax_ttl = \"1h\"\nprincipals = [\"arn:aws:iam::111122223333:root\",\n  \"arn:aws:iam::*:role/x\"]\n",
                "line 5: \"arn:aws:iam::*:role/x\": the account must be a 12-digit account id",
            ),
            (
                "[[rule]]\nprincipals = [\"arn:aws:iam::111122223333:root\"]\naudiences = [\"a\"]\nmax_ttl = \"59s\"\n",
                "line 4: max_ttl must be at least 1m",
            ),
            (
                "[[rule]]\nprincipals = [\"arn:aws:iam::111122223333:root\"]\naudiences = [\"a\"]\nmax_ttl = \"2h\"\n",
                "line 4: max_ttl 2h is longer",
            ),
            (
                "[[rule]]\nprincipals = [\"arn:aws:iam::111122223333:root\"]\naudiences = [\"a\"]\nmax_ttl = \"1h\"\nclaims = { sub = \"x\" }\n",
                "line 1: claim \"sub\"",
            ),
            ("[[rule]]\nprincipal = [\"arn:aws:iam::1:root\"]\n", "line 2: unknown field"),
            ("[[rule]\n", "line 1:"),
            ("[[rule]]\nprincipals = []\naudiences = [\"a\"]\nmax_ttl = \"1h\"\n", "at least one principal"),
        ];
        for (text, expected) in cases {
            let err = TokenPolicy::from_toml(text, Some(Duration::from_secs(3600))).unwrap_err().to_string();
            assert!(err.starts_with("token policy: "), "{err}");
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
            assert!(!err.contains('\n'), "one line: {err:?}");
        }
    }
}
