//! The `/` filter: free words plus structured terms (`sev>=major zone=westminster
//! state=open,acked type=day_burner lamp=12 assignee=crew`), parsed as the operator types so
//! an invalid filter is shown as such and never half-applied.

use crate::domain::faults::Severity;
use crate::proto;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Filter {
    terms: Vec<Term>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    /// Every word must appear somewhere in the row (case-insensitive).
    Word(String),
    Severity(Comparison, u8),
    Zone(String),
    States(Vec<proto::FaultState>),
    Type(String),
    Lamp(i64),
    Assignee(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Comparison {
    AtLeast,
    Above,
    Exactly,
    AtMost,
    Below,
}

/// Severity as a rank: warning 1 .. critical 4.
pub fn severity_rank(severity: i32) -> u8 {
    match proto::Severity::try_from(severity) {
        Ok(proto::Severity::Critical) => 4,
        Ok(proto::Severity::Major) => 3,
        Ok(proto::Severity::Minor) => 2,
        Ok(proto::Severity::Warning) => 1,
        _ => 0,
    }
}

fn parse_state(text: &str) -> Option<proto::FaultState> {
    match text {
        "open" => Some(proto::FaultState::Open),
        "ack" | "acked" | "acknowledged" => Some(proto::FaultState::Acknowledged),
        "assigned" => Some(proto::FaultState::Assigned),
        "cleared" => Some(proto::FaultState::Cleared),
        "resolved" => Some(proto::FaultState::Resolved),
        _ => None,
    }
}

impl Filter {
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut terms = Vec::new();
        for word in text.split_whitespace() {
            let lower = word.to_lowercase();
            let operators = [">=", "<=", "!=", "=", ">", "<"];
            let split = operators
                .iter()
                .filter_map(|op| lower.find(op).map(|at| (at, *op)))
                .min_by_key(|(at, op)| (*at, std::cmp::Reverse(op.len())));
            let Some((at, op)) = split else {
                terms.push(Term::Word(lower));
                continue;
            };
            let (key, value) = (&lower[..at], &lower[at + op.len()..]);
            if value.is_empty() {
                return Err(format!("{word}: give a value after {op}"));
            }
            let equals_only = |term: Term| {
                if op == "=" {
                    Ok(term)
                } else {
                    Err(format!("{word}: {key} takes =, not {op}"))
                }
            };
            let term = match key {
                "sev" | "severity" => {
                    let rank = Severity::parse(&value.to_uppercase())
                        .map(|s| severity_rank(crate::wire::faults::severity(s) as i32))
                        .ok_or_else(|| {
                            format!("{word}: {value:?} is not a severity (critical, major, minor, warning)")
                        })?;
                    let comparison = match op {
                        ">=" => Comparison::AtLeast,
                        ">" => Comparison::Above,
                        "=" => Comparison::Exactly,
                        "<=" => Comparison::AtMost,
                        "<" => Comparison::Below,
                        _ => return Err(format!("{word}: severity takes >=, >, =, <=, <")),
                    };
                    Term::Severity(comparison, rank)
                }
                "zone" => equals_only(Term::Zone(value.to_owned()))?,
                "state" => {
                    let states = value
                        .split(',')
                        .map(|s| {
                            parse_state(s).ok_or_else(|| {
                                format!(
                                    "{word}: {s:?} is not a state (open, acked, assigned, cleared)"
                                )
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    equals_only(Term::States(states))?
                }
                "type" => equals_only(Term::Type(value.to_owned()))?,
                "lamp" => {
                    let id = value
                        .parse()
                        .map_err(|_| format!("{word}: a lamp is a number"))?;
                    equals_only(Term::Lamp(id))?
                }
                "assignee" | "crew" => equals_only(Term::Assignee(value.to_owned()))?,
                other => {
                    return Err(format!(
                        "{word}: {other:?} is not a filter term (sev, zone, state, type, lamp, assignee)"
                    ));
                }
            };
            terms.push(term);
        }
        Ok(Self { terms })
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    pub fn matches(&self, fault: &proto::Fault, zone: &str) -> bool {
        self.terms.iter().all(|term| match term {
            Term::Word(word) => {
                let type_name = fault_type_name(fault.r#type).to_lowercase();
                type_name.contains(word.as_str())
                    || zone.to_lowercase().contains(word.as_str())
                    || fault.assignee.to_lowercase().contains(word.as_str())
                    || fault.lamp_id.to_string() == *word
                    || fault.id.to_string() == *word
            }
            Term::Severity(comparison, rank) => {
                let have = severity_rank(fault.severity);
                match comparison {
                    Comparison::AtLeast => have >= *rank,
                    Comparison::Above => have > *rank,
                    Comparison::Exactly => have == *rank,
                    Comparison::AtMost => have <= *rank,
                    Comparison::Below => have < *rank,
                }
            }
            Term::Zone(name) => zone.to_lowercase().contains(name.as_str()),
            Term::States(states) => states.iter().any(|s| *s as i32 == fault.state),
            Term::Type(name) => fault_type_name(fault.r#type)
                .to_lowercase()
                .contains(name.as_str()),
            Term::Lamp(id) => fault.lamp_id == *id,
            Term::Assignee(name) => fault.assignee.to_lowercase().contains(name.as_str()),
        })
    }
}

/// "DAY_BURNER" for a fault type number.
pub fn fault_type_name(value: i32) -> &'static str {
    proto::FaultType::try_from(value)
        .map(|t| t.as_str_name().trim_start_matches("FAULT_TYPE_"))
        .unwrap_or("UNKNOWN")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(severity: proto::Severity, state: proto::FaultState) -> proto::Fault {
        proto::Fault {
            id: 7,
            r#type: proto::FaultType::DayBurner as i32,
            severity: severity as i32,
            state: state as i32,
            lamp_id: 12,
            assignee: "Crew North".into(),
            ..Default::default()
        }
    }

    #[test]
    fn structured_terms_and_words_combine() {
        let filter = Filter::parse("sev>=major zone=west state=open,acked burner").unwrap();
        let major = fault(proto::Severity::Major, proto::FaultState::Open);
        assert!(filter.matches(&major, "West End"));
        assert!(!filter.matches(&major, "Pimlico"));
        let minor = fault(proto::Severity::Minor, proto::FaultState::Open);
        assert!(!filter.matches(&minor, "West End"));
        let cleared = fault(proto::Severity::Critical, proto::FaultState::Cleared);
        assert!(!filter.matches(&cleared, "West End"));
        assert!(
            Filter::parse("lamp=12 crew=north")
                .unwrap()
                .matches(&major, "")
        );
        assert!(Filter::parse("").unwrap().is_empty());
    }

    #[test]
    fn invalid_terms_say_what_is_wrong() {
        for (text, needle) in [
            ("sev>=huge", "not a severity"),
            ("colour=red", "not a filter term"),
            ("state=broken", "not a state"),
            ("zone>=a", "takes ="),
            ("lamp=x", "number"),
            ("sev=", "give a value"),
        ] {
            let error = Filter::parse(text).unwrap_err();
            assert!(error.contains(needle), "{text}: {error}");
        }
    }
}
