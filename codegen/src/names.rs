//! Rust names for CloudFormation names: deterministic, and the same rule everywhere, so
//! a reader can guess the Rust name of any property (`DBClusterIdentifier` ->
//! `db_cluster_identifier`, `VPCGatewayAttachment` -> `VpcGatewayAttachment`).

/// Splits a CloudFormation name into lowercase words: at non-alphanumeric characters,
/// before an upper-case letter that follows a lower-case letter or a digit, and before
/// the last capital of an acronym that starts a new word (`DBCluster` -> `db`,
/// `cluster`). Digits stay with the word before them (`Ipv4`, `S3`).
pub fn words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    for part in name.split(|c: char| !c.is_ascii_alphanumeric()) {
        let chars: Vec<char> = part.chars().collect();
        let mut word = String::new();
        for (i, &c) in chars.iter().enumerate() {
            if i > 0 && c.is_ascii_uppercase() {
                let prev = chars[i - 1];
                let next_is_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
                let acronym_ends = prev.is_ascii_uppercase() && next_is_lower;
                // `IPv6` is one word, not `i` + `pv6`.
                let ip_version = prev == 'I'
                    && c == 'P'
                    && chars.get(i + 1) == Some(&'v')
                    && chars.get(i + 2).is_some_and(|d| d.is_ascii_digit());
                if (prev.is_ascii_lowercase() || prev.is_ascii_digit() || acronym_ends)
                    && !ip_version
                {
                    words.push(std::mem::take(&mut word));
                }
            }
            word.push(c.to_ascii_lowercase());
        }
        if !word.is_empty() {
            words.push(word);
        }
    }
    words
}

/// `snake_case`, as a valid identifier (keywords become raw identifiers).
pub fn snake(name: &str) -> String {
    ident(words(name).join("_"))
}

/// `PascalCase` for type names: each word capitalised, the rest lower case.
pub fn pascal(name: &str) -> String {
    words(name).iter().map(|w| capitalize(w)).collect()
}

/// An enum variant for a CloudFormation value: words from the separators in the value
/// (`PAY_PER_REQUEST` -> `PayPerRequest`, `provided.al2023` -> `ProvidedAl2023`); an
/// all-caps word is capitalised, a mixed-case word keeps its inner capitals
/// (`BucketOwnerEnforced`); an underscore stays between two digits so versions remain
/// readable (`python3.10` -> `Python3_10`, `x86_64` -> `X86_64`).
pub fn variant(value: &str) -> String {
    let mut out = String::new();
    for part in value
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
    {
        let all_caps = !part.chars().any(|c| c.is_ascii_lowercase());
        let word = if all_caps {
            capitalize(&part.to_ascii_lowercase())
        } else {
            capitalize(part)
        };
        if out.ends_with(|c: char| c.is_ascii_digit())
            && word.starts_with(|c: char| c.is_ascii_digit())
        {
            out.push('_');
        }
        out.push_str(&word);
    }
    if !out.starts_with(|c: char| c.is_ascii_alphabetic()) {
        out.insert(0, 'V');
    }
    out
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

/// Keywords that cannot be field or method names as written.
const KEYWORDS: &[&str] = &[
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue", "do", "dyn",
    "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if", "impl", "in", "let",
    "loop", "macro", "match", "mod", "move", "mut", "override", "priv", "pub", "ref", "return",
    "static", "struct", "trait", "true", "try", "type", "typeof", "unsafe", "unsized", "use",
    "virtual", "where", "while", "yield",
];

/// A keyword becomes a raw identifier (`r#type`); the four that cannot be raw get a
/// trailing underscore.
fn ident(name: String) -> String {
    if ["crate", "self", "super", "Self"].contains(&name.as_str()) {
        format!("{name}_")
    } else if KEYWORDS.contains(&name.as_str()) {
        format!("r#{name}")
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_split_acronyms_and_keep_digits() {
        let cases = [
            ("DBClusterIdentifier", "db_cluster_identifier"),
            ("MultiAZEnabled", "multi_az_enabled"),
            ("VPCSecurityGroups", "vpc_security_groups"),
            ("SSEAlgorithm", "sse_algorithm"),
            ("Ipv4IpamPoolId", "ipv4_ipam_pool_id"),
            ("S3Key", "s3_key"),
            (
                "ServerlessV2ScalingConfiguration",
                "serverless_v2_scaling_configuration",
            ),
            ("CanonicalHostedZoneID", "canonical_hosted_zone_id"),
            ("EnableIPv6", "enable_ipv6"),
            ("TTL", "ttl"),
            ("Type", "r#type"),
        ];
        for (cfn, rust) in cases {
            assert_eq!(snake(cfn), rust, "{cfn}");
        }
    }

    #[test]
    fn type_names_are_pascal_case_without_all_caps_acronyms() {
        assert_eq!(pascal("DBCluster"), "DbCluster");
        assert_eq!(pascal("VPCGatewayAttachment"), "VpcGatewayAttachment");
        assert_eq!(pascal("EIP"), "Eip");
        assert_eq!(pascal("TaskDefinition"), "TaskDefinition");
    }

    #[test]
    fn variants_read_like_the_values() {
        let cases = [
            ("PAY_PER_REQUEST", "PayPerRequest"),
            ("BucketOwnerEnforced", "BucketOwnerEnforced"),
            ("awsvpc", "Awsvpc"),
            ("provided.al2023", "ProvidedAl2023"),
            ("python3.10", "Python3_10"),
            ("x86_64", "X86_64"),
            ("aws:kms:dsse", "AwsKmsDsse"),
            ("internet-facing", "InternetFacing"),
            ("1", "V1"),
        ];
        for (value, rust) in cases {
            assert_eq!(variant(value), rust, "{value}");
        }
    }
}
