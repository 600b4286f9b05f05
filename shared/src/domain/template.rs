//! Pre-saved response bodies: `{{key}}` placeholders, parsed once when saved and filled
//! from the thread's `context` when a relance is attached.

use std::collections::{BTreeSet, HashMap};

/// One piece of a parsed body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part<'a> {
    Text(&'a str),
    Placeholder(&'a str),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("unclosed placeholder at character {0}: expected `}}}}`")]
    Unclosed(usize),
    #[error("invalid placeholder `{{{{{key}}}}}` at character {at}: keys are 1 to 32 of a-z and _")]
    InvalidKey { key: String, at: usize },
    #[error("unmatched `}}}}` at character {0}")]
    Unmatched(usize),
}

/// A placeholder key: `[a-z_]{1,32}`.
pub fn is_placeholder_key(key: &str) -> bool {
    (1..=32).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
}

fn parse(body: &str) -> Result<Vec<Part<'_>>, TemplateError> {
    let mut parts = Vec::new();
    let mut rest = body;
    let char_at = |rest: &str| body[..body.len() - rest.len()].chars().count();
    loop {
        let open = rest.find("{{");
        let close = rest.find("}}");
        match (open, close) {
            (None, None) => {
                if !rest.is_empty() {
                    parts.push(Part::Text(rest));
                }
                return Ok(parts);
            }
            (open, Some(close)) if open.is_none_or(|o| close < o) => {
                return Err(TemplateError::Unmatched(char_at(&rest[close..])));
            }
            (Some(open), _) => {
                if open > 0 {
                    parts.push(Part::Text(&rest[..open]));
                }
                let after = &rest[open + 2..];
                let Some(end) = after.find("}}") else {
                    return Err(TemplateError::Unclosed(char_at(&rest[open..])));
                };
                let key = &after[..end];
                if !is_placeholder_key(key) {
                    return Err(TemplateError::InvalidKey {
                        key: key.chars().take(40).collect(),
                        at: char_at(&rest[open..]),
                    });
                }
                parts.push(Part::Placeholder(key));
                rest = &after[end + 2..];
            }
            (None, Some(_)) => unreachable!("handled by the guard above"),
        }
    }
}

/// Checks a body and returns its placeholder keys, sorted and without repeats.
pub fn placeholders(body: &str) -> Result<BTreeSet<String>, TemplateError> {
    Ok(parse(body)?
        .into_iter()
        .filter_map(|part| match part {
            Part::Placeholder(key) => Some(key.to_owned()),
            Part::Text(_) => None,
        })
        .collect())
}

/// Fills every placeholder of `body` from `context`; the error lists the keys that have
/// no value. The body must have been checked with [`placeholders`] when it was saved.
pub fn render(body: &str, context: &HashMap<String, String>) -> Result<String, Vec<String>> {
    let parts = parse(body).map_err(|_| Vec::new())?;
    let mut missing = BTreeSet::new();
    let mut out = String::with_capacity(body.len());
    for part in parts {
        match part {
            Part::Text(text) => out.push_str(text),
            Part::Placeholder(key) => match context.get(key) {
                Some(value) => out.push_str(value),
                None => {
                    missing.insert(key.to_owned());
                }
            },
        }
    }
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn lists_placeholders_once_each() {
        let keys =
            placeholders("Bonjour {{customer_name}}, commande {{order_id}} ({{customer_name}})")
                .unwrap();
        assert_eq!(
            keys.into_iter().collect::<Vec<_>>(),
            ["customer_name", "order_id"]
        );
    }

    #[test]
    fn plain_text_and_single_braces_are_fine() {
        assert!(placeholders("Prix {5} € — merci !").unwrap().is_empty());
        assert!(placeholders("").unwrap().is_empty());
    }

    #[test]
    fn rejects_malformed_placeholders() {
        assert_eq!(
            placeholders("Bonjour {{name"),
            Err(TemplateError::Unclosed(8))
        );
        assert!(matches!(
            placeholders("{{Name}}"),
            Err(TemplateError::InvalidKey { .. })
        ));
        assert!(matches!(
            placeholders("{{ name }}"),
            Err(TemplateError::InvalidKey { .. })
        ));
        assert!(matches!(
            placeholders("{{}}"),
            Err(TemplateError::InvalidKey { .. })
        ));
        assert_eq!(placeholders("merci }} !"), Err(TemplateError::Unmatched(6)));
        let long = format!("{{{{{}}}}}", "a".repeat(33));
        assert!(matches!(
            placeholders(&long),
            Err(TemplateError::InvalidKey { .. })
        ));
    }

    #[test]
    fn renders_every_placeholder() {
        let text = render(
            "Bonjour {{customer_name}}, votre commande {{order_id}}.",
            &ctx(&[
                ("customer_name", "Léa"),
                ("order_id", "A-42"),
                ("unused", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(text, "Bonjour Léa, votre commande A-42.");
    }

    #[test]
    fn values_are_not_reinterpreted_as_placeholders() {
        let text = render("{{a}}", &ctx(&[("a", "{{b}}")])).unwrap();
        assert_eq!(text, "{{b}}");
    }

    #[test]
    fn render_names_missing_values() {
        let missing = render("{{a}} {{b}} {{c}}", &ctx(&[("b", "x")])).unwrap_err();
        assert_eq!(missing, ["a", "c"]);
    }
}
