//! Resource quantities ("100m", "1.5Gi", "2e3") parsed into integers, as upstream's
//! resource.Quantity does for the scheduler and the kubelet: CPU in millicores and
//! everything else in units, both rounded up.

use std::fmt;

/// A quantity that is not in Kubernetes' syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuantityError(pub String);

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {:?}",
            self.0
        )
    }
}

impl std::error::Error for QuantityError {}

/// A parsed quantity: `mantissa * 10^exp10 * 2^exp2`, exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    mantissa: u128,
    exp10: i32,
    exp2: u32,
}

impl Quantity {
    pub fn parse(s: &str) -> Result<Quantity, QuantityError> {
        let err = || QuantityError(s.to_owned());
        let s = s.trim();
        let (negative, body) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let number_end = body
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(body.len());
        let (number, suffix) = body.split_at(number_end);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(err());
        }
        let mut mantissa: u128 = 0;
        let mut exp10: i32 = 0;
        let mut after_point = false;
        for c in number.chars() {
            if c == '.' {
                after_point = true;
                continue;
            }
            // Digits beyond u128's range cannot matter for a resource amount.
            if mantissa < u128::MAX / 100 {
                mantissa = mantissa * 10 + u128::from(c as u8 - b'0');
                if after_point {
                    exp10 -= 1;
                }
            } else if !after_point {
                exp10 += 1;
            }
        }
        let (suffix10, exp2) = match suffix {
            "" => (0, 0),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            s if s.starts_with(['e', 'E']) => (s[1..].parse::<i32>().map_err(|_| err())?, 0),
            _ => return Err(err()),
        };
        Ok(Quantity {
            negative,
            mantissa,
            exp10: exp10 + suffix10,
            exp2,
        })
    }

    /// The value times 10^scale, rounded up (away from zero for positive values), saturating.
    fn scaled(&self, scale: i32) -> i64 {
        let mut num = self.mantissa;
        let mut den: u128 = 1;
        let e = self.exp10 + scale;
        let pow = |n: i32| 10u128.checked_pow(n.unsigned_abs());
        if e >= 0 {
            num = match pow(e).and_then(|p| num.checked_mul(p)) {
                Some(n) => n,
                None if num == 0 => 0,
                None => u128::MAX,
            };
        } else {
            den = pow(e).unwrap_or(u128::MAX);
        }
        num = num
            .checked_shl(self.exp2)
            .filter(|_| num.leading_zeros() >= self.exp2)
            .unwrap_or(if num == 0 { 0 } else { u128::MAX });
        let value = num.div_ceil(den);
        let value = i64::try_from(value).unwrap_or(i64::MAX);
        if self.negative { -value } else { value }
    }

    /// Whole units, rounded up (memory and storage in bytes, pods, extended resources).
    pub fn value(&self) -> i64 {
        self.scaled(0)
    }

    /// Thousandths, rounded up (CPU in millicores).
    pub fn milli_value(&self) -> i64 {
        self.scaled(3)
    }

    pub fn is_zero(&self) -> bool {
        self.mantissa == 0
    }
}

impl std::str::FromStr for Quantity {
    type Err = QuantityError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Quantity::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, milli: i64, value: i64) {
        let q = Quantity::parse(input).unwrap();
        assert_eq!((q.milli_value(), q.value()), (milli, value), "{input}");
    }

    #[test]
    fn parses_every_suffix() {
        check("1", 1000, 1);
        check("100m", 100, 1);
        check("1.5", 1500, 2);
        check("0.1", 100, 1);
        check("250u", 1, 1);
        check("1k", 1_000_000, 1000);
        check("1Ki", 1_024_000, 1024);
        check("32Gi", 32 * (1 << 30) * 1000, 32 * (1 << 30));
        check("1.5Gi", 1_610_612_736_000, 1_610_612_736);
        check("2e3", 2_000_000, 2000);
        check("1E3", 1_000_000, 1000);
        check("-2", -2000, -2);
        check("0", 0, 0);
        check("110", 110_000, 110);
        check("1Ei", i64::MAX, 1 << 60);
    }

    #[test]
    fn rejects_bad_syntax() {
        for bad in ["", "abc", "1.2.3", "1Qi", "m", "1 Gi", "1e"] {
            assert!(Quantity::parse(bad).is_err(), "{bad}");
        }
    }
}
