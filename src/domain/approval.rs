//! Signed approvals: `{run_id, environment, decision, approver, reason, issued_at, nonce}`
//! signed with the approver's Ed25519 key over the canonical JSON of those fields, and the
//! rules an approval must pass before it promotes anything.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use chrono::{DateTime, Duration, Utc};
use ed25519_dalek::{Signature, Signer as _, SigningKey, Verifier as _, VerifyingKey};
use serde::{Deserialize, Serialize};

/// What the approver decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Promote into the environment.
    Approve,
    /// Refuse promotion.
    Reject,
    /// Redeploy the environment's previous version.
    Rollback,
}

/// The signed fields, in signing order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Run.
    pub run_id: String,
    /// `test` or `prod`.
    pub environment: String,
    /// Decision.
    pub decision: Decision,
    /// Approver name (as in the topology).
    pub approver: String,
    /// Why.
    pub reason: String,
    /// When it was signed.
    pub issued_at: DateTime<Utc>,
    /// Unique per approval: a replay carries a nonce already used.
    pub nonce: String,
}

/// An approval with its signature (base64), as published on the `approvals` queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedApproval {
    /// The signed fields.
    #[serde(flatten)]
    pub approval: Approval,
    /// Ed25519 signature over [`Approval::signing_bytes`], base64.
    pub signature: String,
}

impl Approval {
    /// The canonical bytes that are signed: compact JSON of the fields in declaration order.
    pub fn signing_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Signs with a key.
    pub fn sign(self, key: &SigningKey) -> SignedApproval {
        let signature = B64.encode(key.sign(&self.signing_bytes()).to_bytes());
        SignedApproval {
            approval: self,
            signature,
        }
    }
}

/// A public key from base64.
pub fn parse_public_key(b64: &str) -> Option<VerifyingKey> {
    let bytes: [u8; 32] = B64.decode(b64.trim()).ok()?.try_into().ok()?;
    VerifyingKey::from_bytes(&bytes).ok()
}

/// A signing key from a key file's text (base64 of the 32-byte seed).
pub fn parse_signing_key(text: &str) -> Option<SigningKey> {
    let bytes: [u8; 32] = B64.decode(text.trim()).ok()?.try_into().ok()?;
    Some(SigningKey::from_bytes(&bytes))
}

/// A new key pair from OS randomness: (secret file text, public key).
///
/// # Errors
/// When the OS has no randomness to give.
pub fn generate_key() -> Result<(String, String), getrandom::Error> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)?;
    let key = SigningKey::from_bytes(&seed);
    Ok((B64.encode(seed), public_key_of(&key)))
}

/// The public key (base64, as the topology lists it) of a signing key.
pub fn public_key_of(key: &SigningKey) -> String {
    B64.encode(key.verifying_key().to_bytes())
}

/// Why an approval is refused. All are terminal: the message is recorded and audited, not retried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Missing, malformed or wrong signature.
    #[error("the signature does not verify for approver {0:?}")]
    BadSignature(String),
    /// Not an approver of that environment.
    #[error("{approver:?} is not an approver for {environment}")]
    NotAuthorised {
        /// Approver.
        approver: String,
        /// Environment.
        environment: String,
    },
    /// Too old, or from the future.
    #[error("the approval was issued at {issued_at}, outside the accepted window")]
    Stale {
        /// Issue time.
        issued_at: DateTime<Utc>,
    },
    /// A nonce already used.
    #[error("nonce {0:?} was already used: this approval is a replay")]
    Replayed(String),
    /// Only `test` and `prod` take approvals.
    #[error("environment {0:?} does not take approvals")]
    NoApprovals(String),
    /// Prod before Test, or Test before Dev.
    #[error("the run is not yet in {required}; {environment} comes after it")]
    SkippedStage {
        /// The environment asked for.
        environment: String,
        /// The one the run must have reached.
        required: String,
    },
    /// The candidate did not pass evaluation.
    #[error("the run's evaluation did not pass")]
    EvaluationFailed,
    /// The Prod approver submitted the run.
    #[error("{0:?} submitted this run and may not approve it for prod")]
    SelfApproval(String),
    /// Nothing to roll back to.
    #[error("{0} has no previous version to roll back to")]
    NothingToRollBack(String),
    /// A rollback names the run to take out, which must be the one serving.
    #[error("the run does not serve in {0} now, so there is nothing of it to roll back")]
    NotServing(String),
}

/// What the rules need to know about the run and the estate.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    /// Approvers of the environment (name, base64 key).
    pub approvers: &'a [super::topology::Approver],
    /// Environments the run has served in (and was not rolled back from).
    pub reached: &'a [super::env::Env],
    /// The run is its project's current release in the approval's environment.
    pub serving_here: bool,
    /// The run's evaluation passed.
    pub evaluation_passed: bool,
    /// Who submitted the run.
    pub submitted_by: &'a str,
    /// Nonces already used.
    pub used_nonces: &'a [String],
    /// Now.
    pub now: DateTime<Utc>,
    /// Maximum age of an approval.
    pub max_age: Duration,
    /// The environment has a previous version (for rollback).
    pub has_previous: bool,
}

/// Checks every rule. The order puts authenticity first, so a forged message learns nothing.
///
/// # Errors
/// The first rule broken.
pub fn check(signed: &SignedApproval, ctx: &Context<'_>) -> Result<(), Refusal> {
    let a = &signed.approval;
    let approver = ctx
        .approvers
        .iter()
        .find(|x| x.name == a.approver)
        .ok_or_else(|| Refusal::NotAuthorised {
            approver: a.approver.clone(),
            environment: a.environment.clone(),
        })?;
    let key = parse_public_key(&approver.public_key)
        .ok_or_else(|| Refusal::BadSignature(a.approver.clone()))?;
    let sig_bytes: [u8; 64] = B64
        .decode(signed.signature.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Refusal::BadSignature(a.approver.clone()))?;
    key.verify(&a.signing_bytes(), &Signature::from_bytes(&sig_bytes))
        .map_err(|_| Refusal::BadSignature(a.approver.clone()))?;
    if a.issued_at < ctx.now - ctx.max_age || a.issued_at > ctx.now + Duration::minutes(5) {
        return Err(Refusal::Stale {
            issued_at: a.issued_at,
        });
    }
    if ctx.used_nonces.contains(&a.nonce) {
        return Err(Refusal::Replayed(a.nonce.clone()));
    }
    let env: super::env::Env = a
        .environment
        .parse()
        .map_err(|_| Refusal::NoApprovals(a.environment.clone()))?;
    let required = env
        .requires()
        .ok_or_else(|| Refusal::NoApprovals(a.environment.clone()))?;
    match a.decision {
        Decision::Rollback => {
            if !ctx.serving_here {
                return Err(Refusal::NotServing(a.environment.clone()));
            }
            if !ctx.has_previous {
                return Err(Refusal::NothingToRollBack(a.environment.clone()));
            }
        }
        Decision::Reject => {}
        Decision::Approve => {
            if !ctx.evaluation_passed {
                return Err(Refusal::EvaluationFailed);
            }
            if !ctx.reached.contains(&required) {
                return Err(Refusal::SkippedStage {
                    environment: a.environment.clone(),
                    required: required.name().to_owned(),
                });
            }
            if env == super::env::Env::Prod && a.approver == ctx.submitted_by {
                return Err(Refusal::SelfApproval(a.approver.clone()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::env::Env;
    use crate::domain::topology::Approver;

    fn keys() -> (SigningKey, Approver) {
        let (secret, public) = generate_key().expect("random");
        (
            parse_signing_key(&secret).expect("key"),
            Approver {
                name: "alice".into(),
                public_key: public,
            },
        )
    }

    fn approval(env: &str, decision: Decision, now: DateTime<Utc>) -> Approval {
        Approval {
            run_id: "r1".into(),
            environment: env.into(),
            decision,
            approver: "alice".into(),
            reason: "looks good".into(),
            issued_at: now,
            nonce: "n-1".into(),
        }
    }

    fn ctx<'a>(
        approvers: &'a [Approver],
        reached: &'a [Env],
        nonces: &'a [String],
        now: DateTime<Utc>,
    ) -> Context<'a> {
        Context {
            approvers,
            reached,
            evaluation_passed: true,
            submitted_by: "bob",
            used_nonces: nonces,
            now,
            max_age: Duration::minutes(60),
            has_previous: false,
            serving_here: true,
        }
    }

    #[test]
    fn a_valid_signed_approval_passes_and_round_trips_through_json() {
        let (key, who) = keys();
        let now = Utc::now();
        let signed = approval("test", Decision::Approve, now).sign(&key);
        let wire: SignedApproval =
            serde_json::from_str(&serde_json::to_string(&signed).expect("json")).expect("parse");
        let reached = vec![Env::Dev];
        assert_eq!(
            check(&wire, &ctx(std::slice::from_ref(&who), &reached, &[], now)),
            Ok(())
        );
    }

    #[test]
    fn forged_replayed_stale_skipping_and_self_approvals_are_refused() {
        let (key, who) = keys();
        let (other_key, _) = keys();
        let now = Utc::now();
        let dev = vec![Env::Dev];
        let approvers = std::slice::from_ref(&who);

        let forged = approval("test", Decision::Approve, now).sign(&other_key);
        assert!(matches!(
            check(&forged, &ctx(approvers, &dev, &[], now)),
            Err(Refusal::BadSignature(_))
        ));
        let mut tampered = approval("test", Decision::Approve, now).sign(&key);
        tampered.approval.run_id = "r2".into();
        assert!(matches!(
            check(&tampered, &ctx(approvers, &dev, &[], now)),
            Err(Refusal::BadSignature(_))
        ));

        let ok = approval("test", Decision::Approve, now).sign(&key);
        let used = vec!["n-1".to_owned()];
        assert!(matches!(
            check(&ok, &ctx(approvers, &dev, &used, now)),
            Err(Refusal::Replayed(_))
        ));

        let old = approval("test", Decision::Approve, now - Duration::hours(2)).sign(&key);
        assert!(matches!(
            check(&old, &ctx(approvers, &dev, &[], now)),
            Err(Refusal::Stale { .. })
        ));

        let prod = approval("prod", Decision::Approve, now).sign(&key);
        assert!(matches!(
            check(&prod, &ctx(approvers, &dev, &[], now)),
            Err(Refusal::SkippedStage { .. })
        ));

        let tested = vec![Env::Dev, Env::Test];
        let mut c = ctx(approvers, &tested, &[], now);
        c.submitted_by = "alice";
        assert!(matches!(check(&prod, &c), Err(Refusal::SelfApproval(_))));

        let mut failed = ctx(approvers, &dev, &[], now);
        failed.evaluation_passed = false;
        assert_eq!(check(&ok, &failed), Err(Refusal::EvaluationFailed));

        let stranger = Approval {
            approver: "mallory".into(),
            ..approval("test", Decision::Approve, now)
        }
        .sign(&key);
        assert!(matches!(
            check(&stranger, &ctx(approvers, &dev, &[], now)),
            Err(Refusal::NotAuthorised { .. })
        ));

        let dev_approval = approval("dev", Decision::Approve, now).sign(&key);
        assert!(matches!(
            check(&dev_approval, &ctx(approvers, &dev, &[], now)),
            Err(Refusal::NoApprovals(_))
        ));

        let rollback = approval("test", Decision::Rollback, now).sign(&key);
        assert!(matches!(
            check(&rollback, &ctx(approvers, &dev, &[], now)),
            Err(Refusal::NothingToRollBack(_))
        ));
        let mut elsewhere = ctx(approvers, &dev, &[], now);
        elsewhere.serving_here = false;
        elsewhere.has_previous = true;
        assert!(matches!(
            check(&rollback, &elsewhere),
            Err(Refusal::NotServing(_))
        ));
    }
}
