//! Value parsers shared by the command-line flags.
//!
//! Invariant: a time flag parsed here is finite, non-negative and at most [`MAX_DURATION`], so
//! turning it into a `Duration` (seconds, minutes or milliseconds alike) never panics; a bad
//! value is refused by clap with the flag's name and the accepted range.

/// The largest value a time flag accepts (in the flag's own unit: seconds, minutes or
/// milliseconds). A billion is decades in seconds, and even in minutes far below what
/// `Duration` holds.
pub const MAX_DURATION: f64 = 1e9;

/// Parses a time flag: a finite number from 0 to [`MAX_DURATION`].
pub fn duration(text: &str) -> Result<f64, String> {
    number_in(text, 0.0, MAX_DURATION)
}

/// Parses an area-of-interest radius in metres: from 0 to the largest query radius the edge
/// accepts (`sekai_schema::geometry::MAX_QUERY_RADIUS`).
pub fn area_radius(text: &str) -> Result<f32, String> {
    let max = f64::from(sekai_schema::geometry::MAX_QUERY_RADIUS);
    number_in(text, 0.0, max).map(|value| value as f32)
}

/// A finite number from `min` to `max`, or an error naming the range.
fn number_in(text: &str, min: f64, max: f64) -> Result<f64, String> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a number"))?;
    if value.is_finite() && (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "`{text}` is out of range: give a number from {min} to {max}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn numbers_in_range_parse_and_convert_to_a_duration() {
        for (text, value) in [("0", 0.0), ("2.5", 2.5), (" 20 ", 20.0), ("1e9", 1e9)] {
            let parsed = duration(text).expect(text);
            assert_eq!(parsed, value);
            // The largest value in the largest unit (minutes) still converts.
            let _ = Duration::from_secs_f64(parsed * 60.0);
        }
    }

    #[test]
    fn negative_infinite_nan_huge_and_non_numbers_are_refused_with_the_range() {
        for text in [
            "-1", "-0.001", "inf", "-inf", "NaN", "1e10", "", "ten", "5s",
        ] {
            let error = duration(text).expect_err(text);
            assert!(
                error.contains("not a number") || error.contains("from 0 to"),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn area_radius_takes_zero_to_the_query_limit_only() {
        assert_eq!(area_radius("64"), Ok(64.0));
        assert_eq!(area_radius("1024"), Ok(1024.0));
        for text in ["-1", "1025", "NaN", "far"] {
            assert!(area_radius(text).is_err(), "{text}");
        }
    }
}
