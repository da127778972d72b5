//! Calendar periods in UTC, for budgets.

use crate::config::Period;

/// The Unix time (seconds) at which the period containing `now` began.
pub fn start(period: Period, now: f64) -> f64 {
    let secs = now.floor() as i64;
    let start = match period {
        Period::Hour => secs - secs.rem_euclid(3_600),
        Period::Day => secs - secs.rem_euclid(86_400),
        Period::Month => {
            let days = secs.div_euclid(86_400);
            let (year, month, _) = civil_from_days(days);
            days_from_civil(year, month, 1) * 86_400
        }
    };
    start as f64
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a civil date.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_start_on_utc_boundaries() {
        // 2026-11-22T13:45:10Z
        let now = 1_795_355_110.0;
        assert_eq!(start(Period::Hour, now), 1_795_352_400.0); // 13:00
        assert_eq!(start(Period::Day, now), 1_795_305_600.0); // 00:00
        assert_eq!(start(Period::Month, now), 1_793_491_200.0); // 2026-11-01
        assert_eq!(
            start(Period::Month, 951_782_400.0),
            949_363_200.0,
            "2000-02-29 is in February 2000"
        );
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-1_000_000, -1, 0, 59, 11_016, 20_000, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
