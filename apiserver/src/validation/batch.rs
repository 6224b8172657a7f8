//! batch/v1 validation beyond the pod templates: Job and CronJob spec fields and the cron
//! schedule (with the parse errors of robfig/cron, which upstream reports), as upstream's
//! pkg/apis/batch/validation.

use serde_json::{Value, json};

use super::fields::{self, text};
use crate::status::Cause;

/// Job spec fields at `path` (`spec`, or `spec.jobTemplate.spec` in a CronJob).
pub fn job_spec(spec: &Value, path: &str) -> Vec<Cause> {
    let mut causes = Vec::new();
    for field in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        fields::nonnegative(spec, field, path, &mut causes);
    }
    match spec["completionMode"].as_str() {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if spec["completions"].is_null() {
                causes.push(Cause::required_detail(
                    format!("{path}.completions"),
                    "when completion mode is Indexed",
                ));
            }
        }
        Some(other) => causes.push(Cause::unsupported(
            format!("{path}.completionMode"),
            &json!(other),
            &["NonIndexed", "Indexed"],
        )),
    }
    if let Some(policy) = spec["podReplacementPolicy"].as_str()
        && policy != "Failed"
        && policy != "TerminatingOrFailed"
    {
        causes.push(Cause::unsupported(
            format!("{path}.podReplacementPolicy"),
            &json!(policy),
            &["TerminatingOrFailed", "Failed"],
        ));
    }
    causes
}

pub fn cron_job_spec(spec: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let schedule = text(spec, "schedule");
    if schedule.is_empty() {
        causes.push(Cause::required("spec.schedule"));
    } else {
        if let Err(e) = parse_schedule(schedule) {
            causes.push(Cause::invalid("spec.schedule", &json!(schedule), e));
        }
        if schedule.contains("TZ") {
            causes.push(Cause::invalid(
                "spec.schedule",
                &json!(schedule),
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    fields::nonnegative(spec, "startingDeadlineSeconds", "spec", &mut causes);
    if spec["timeZone"].as_str() == Some("") {
        causes.push(Cause::invalid(
            "spec.timeZone",
            &json!(""),
            "timeZone must be nil or non-empty string",
        ));
    }
    let policies = ["Allow", "Forbid", "Replace"];
    match text(spec, "concurrencyPolicy") {
        "" => causes.push(Cause::required("spec.concurrencyPolicy")),
        p if policies.contains(&p) => {}
        p => causes.push(Cause::unsupported(
            "spec.concurrencyPolicy",
            &json!(p),
            &policies,
        )),
    }
    causes.extend(job_spec(
        &spec["jobTemplate"]["spec"],
        "spec.jobTemplate.spec",
    ));
    for field in ["successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
        fields::nonnegative(spec, field, "spec", &mut causes);
    }
    causes
}

/// One field of a cron schedule: its bounds and, for months and weekdays, names.
struct Bounds {
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const FIELDS: [Bounds; 5] = [
    Bounds {
        min: 0,
        max: 59,
        names: &[],
    },
    Bounds {
        min: 0,
        max: 23,
        names: &[],
    },
    Bounds {
        min: 1,
        max: 31,
        names: &[],
    },
    Bounds {
        min: 1,
        max: 12,
        names: MONTHS,
    },
    Bounds {
        min: 0,
        max: 6,
        names: DAYS,
    },
];

/// Parses a standard 5-field schedule or a descriptor as robfig/cron's ParseStandard does,
/// answering its error text.
pub fn parse_schedule(schedule: &str) -> Result<(), String> {
    let mut spec = schedule.trim();
    // A TZ= or CRON_TZ= prefix names the location; the rest is the schedule.
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        spec = spec.split_once(' ').map_or("", |(_, rest)| rest.trim());
    }
    if let Some(descriptor) = spec.strip_prefix('@') {
        return match descriptor {
            "yearly" | "annually" | "monthly" | "weekly" | "daily" | "midnight" | "hourly" => {
                Ok(())
            }
            d if d.starts_with("every ") => {
                let duration = &spec["@every ".len()..];
                if is_go_duration(duration) {
                    Ok(())
                } else {
                    Err(format!(
                        "failed to parse duration {spec}: time: invalid duration \"{duration}\""
                    ))
                }
            }
            _ => Err(format!("unrecognized descriptor: {spec}")),
        };
    }
    let parts: Vec<&str> = spec.split_whitespace().collect();
    if parts.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            parts.len(),
            parts.join(" ")
        ));
    }
    for (part, bounds) in parts.iter().zip(&FIELDS) {
        for expr in part.split(',') {
            range(expr, bounds)?;
        }
    }
    Ok(())
}

/// A Go duration such as `1h30m` or `90s`.
fn is_go_duration(s: &str) -> bool {
    let mut rest = s;
    if rest.is_empty() {
        return false;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        if digits == 0 {
            return false;
        }
        rest = &rest[digits..];
        let unit = ["ns", "us", "µs", "ms", "s", "m", "h"]
            .iter()
            .find(|u| rest.starts_with(**u));
        match unit {
            Some(u) => rest = &rest[u.len()..],
            None => return false,
        }
    }
    true
}

/// robfig's mustParseInt.
fn number(expr: &str) -> Result<u32, String> {
    let n: i64 = expr.parse().map_err(|_| {
        format!("failed to parse int from {expr}: strconv.Atoi: parsing \"{expr}\": invalid syntax")
    })?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {expr}"));
    }
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

fn number_or_name(expr: &str, names: &[&str], min: u32) -> Result<u32, String> {
    let lower = expr.to_lowercase();
    match names.iter().position(|n| *n == lower) {
        Some(i) => Ok(i as u32 + min),
        None => number(expr),
    }
}

/// robfig's getRange: `*`, `N`, `N-M`, each optionally `/step`.
fn range(expr: &str, b: &Bounds) -> Result<(), String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_high: Vec<&str> = range_and_step[0].split('-').collect();
    // Month names count from 1, weekday names from 0.
    let name_base = if b.names.len() == 12 { 1 } else { 0 };
    let (start, mut end) = if low_high[0] == "*" || low_high[0] == "?" {
        (b.min, b.max)
    } else {
        let start = number_or_name(low_high[0], b.names, name_base)?;
        match low_high.len() {
            1 => (start, start),
            2 => (start, number_or_name(low_high[1], b.names, name_base)?),
            _ => return Err(format!("too many hyphens: {expr}")),
        }
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = number(range_and_step[1])?;
            // "N/step" means "N-max/step".
            if low_high.len() == 1 {
                end = b.max;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < b.min {
        return Err(format!(
            "beginning of range ({start}) below minimum ({}): {expr}",
            b.min
        ));
    }
    if end > b.max {
        return Err(format!(
            "end of range ({end}) above maximum ({}): {expr}",
            b.max
        ));
    }
    if start > end {
        return Err(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expr}"
        ));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::testing::pairs;
    use super::*;

    #[test]
    fn schedules() {
        for ok in [
            "*/5 * * * *",
            "0 0 1 jan-jun mon-fri",
            "30 2 * * 0",
            "@hourly",
            "@every 1h30m",
            "0 12 ? * *",
            "5,10,15 1-5/2 * * *",
        ] {
            assert_eq!(parse_schedule(ok), Ok(()), "{ok}");
        }
        let cases = [
            ("* * *", "expected exactly 5 fields, found 3: [* * *]"),
            ("60 * * * *", "end of range (60) above maximum (59): 60"),
            ("0 0 0 * *", "beginning of range (0) below minimum (1): 0"),
            (
                "x * * * *",
                "failed to parse int from x: strconv.Atoi: parsing \"x\": invalid syntax",
            ),
            (
                "5-1 * * * *",
                "beginning of range (5) beyond end of range (1): 5-1",
            ),
            (
                "*/0 * * * *",
                "step of range should be a positive number: */0",
            ),
            ("1-2-3 * * * *", "too many hyphens: 1-2-3"),
            ("@sometimes", "unrecognized descriptor: @sometimes"),
            (
                "@every soon",
                "failed to parse duration @every soon: time: invalid duration \"soon\"",
            ),
        ];
        for (bad, message) in cases {
            assert_eq!(parse_schedule(bad), Err(message.to_owned()), "{bad}");
        }
    }

    #[test]
    fn jobs_and_cron_jobs() {
        assert_eq!(
            pairs(job_spec(
                &json!({"parallelism": 2, "completions": 3, "backoffLimit": 6,
                "completionMode": "Indexed", "podReplacementPolicy": "Failed"}),
                "spec"
            )),
            []
        );
        assert_eq!(
            pairs(job_spec(
                &json!({"parallelism": -1, "completionMode": "Indexed"}),
                "spec"
            )),
            [
                (
                    "spec.parallelism".to_owned(),
                    "Invalid value: -1: must be greater than or equal to 0".to_owned()
                ),
                (
                    "spec.completions".to_owned(),
                    "Required value: when completion mode is Indexed".to_owned()
                ),
            ]
        );
        let ok = json!({"schedule": "*/1 * * * *", "concurrencyPolicy": "Allow",
            "jobTemplate": {"spec": {}}, "successfulJobsHistoryLimit": 3});
        assert_eq!(pairs(cron_job_spec(&ok)), []);
        let bad = json!({"schedule": "CRON_TZ=UTC 61 * * * *", "concurrencyPolicy": "Sometimes",
            "startingDeadlineSeconds": -5, "jobTemplate": {"spec": {"backoffLimit": -1}}});
        assert_eq!(
            pairs(cron_job_spec(&bad)),
            [
                ("spec.schedule".to_owned(), "Invalid value: \"CRON_TZ=UTC 61 * * * *\": end of range (61) above maximum (59): 61".to_owned()),
                ("spec.schedule".to_owned(), "Invalid value: \"CRON_TZ=UTC 61 * * * *\": cannot use TZ or CRON_TZ in schedule, use timeZone field instead".to_owned()),
                ("spec.startingDeadlineSeconds".to_owned(), "Invalid value: -5: must be greater than or equal to 0".to_owned()),
                ("spec.concurrencyPolicy".to_owned(), "Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"".to_owned()),
                ("spec.jobTemplate.spec.backoffLimit".to_owned(), "Invalid value: -1: must be greater than or equal to 0".to_owned()),
            ]
        );
    }
}
