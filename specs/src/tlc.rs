//! The bridge to TLC: [`Bounds`] as the `CONSTANTS` of a `WorldProtocol` `.cfg` file, both ways.
//!
//! `specs/ci.sh` runs TLC on `WorldProtocolCI.cfg` and compares TLC's distinct-state count with
//! the twin's at the bounds read from the same file (`cargo run --example states -- <cfg>`), so
//! the two checkers always look at the same constants.

use crate::bounds::Bounds;

/// A [`Bounds`] field, for reading and writing it by constant name.
type Field = fn(&mut Bounds) -> &mut u8;

/// The TLA+ constant names, in `.cfg` order, with the [`Bounds`] field each one sets.
const CONSTANTS: [(&str, Field); 13] = [
    ("NumRegions", |b| &mut b.regions),
    ("NumPlayers", |b| &mut b.players),
    ("NumWatchers", |b| &mut b.watchers),
    ("NumProcs", |b| &mut b.processors),
    ("MaxSeq", |b| &mut b.inputs_per_player),
    ("TreeHp", |b| &mut b.tree_hp),
    ("MaxT1Unknown", |b| &mut b.t1_unknown),
    ("MaxT2Unknown", |b| &mut b.t2_unknown),
    ("MaxCrashes", |b| &mut b.crashes),
    ("MaxTakeovers", |b| &mut b.takeovers),
    ("MaxDisconnects", |b| &mut b.disconnects),
    ("MaxTrims", |b| &mut b.trims),
    ("MaxReconnects", |b| &mut b.reconnects),
];

impl Bounds {
    /// The bounds set by the `CONSTANTS` of a TLC `.cfg` file. Every constant of
    /// `WorldProtocol.tla` must be set exactly once, to a number that fits in a `u8`.
    pub fn from_tlc_cfg(cfg: &str) -> Result<Bounds, String> {
        let mut bounds = Bounds {
            regions: 0,
            players: 0,
            watchers: 0,
            processors: 0,
            inputs_per_player: 0,
            tree_hp: 0,
            t1_unknown: 0,
            t2_unknown: 0,
            crashes: 0,
            takeovers: 0,
            disconnects: 0,
            trims: 0,
            reconnects: 0,
        };
        let mut seen = Vec::new();
        for line in cfg.lines() {
            let line = line.split("\\*").next().unwrap_or_default();
            let Some((name, value)) = line.split_once('=') else {
                continue;
            };
            let name = name.split_whitespace().last().unwrap_or_default();
            let Some((_, field)) = CONSTANTS.iter().find(|(n, _)| *n == name) else {
                return Err(format!("unknown constant {name:?}"));
            };
            if seen.contains(&name) {
                return Err(format!("constant {name} set twice"));
            }
            let value: u8 = value
                .trim()
                .parse()
                .map_err(|e| format!("constant {name}: {e}"))?;
            *field(&mut bounds) = value;
            seen.push(name);
        }
        match CONSTANTS.iter().find(|(n, _)| !seen.contains(n)) {
            Some((missing, _)) => Err(format!("constant {missing} is not set")),
            None => Ok(bounds),
        }
    }

    /// The `CONSTANTS` section of a TLC `.cfg` file for these bounds.
    pub fn tlc_constants(&self) -> String {
        let mut bounds = self.clone();
        let mut out = String::from("CONSTANTS\n");
        for (name, field) in CONSTANTS {
            out.push_str(&format!("    {name} = {}\n", field(&mut bounds)));
        }
        out
    }
}

/// The counts of TLC's final report (`G states generated, D distinct states found, 0 states
/// left on queue.`), as `(distinct, generated)`, if `output` has one.
pub fn final_counts(output: &str) -> Option<(usize, usize)> {
    let number = |text: &str| text.trim().replace(',', "").parse().ok();
    output.lines().rev().find_map(|line| {
        let rest = line.strip_suffix(" distinct states found, 0 states left on queue.")?;
        let (generated, distinct) = rest.split_once(" states generated, ")?;
        Some((number(distinct)?, number(generated)?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_round_trip() {
        for bounds in [Bounds::small(), Bounds::edge_faults(), Bounds::large()] {
            assert_eq!(Bounds::from_tlc_cfg(&bounds.tlc_constants()), Ok(bounds));
        }
    }

    #[test]
    fn missing_and_unknown_constants_are_errors() {
        let text = Bounds::small().tlc_constants();
        let without_trims: String = text
            .lines()
            .filter(|l| !l.contains("MaxTrims"))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(Bounds::from_tlc_cfg(&without_trims).is_err());
        assert!(Bounds::from_tlc_cfg(&format!("{text}    Bogus = 1\n")).is_err());
    }

    #[test]
    fn reads_tlc_final_count() {
        let out = "Progress(9) at x: 51,764 states generated (51,764 s/min), 19,370 distinct \
                   states found (19,370 ds/min), 10,380 states left on queue.\n\
                   489270 states generated, 120054 distinct states found, 0 states left on queue.\n";
        assert_eq!(final_counts(out), Some((120_054, 489_270)));
    }
}
