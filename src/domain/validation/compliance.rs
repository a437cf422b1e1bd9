//! Compliance scan: personal data and secrets in dataset strings. Every finding is masked
//! before it leaves this module, so no report, log or error can echo what was found.

use std::sync::LazyLock;

use regex::bytes::{Regex, RegexSet};
use serde::{Deserialize, Serialize};

/// A kind of finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingClass {
    /// E-mail address.
    Email,
    /// Telephone number (with separators, optionally international).
    Phone,
    /// Payment card number passing the Luhn check.
    PaymentCard,
    /// IBAN passing the mod-97 check.
    Iban,
    /// US social security number.
    UsSsn,
    /// IPv4 or full IPv6 address.
    IpAddress,
    /// Azure storage account key.
    AzureStorageKey,
    /// Azure storage / Service Bus connection string part.
    ConnectionString,
    /// Shared access signature.
    SasToken,
    /// AWS access key id.
    AwsAccessKey,
    /// PEM private key block.
    PrivateKey,
    /// JSON Web Token.
    Jwt,
    /// `api_key = ...` style assignment.
    ApiKey,
}

impl FindingClass {
    /// Every class.
    pub const ALL: [FindingClass; 13] = [
        FindingClass::Email,
        FindingClass::Phone,
        FindingClass::PaymentCard,
        FindingClass::Iban,
        FindingClass::UsSsn,
        FindingClass::IpAddress,
        FindingClass::AzureStorageKey,
        FindingClass::ConnectionString,
        FindingClass::SasToken,
        FindingClass::AwsAccessKey,
        FindingClass::PrivateKey,
        FindingClass::Jwt,
        FindingClass::ApiKey,
    ];

    /// Secrets are never shown, not even partly.
    pub fn is_secret(self) -> bool {
        matches!(
            self,
            FindingClass::AzureStorageKey
                | FindingClass::ConnectionString
                | FindingClass::SasToken
                | FindingClass::AwsAccessKey
                | FindingClass::PrivateKey
                | FindingClass::Jwt
                | FindingClass::ApiKey
        )
    }

    /// The snake_case name used in reports and policy files.
    pub fn name(self) -> &'static str {
        match self {
            FindingClass::Email => "email",
            FindingClass::Phone => "phone",
            FindingClass::PaymentCard => "payment_card",
            FindingClass::Iban => "iban",
            FindingClass::UsSsn => "us_ssn",
            FindingClass::IpAddress => "ip_address",
            FindingClass::AzureStorageKey => "azure_storage_key",
            FindingClass::ConnectionString => "connection_string",
            FindingClass::SasToken => "sas_token",
            FindingClass::AwsAccessKey => "aws_access_key",
            FindingClass::PrivateKey => "private_key",
            FindingClass::Jwt => "jwt",
            FindingClass::ApiKey => "api_key",
        }
    }
}

const PATTERNS: [(FindingClass, &str); 13] = [
    (
        FindingClass::Email,
        r"(?i)\b[a-z0-9._%+-]+@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b",
    ),
    (
        FindingClass::Phone,
        r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)|\b\d{2,4})[ .-]\d{3,4}[ .-]\d{3,4}\b",
    ),
    (FindingClass::PaymentCard, r"\b\d(?:[ -]?\d){12,18}\b"),
    (
        FindingClass::Iban,
        r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b",
    ),
    (FindingClass::UsSsn, r"\b\d{3}-\d{2}-\d{4}\b"),
    (
        FindingClass::IpAddress,
        r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b|\b(?:[0-9a-fA-F]{1,4}:){7}[0-9a-fA-F]{1,4}\b",
    ),
    (FindingClass::AzureStorageKey, r"\b[A-Za-z0-9+/]{86}=="),
    (
        FindingClass::ConnectionString,
        r"(?i)\b(?:AccountKey|SharedAccessKey|SharedAccessSignature)=[^;\s]{8,}",
    ),
    (
        FindingClass::SasToken,
        r"(?i)\bsv=\d{4}-\d{2}-\d{2}&[^\s]*?\bsig=[A-Za-z0-9%+/=]{16,}",
    ),
    (FindingClass::AwsAccessKey, r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    (
        FindingClass::PrivateKey,
        r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY-----",
    ),
    (
        FindingClass::Jwt,
        r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}",
    ),
    (
        FindingClass::ApiKey,
        r#"(?i)\bapi[_-]?key["']?\s*[:=]\s*["']?[A-Za-z0-9_\-./+]{12,}"#,
    ),
];

// ASCII-only matching (`(?-u)`): every pattern is ASCII, and Unicode word boundaries would
// push the regex engine off its fast DFA path on non-ASCII text.
static SET: LazyLock<RegexSet> = LazyLock::new(|| {
    RegexSet::new(PATTERNS.iter().map(|(_, p)| format!("(?-u){p}")))
        .expect("compliance patterns compile")
});
static REGEXES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    PATTERNS
        .iter()
        .map(|(_, p)| Regex::new(&format!("(?-u){p}")).expect("compliance pattern compiles"))
        .collect()
});

// Every pattern needs either at least MIN_DIGITS digits or one of these (an IBAN its country
// and check digits, an all-letter IPv6 address a hex group between colons); strings with
// neither — most natural text — skip the full pattern set without changing any result.
static TRIGGERS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i-u)@|-----BEGIN|eyJ|key|signature|sig=|AKIA|ASIA|==|(?-i:[A-Z]{2}[0-9]{2})|:[0-9a-f]{1,4}:")
        .expect("trigger pattern compiles")
});
/// Fewest digits any digit-based pattern (phone, card, IBAN, SSN, IP address) can match.
const MIN_DIGITS: usize = 4;

/// One masked finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Its class.
    pub class: FindingClass,
    /// The masked text.
    pub masked: String,
}

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

fn iban_ok(s: &str) -> bool {
    let compact: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    if !(15..=34).contains(&compact.len()) {
        return false;
    }
    let rearranged = format!("{}{}", &compact[4..], &compact[..4]);
    let mut rem: u32 = 0;
    for c in rearranged.chars() {
        let v = match c {
            '0'..='9' => c as u32 - '0' as u32,
            'A'..='Z' => c as u32 - 'A' as u32 + 10,
            _ => return false,
        };
        let width = if v >= 10 { 100 } else { 10 };
        rem = (rem * width + v) % 97;
    }
    rem == 1
}

fn ssn_ok(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    let [area, group, serial] = parts.as_slice() else {
        return false;
    };
    *area != "000"
        && *area != "666"
        && !area.starts_with('9')
        && *group != "00"
        && *serial != "0000"
}

fn validated(class: FindingClass, text: &str) -> bool {
    match class {
        FindingClass::PaymentCard => {
            let digits: Vec<u8> = text
                .bytes()
                .filter(u8::is_ascii_digit)
                .map(|b| b - b'0')
                .collect();
            (13..=19).contains(&digits.len()) && luhn(&digits)
        }
        FindingClass::Iban => iban_ok(text),
        FindingClass::UsSsn => ssn_ok(text),
        _ => true,
    }
}

/// Masks a finding: secrets show only their length; personal data keeps just enough to be
/// recognised by its owner (last four digits, first letter and domain suffix).
pub fn mask(class: FindingClass, text: &str) -> String {
    if class.is_secret() {
        return format!("[redacted {} chars]", text.chars().count());
    }
    match class {
        FindingClass::Email => {
            let (local, domain) = text.split_once('@').unwrap_or((text, ""));
            let tld = domain.rsplit('.').next().unwrap_or("");
            format!("{}***@***.{tld}", local.chars().next().unwrap_or('*'))
        }
        FindingClass::IpAddress => {
            let first: String = text
                .chars()
                .take_while(|c| *c != '.' && *c != ':')
                .collect();
            format!("{first}.***")
        }
        _ => {
            let alnum: Vec<char> = text.chars().filter(char::is_ascii_alphanumeric).collect();
            let tail: String = alnum[alnum.len().saturating_sub(4)..].iter().collect();
            format!("***{tail}")
        }
    }
}

/// Scans one string; overlapping matches of a class count once each.
pub fn scan(text: &str, out: &mut Vec<Finding>) {
    // Most strings match nothing: one pass over the set first.
    let bytes = text.as_bytes();
    if bytes.iter().filter(|b| b.is_ascii_digit()).count() < MIN_DIGITS && !TRIGGERS.is_match(bytes)
    {
        return;
    }
    let hits = SET.matches(bytes);
    if !hits.matched_any() {
        return;
    }
    let mut found: Vec<(FindingClass, std::ops::Range<usize>)> = Vec::new();
    for i in hits.iter() {
        let (class, _) = PATTERNS[i];
        for m in REGEXES[i].find_iter(bytes) {
            if validated(class, &String::from_utf8_lossy(m.as_bytes())) {
                found.push((class, m.range()));
            }
        }
    }
    // Card numbers, IBANs and SSNs also look like phone numbers: the checksummed class wins.
    let checked: Vec<std::ops::Range<usize>> = found
        .iter()
        .filter(|(c, _)| {
            matches!(
                c,
                FindingClass::PaymentCard | FindingClass::Iban | FindingClass::UsSsn
            )
        })
        .map(|(_, r)| r.clone())
        .collect();
    for (class, range) in found {
        if class == FindingClass::Phone
            && checked
                .iter()
                .any(|r| r.start < range.end && range.start < r.end)
        {
            continue;
        }
        out.push(Finding {
            class,
            masked: mask(class, &String::from_utf8_lossy(&bytes[range])),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(text: &str) -> Vec<FindingClass> {
        let mut v = Vec::new();
        scan(text, &mut v);
        let mut c: Vec<_> = v.into_iter().map(|f| f.class).collect();
        c.sort();
        c.dedup();
        c
    }

    #[test]
    fn each_class_is_detected_in_a_minimal_example() {
        let cases: [(&str, FindingClass); 13] = [
            ("mail jane.doe@example.com now", FindingClass::Email),
            ("call +1 415-555-0100 today", FindingClass::Phone),
            ("card 4111 1111 1111 1111 ok", FindingClass::PaymentCard),
            ("iban DE89 3704 0044 0532 0130 00 ok", FindingClass::Iban),
            ("ssn 123-45-6789 ok", FindingClass::UsSsn),
            ("host 192.168.10.20 up", FindingClass::IpAddress),
            (
                &format!("key {}== end", "A".repeat(86)),
                FindingClass::AzureStorageKey,
            ),
            (
                "AccountName=x;AccountKey=abcdefgh1234;EndpointSuffix=core",
                FindingClass::ConnectionString,
            ),
            (
                "https://a.blob.core.windows.net/c?sv=2021-08-06&ss=b&sig=abcdefghijklmnop1234%3D",
                FindingClass::SasToken,
            ),
            ("aws AKIAIOSFODNN7EXAMPLE here", FindingClass::AwsAccessKey),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMII...",
                FindingClass::PrivateKey,
            ),
            (
                "token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
                FindingClass::Jwt,
            ),
            ("api_key = 'sk_live_1234567890abcdef'", FindingClass::ApiKey),
        ];
        for (text, class) in cases {
            assert!(
                classes(text).contains(&class),
                "{class:?} in {text:?}: {:?}",
                classes(text)
            );
        }
    }

    #[test]
    fn a_card_number_is_not_also_reported_as_a_phone_number() {
        assert_eq!(
            classes("card 4111 1111 1111 1111"),
            [FindingClass::PaymentCard]
        );
    }

    #[test]
    fn checksums_filter_lookalikes() {
        assert!(!classes("order 4111 1111 1111 1112").contains(&FindingClass::PaymentCard));
        assert!(!classes("DE00 3704 0044 0532 0130 00").contains(&FindingClass::Iban));
        assert!(!classes("id 000-12-3456").contains(&FindingClass::UsSsn));
        assert!(classes("The meeting is on 2024-05-01 at 10:00.").is_empty());
    }

    #[test]
    fn masks_never_echo_secrets_and_keep_little_of_personal_data() {
        let mut v = Vec::new();
        scan(
            "AKIAIOSFODNN7EXAMPLE and jane.doe@example.com and 4111-1111-1111-1111",
            &mut v,
        );
        for f in &v {
            assert!(!f.masked.contains("IOSFODNN7"), "{f:?}");
            assert!(!f.masked.contains("jane.doe"), "{f:?}");
            assert!(!f.masked.contains("4111-1111"), "{f:?}");
        }
        assert_eq!(
            mask(FindingClass::PaymentCard, "4111 1111 1111 1111"),
            "***1111"
        );
        assert_eq!(
            mask(FindingClass::AwsAccessKey, "AKIAIOSFODNN7EXAMPLE"),
            "[redacted 20 chars]"
        );
    }
}
